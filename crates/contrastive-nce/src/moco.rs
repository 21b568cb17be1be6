//! MoCo (He et al. 2020, arXiv 1911.05722, Algorithm 1): a momentum (key) encoder updated as
//! `theta_k <- m theta_k + (1 - m) theta_q`, a queue of the last `K` keys as negatives
//! (enqueue the batch, dequeue the oldest), the InfoNCE loss of the query against its key and
//! the queue, and shuffled BatchNorm emulated on one device by splitting the batch.
//!
//! Paper settings ([`MocoConfig::default`]): `K = 65536`, `m = 0.999`, `tau = 0.07`.

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::error::{check_finite, NceError, Result};
use crate::losses::{info_nce_loss, normalize, Negatives};

/// MoCo's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MocoConfig {
    /// Queue length `K`.
    pub queue_size: i64,
    /// Momentum `m` of the key encoder.
    pub momentum: f64,
    /// Temperature `tau`.
    pub temperature: f64,
}

impl Default for MocoConfig {
    fn default() -> Self {
        MocoConfig {
            queue_size: 65536,
            momentum: 0.999,
            temperature: 0.07,
        }
    }
}

/// The queue of keys: a ring buffer of `K` L2-normalised `d`-vectors and the slot the next key
/// goes to. It starts as random unit vectors (as the reference code's
/// `register_buffer("queue", randn)` normalised). [`Queue::in_store`] keeps both in a
/// `VarStore` as non-trainable variables, so train-kit's checkpoints save and restore them and
/// a resumed run continues with the same negatives.
#[derive(Debug)]
pub struct Queue {
    keys: Tensor,
    /// `[1]` int64: where the next key goes.
    ptr: Tensor,
}

impl Queue {
    /// A queue of `size` random unit keys of width `dim` on `device`, outside any store.
    pub fn new(size: i64, dim: i64, device: Device) -> Result<Self> {
        check_queue_dims(size, dim)?;
        Ok(Queue {
            keys: normalize(&Tensor::randn([size, dim], (Kind::Float, device))),
            ptr: Tensor::zeros([1], (Kind::Int64, device)),
        })
    }

    /// The same queue as the non-trainable variables `keys` and `ptr` under `path` (on the
    /// store's device), so it is checkpointed with the model.
    pub fn in_store(path: &nn::Path, size: i64, dim: i64) -> Result<Self> {
        check_queue_dims(size, dim)?;
        let keys = normalize(&Tensor::randn([size, dim], (Kind::Float, path.device())));
        Ok(Queue {
            keys: path.add("keys", keys, false),
            ptr: path.add(
                "ptr",
                Tensor::zeros([1], (Kind::Int64, path.device())),
                false,
            ),
        })
    }

    /// The keys, `[K, d]` (a view; detach is implied: they never carry a gradient).
    pub fn keys(&self) -> &Tensor {
        &self.keys
    }

    /// Where the next key goes.
    pub fn ptr(&self) -> i64 {
        self.ptr.int64_value(&[0])
    }

    /// Enqueues `keys [b, d]` (detached, normalised) over the oldest entries, wrapping around.
    pub fn enqueue_dequeue(&mut self, keys: &Tensor) -> Result<()> {
        let (k, d) = (self.keys.size()[0], self.keys.size()[1]);
        let s = keys.size();
        if s.len() != 2 || s[1] != d || s[0] == 0 || s[0] > k {
            return Err(NceError::Shape {
                what: "queue keys",
                expected: format!("[b, {d}] with 1 <= b <= {k}"),
                got: s,
            });
        }
        check_finite("queue keys", keys)?;
        let b = s[0];
        let new = normalize(&keys.detach()).to_kind(self.keys.kind());
        let idx = (Tensor::arange(b, (Kind::Int64, self.keys.device())) + &self.ptr).remainder(k);
        tch::no_grad(|| {
            let _ = self.keys.f_index_copy_(0, &idx, &new)?;
            let _ = self.ptr.f_add_scalar_(b)?.f_remainder_(k)?;
            Ok::<(), tch::TchError>(())
        })?;
        Ok(())
    }
}

fn check_queue_dims(size: i64, dim: i64) -> Result<()> {
    if size < 1 || dim < 1 {
        return Err(NceError::Config(format!(
            "queue needs a positive size and width, got {size} x {dim}"
        )));
    }
    Ok(())
}

/// `target <- m target + (1 - m) online` for every variable of `target`, matched by name.
pub fn momentum_update(online: &nn::VarStore, target: &nn::VarStore, momentum: f64) -> Result<()> {
    let src = online.variables();
    MomentumPairs::resolve(target.variables(), |name| {
        src.get(name).map(Tensor::shallow_clone)
    })?
    .update(momentum)
}

/// [`momentum_update`] within one store: every variable under `target` (a path prefix such as
/// `"key"`) moves toward its twin under `online` (`"query"`), matched by the rest of the name.
/// MoCo's key encoder then lives beside the query encoder and is checkpointed with it.
pub fn momentum_update_in(
    vs: &nn::VarStore,
    online: &str,
    target: &str,
    momentum: f64,
) -> Result<()> {
    MomentumPairs::new(vs, online, target)?.update(momentum)
}

/// The `(online, target)` variable pairs of a momentum update, resolved once (tensors that
/// share the store's storage): a training step can update the key encoder without borrowing
/// the store, and a checkpoint restored into the store (in place) is seen.
#[derive(Debug)]
pub struct MomentumPairs {
    /// `(online, target name, target)`, sorted by name.
    pairs: Vec<(Tensor, String, Tensor)>,
}

impl MomentumPairs {
    /// Pairs every variable under `target` with its twin under `online` in one store; a
    /// variable without a twin of the same shape is an error, as is an empty `target`.
    pub fn new(vs: &nn::VarStore, online: &str, target: &str) -> Result<Self> {
        let vars = vs.variables();
        let prefix = format!("{target}.");
        let targets = vars
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .map(|(name, t)| (name.clone(), t.shallow_clone()));
        let pairs = Self::resolve(targets, |name| {
            let rest = name.strip_prefix(&prefix)?;
            vars.get(&format!("{online}.{rest}"))
                .map(Tensor::shallow_clone)
        })?;
        if pairs.pairs.is_empty() {
            return Err(NceError::Config(format!(
                "momentum update: no variable under `{target}` in the store"
            )));
        }
        Ok(pairs)
    }

    /// Each target variable with `twin(its name)`, checked for presence and shape.
    fn resolve(
        targets: impl IntoIterator<Item = (String, Tensor)>,
        twin: impl Fn(&str) -> Option<Tensor>,
    ) -> Result<Self> {
        let mut pairs = Vec::new();
        for (name, t) in targets {
            let o = twin(&name).ok_or_else(|| {
                NceError::Config(format!(
                    "key encoder variable `{name}` has no query-encoder twin"
                ))
            })?;
            if o.size() != t.size() {
                return Err(NceError::Shape {
                    what: "momentum update",
                    expected: format!("`{name}` of shape {:?}", t.size()),
                    got: o.size(),
                });
            }
            pairs.push((o, name, t));
        }
        pairs.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(MomentumPairs { pairs })
    }

    /// `target <- m target + (1 - m) online` for every pair (integer buffers, such as
    /// BatchNorm's batch counter, are copied).
    pub fn update(&self, momentum: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(NceError::Config(format!(
                "momentum must lie in [0, 1], got {momentum}"
            )));
        }
        tch::no_grad(|| {
            for (o, _, t) in &self.pairs {
                let mut t = t.shallow_clone();
                if t.is_floating_point() {
                    let _ = t.f_mul_scalar_(momentum)?.f_add_(&(o * (1.0 - momentum)))?;
                } else {
                    t.f_copy_(o)?;
                }
            }
            Ok::<(), tch::TchError>(())
        })?;
        Ok(())
    }

    /// The target's variables stop requiring a gradient (the key encoder is never trained by
    /// back-propagation); returns how many there are.
    pub fn freeze_targets(&self) -> usize {
        for (_, _, t) in &self.pairs {
            if t.is_floating_point() {
                let _ = t.shallow_clone().set_requires_grad(false);
            }
        }
        self.pairs.len()
    }
}

/// Copies every variable of `online` into `target` (the key encoder's start).
pub fn copy_weights(online: &nn::VarStore, target: &nn::VarStore) -> Result<()> {
    momentum_update(online, target, 0.0)
}

/// MoCo's loss: InfoNCE of the queries `q [n, d]` against their keys `k [n, d]` (detached)
/// and the queue's keys at temperature `tau`.
pub fn moco_loss(q: &Tensor, k: &Tensor, queue: &Queue, temperature: f64) -> Result<Tensor> {
    info_nce_loss(
        q,
        &k.detach(),
        Negatives::Unpaired(queue.keys()),
        temperature,
    )
}

/// Runs `f` on `splits` sub-batches of `x` separately and concatenates the outputs: in train
/// mode each sub-batch's BatchNorm uses its own statistics, as on `splits` devices.
pub fn split_forward(
    x: &Tensor,
    splits: i64,
    f: &mut dyn FnMut(&Tensor) -> Tensor,
) -> Result<Tensor> {
    let n = x.size().first().copied().unwrap_or(0);
    if splits < 1 || n % splits != 0 {
        return Err(NceError::Config(format!(
            "a batch of {n} does not split into {splits} equal sub-batches"
        )));
    }
    let outs: Vec<Tensor> = x.chunk(splits, 0).iter().map(f).collect();
    Ok(Tensor::cat(&outs, 0))
}

/// MoCo's shuffling BN on one device: permutes the batch (torch's generator), runs `f` on
/// `splits` sub-batches as [`split_forward`], and undoes the permutation, so a key's BatchNorm
/// statistics come from other samples than its query's sub-batch.
pub fn shuffled_split_forward(
    x: &Tensor,
    splits: i64,
    f: &mut dyn FnMut(&Tensor) -> Tensor,
) -> Result<Tensor> {
    let n = x.size().first().copied().unwrap_or(0);
    let perm = Tensor::randperm(n, (Kind::Int64, x.device()));
    let out = split_forward(&x.index_select(0, &perm), splits, f)?;
    Ok(out.index_select(0, &perm.argsort(0, false)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::ModuleT;

    #[test]
    fn the_queue_replaces_its_oldest_keys_and_wraps() {
        let _g = test_support::rng_lock();
        tch::manual_seed(0);
        let mut q = Queue::new(5, 2, Device::Cpu).unwrap();
        let before = q.keys().copy();
        let a = Tensor::from_slice2(&[[1f32, 0.0], [0.0, 2.0], [3.0, 0.0]]);
        q.enqueue_dequeue(&a).unwrap();
        assert_eq!(q.ptr(), 3);
        assert!(q
            .keys()
            .narrow(0, 0, 3)
            .allclose(&normalize(&a), 1e-6, 1e-6, false));
        assert!(q.keys().narrow(0, 3, 2).equal(&before.narrow(0, 3, 2)));
        let b = Tensor::from_slice2(&[[0f32, -1.0], [-1.0, 0.0], [0.0, 1.0]]);
        q.enqueue_dequeue(&b).unwrap();
        assert_eq!(q.ptr(), 1);
        // slots 3, 4, 0 got b; slots 1, 2 keep a's
        assert!(q.keys().get(0).allclose(&b.get(2), 1e-6, 1e-6, false));
        assert!(q
            .keys()
            .get(1)
            .allclose(&normalize(&a).get(1), 1e-6, 1e-6, false));
        assert!(q
            .enqueue_dequeue(&Tensor::zeros([6, 2], (Kind::Float, Device::Cpu)))
            .is_err());
    }

    #[test]
    fn momentum_update_moves_the_key_encoder_toward_the_query_encoder() {
        let a = nn::VarStore::new(Device::Cpu);
        let b = nn::VarStore::new(Device::Cpu);
        let la = nn::linear(a.root() / "fc", 3, 2, Default::default());
        let lb = nn::linear(b.root() / "fc", 3, 2, Default::default());
        let (wa, wb) = (la.ws.copy(), lb.ws.copy());
        momentum_update(&a, &b, 0.9).unwrap();
        assert!(lb.ws.allclose(&(&wb * 0.9 + &wa * 0.1), 1e-6, 1e-6, false));
        copy_weights(&a, &b).unwrap();
        assert!(lb.ws.equal(&la.ws));
        assert!(momentum_update(&a, &b, 1.5).is_err());
    }

    #[test]
    fn split_batchnorm_uses_sub_batch_statistics_and_shuffling_is_undone() {
        let _g = test_support::rng_lock();
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = nn::batch_norm1d(vs.root(), 3, Default::default());
        let x = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        let mut f = |t: &Tensor| bn.forward_t(t, true);
        let whole = f(&x);
        let split = split_forward(&x, 2, &mut f).unwrap();
        let halves = Tensor::cat(&[f(&x.narrow(0, 0, 4)), f(&x.narrow(0, 4, 4))], 0);
        assert!(split.allclose(&halves, 1e-6, 1e-6, false));
        assert!(!split.allclose(&whole, 1e-3, 1e-3, false));
        // With one split, shuffling changes nothing (BN is permutation invariant).
        let sh = shuffled_split_forward(&x, 1, &mut f).unwrap();
        assert!(sh.allclose(&whole, 1e-5, 1e-5, false));
        assert!(split_forward(&x, 3, &mut f).is_err());
    }

    #[test]
    fn moco_loss_is_infonce_against_key_and_queue() {
        let _g = test_support::rng_lock();
        tch::manual_seed(2);
        let queue = Queue::new(16, 4, Device::Cpu).unwrap();
        let q = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        let k = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        let loss = moco_loss(&q, &k, &queue, 0.07).unwrap().double_value(&[]);
        let (qn, kn) = (normalize(&q), normalize(&k));
        let pos = (&qn * &kn).sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        let logits = Tensor::cat(&[pos, qn.matmul(&queue.keys().tr())], 1) / 0.07;
        let want = -logits
            .log_softmax(1, Kind::Float)
            .select(1, 0)
            .mean(Kind::Float);
        assert!((loss - want.double_value(&[])).abs() < 1e-5);
    }

    #[test]
    fn the_queue_in_a_store_is_saved_and_restored_with_it() {
        let _g = test_support::rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut q = Queue::in_store(&(vs.root() / "queue"), 4, 2).unwrap();
        q.enqueue_dequeue(&Tensor::from_slice2(&[[1f32, 0.0], [0.0, 1.0], [1.0, 1.0]]))
            .unwrap();
        assert_eq!(q.ptr(), 3);
        let vars = vs.variables();
        assert!(vars.get("queue.keys").is_some_and(|t| !t.requires_grad()));
        assert_eq!(vars.get("queue.ptr").map(|t| t.int64_value(&[0])), Some(3));
        assert!(vs.trainable_variables().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.ot");
        vs.save(&file).unwrap();
        tch::manual_seed(4);
        let mut vs2 = nn::VarStore::new(Device::Cpu);
        let q2 = Queue::in_store(&(vs2.root() / "queue"), 4, 2).unwrap();
        vs2.load(&file).unwrap();
        assert_eq!(q2.ptr(), 3);
        assert!(q2.keys().equal(q.keys()));
    }

    #[test]
    fn momentum_update_in_one_store_matches_by_the_rest_of_the_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let q = nn::linear(vs.root() / "query" / "fc", 3, 2, Default::default());
        let k = nn::linear(vs.root() / "key" / "fc", 3, 2, Default::default());
        let (wq, wk) = (q.ws.copy(), k.ws.copy());
        momentum_update_in(&vs, "query", "key", 0.9).unwrap();
        assert!(k.ws.allclose(&(&wk * 0.9 + &wq * 0.1), 1e-6, 1e-6, false));
        assert!(q.ws.equal(&wq), "the online encoder is left alone");
        let pairs = MomentumPairs::new(&vs, "query", "key").unwrap();
        assert_eq!(pairs.freeze_targets(), 2);
        let training = vs
            .variables()
            .values()
            .filter(|t| t.requires_grad())
            .count();
        assert_eq!(training, 2, "only the query's weight and bias");
        assert!(momentum_update_in(&vs, "query", "nothing", 0.9).is_err());
        let _extra = nn::linear(vs.root() / "key" / "only", 3, 2, Default::default());
        let e = momentum_update_in(&vs, "query", "key", 0.9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("key.only"), "{e}");
    }
}
