//! Data parallel inside [`super::Trainer::fit`], over any [`Collective`] (PyTorch DDP's
//! semantics, without its autograd hooks):
//!
//! - at the start, rank 0 alone reads the run folder; it broadcasts where the run stands (the
//!   step, the loop's state, the optimiser state's names and shapes) as JSON, then every
//!   variable of the VarStore (parameters and buffers) and, on a resume, the optimiser state:
//!   the other ranks never touch the folder, so it need not be shared between nodes;
//! - rank `r` of `w` reads batches `k * w + r` of each epoch at its local step `k`
//!   ([`crate::DataSource::epoch_strided`]): the ranks' batches of one step are `w` consecutive
//!   batches of the one-process epoch, so `w` ranks of batch `b` take the steps of one process
//!   of batch `w * b` (the epoch has `floor(batches / w)` steps);
//! - at the last micro-step of each accumulation window the gradients are summed over the ranks
//!   in buckets of at most [`BUCKET_BYTES`] (PyTorch's default `bucket_cap_mb` = 25), each
//!   bucket's all-reduce started as soon as it is packed, so packing the next one overlaps the
//!   communication of the previous ones, then divided by `w` (DDP averages); the window's loss
//!   sum travels with them in float64, so every rank logs and checkpoints the same loss, the
//!   mean over the ranks;
//! - a parameter without a gradient on this rank gets the others' (each bucket carries how
//!   many ranks had one); one that no rank produced a gradient for keeps none, as without data
//!   parallel;
//! - evaluation runs on rank 0, whose metrics are broadcast to the others.

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::LoopState;
use crate::collective::{Collective, Pending};
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;

/// Largest gradient bucket (PyTorch DDP's default `bucket_cap_mb`).
pub const BUCKET_BYTES: i64 = 25 * 1024 * 1024;

/// What rank 0 tells the others at the start.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StartHeader {
    pub start: u64,
    pub state: LoopState,
    /// The optimiser state's `(name, shape, kind)`, on a resume (empty on a fresh run).
    opt_state: Vec<(String, Vec<i64>, String)>,
}

/// The data-parallel side of one `fit` call.
pub(super) struct DataParallel<'a> {
    group: &'a dyn Collective,
    device: Device,
    grads: GradBuckets,
}

struct Bucket {
    params: Vec<Tensor>,
    numels: Vec<i64>,
    kind: Kind,
    device: Device,
    /// The flags of a step where this rank has every gradient (the usual case), made once.
    all_defined: Option<Tensor>,
}

fn dist_err(what: &str, e: impl std::fmt::Display) -> TrainError {
    TrainError::Distributed(format!("{what}: {e}"))
}

fn kind_name(k: Kind) -> String {
    format!("{k:?}")
}

fn kind_from_name(s: &str) -> Result<Kind> {
    const KINDS: [Kind; 8] = [
        Kind::Float,
        Kind::Double,
        Kind::Half,
        Kind::BFloat16,
        Kind::Int64,
        Kind::Int,
        Kind::Uint8,
        Kind::Bool,
    ];
    KINDS
        .into_iter()
        .find(|k| kind_name(*k) == s)
        .ok_or_else(|| dist_err("start header", format!("unknown dtype {s}")))
}

impl<'a> DataParallel<'a> {
    /// The data-parallel side over `group`, for tensors on `device`.
    pub fn new(group: &'a dyn Collective, device: Device) -> Self {
        DataParallel {
            group,
            device,
            grads: GradBuckets::default(),
        }
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// Ranks in the group.
    pub fn world(&self) -> u64 {
        self.group.world_size() as u64
    }

    /// Rank 0's bytes on every rank.
    fn broadcast_bytes(&self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let len = bytes.as_ref().map_or(0, |b| b.len() as i64);
        let n = Tensor::from_slice(&[len]).f_to_device(self.device)?;
        self.group.broadcast(&n, 0)?;
        let len = n.f_int64_value(&[0])?;
        let buf = match bytes {
            Some(b) => Tensor::from_slice(&b).f_to_device(self.device)?,
            None => Tensor::f_zeros([len], (Kind::Uint8, self.device))?,
        };
        self.group.broadcast(&buf, 0)?;
        let host = buf.f_to_device(Device::Cpu)?;
        let mut out = vec![0u8; len as usize];
        host.f_copy_data_u8(&mut out, len as usize)?;
        Ok(out)
    }

    /// Rank 0's start (`Some` on rank 0, `None` elsewhere) on every rank, with its variables
    /// and, on a resume, its optimiser state; then the gradient buckets are laid out.
    pub fn start<O: Optimizer + ?Sized>(
        &mut self,
        mine: Option<(u64, LoopState)>,
        vs: &nn::VarStore,
        opt: &mut O,
    ) -> Result<(u64, LoopState)> {
        let header = match mine {
            Some((start, state)) => {
                let opt_state = if start > 0 {
                    opt.state_tensors()
                        .into_iter()
                        .map(|(n, t)| (n, t.size(), kind_name(t.kind())))
                        .collect()
                } else {
                    Vec::new()
                };
                let h = StartHeader {
                    start,
                    state,
                    opt_state,
                };
                Some(serde_json::to_vec(&h).map_err(|e| dist_err("start header", e))?)
            }
            None => None,
        };
        let bytes = self.broadcast_bytes(header)?;
        let header: StartHeader =
            serde_json::from_slice(&bytes).map_err(|e| dist_err("start header", e))?;

        let _guard = tch::no_grad_guard();
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, v) in &vars {
            self.broadcast_into(v)?;
        }
        if !header.opt_state.is_empty() {
            let main = self.group.is_main();
            let live: Vec<(String, Tensor)> = if main {
                opt.state_tensors()
            } else {
                Vec::new()
            };
            let mut received = Vec::with_capacity(header.opt_state.len());
            for (i, (name, shape, kind)) in header.opt_state.iter().enumerate() {
                let t = match live.get(i) {
                    Some((_, t)) => t.f_contiguous()?,
                    None => {
                        Tensor::f_zeros(shape.as_slice(), (kind_from_name(kind)?, self.device))?
                    }
                };
                self.group.broadcast(&t, 0)?;
                received.push((name.clone(), t));
            }
            if !main {
                opt.load_state_tensors(&received)?;
            }
        }
        self.grads = GradBuckets::new(opt.params().into_iter().map(|(_, t)| t).collect());
        Ok((header.start, header.state))
    }

    /// Broadcasts rank 0's `t` into `t`, through a contiguous copy when `t` is not contiguous.
    fn broadcast_into(&self, t: &Tensor) -> Result<()> {
        if t.is_contiguous() {
            return self.group.broadcast(t, 0);
        }
        let c = t.f_contiguous()?;
        self.group.broadcast(&c, 0)?;
        t.shallow_clone().f_copy_(&c)?;
        Ok(())
    }

    /// Averages the gradients over the ranks (see the module docs) and returns the mean over
    /// the ranks of `window_loss` (this rank's sum of its window's micro-batch losses).
    pub fn reduce_gradients(&self, window_loss: f64) -> Result<f64> {
        self.grads
            .all_reduce_mean(self.group, window_loss, self.device)
    }

    /// The mean over the ranks of each value (a metrics line's loss and parts).
    pub fn mean_values(&self, values: &[f64]) -> Result<Vec<f64>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let t = Tensor::from_slice(values).f_to_device(self.device)?;
        self.group.all_reduce_sum(&t)?;
        let host = t.f_to_device(Device::Cpu)?;
        let mut out = vec![0f64; values.len()];
        host.f_copy_data(&mut out, values.len())?;
        let world = self.world() as f64;
        Ok(out.into_iter().map(|v| v / world).collect())
    }

    /// Rank 0's evaluation metrics on every rank (`Some` on rank 0).
    pub fn share_metrics(&self, mine: Option<super::EvalMetrics>) -> Result<super::EvalMetrics> {
        let bytes = match mine {
            Some(m) => Some(serde_json::to_vec(&m).map_err(|e| dist_err("metrics", e))?),
            None => None,
        };
        let bytes = self.broadcast_bytes(bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| dist_err("metrics", e))
    }
}

/// The gradients of a set of parameters laid out in buckets of at most [`BUCKET_BYTES`] per
/// (dtype, device), the parameters in reverse order (the order backward produces their
/// gradients, as DDP lays them out), and averaged over a group's ranks: the gradient step of
/// data-parallel training, for loops of one's own (the [`crate::Trainer`] uses it).
#[derive(Default)]
pub struct GradBuckets {
    buckets: Vec<Bucket>,
}

impl std::fmt::Debug for GradBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradBuckets")
            .field("buckets", &self.buckets.len())
            .field(
                "elements",
                &self
                    .buckets
                    .iter()
                    .map(|b| b.numels.iter().sum::<i64>())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl GradBuckets {
    /// The buckets of `params` (shallow clones of the optimised variables; their `.grad` is
    /// read at each [`GradBuckets::all_reduce_mean`]).
    pub fn new(params: Vec<Tensor>) -> Self {
        GradBuckets {
            buckets: layout(params),
        }
    }

    /// Buckets laid out.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Replaces every gradient by its mean over `group`'s ranks: each bucket's all-reduce is
    /// started as soon as it is packed, then all are waited for and unpacked. A gradient this
    /// rank lacks gets the others' mean; one no rank has stays undefined. `extra` (e.g. this
    /// rank's loss) travels along in float64 on `device`; its mean over the ranks is returned.
    pub fn all_reduce_mean(
        &self,
        group: &dyn Collective,
        extra: f64,
        device: Device,
    ) -> Result<f64> {
        let world = group.world_size() as f64;
        let mut started: Vec<(&Bucket, Tensor, Pending)> = Vec::with_capacity(self.buckets.len());
        {
            let _guard = tch::no_grad_guard();
            for b in &self.buckets {
                let flat = b.pack()?;
                let pending = group.all_reduce_sum_start(&flat)?;
                started.push((b, flat, pending));
            }
        }
        let value = Tensor::from_slice(&[extra]).f_to_device(device)?;
        let value_pending = group.all_reduce_sum_start(&value)?;
        for (b, flat, pending) in started {
            pending.wait()?;
            b.unpack(&flat, world)?;
        }
        value_pending.wait()?;
        Ok(value.f_double_value(&[0])? / world)
    }
}

fn layout(params: Vec<Tensor>) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for p in params.into_iter().rev() {
        let (kind, device) = (p.kind(), p.device());
        let bytes = p.numel() as i64 * p.kind().elt_size_in_bytes() as i64;
        let open = buckets
            .iter_mut()
            .rev()
            .find(|b| b.kind == kind && b.device == device);
        match open {
            Some(b)
                if (b.numels.iter().sum::<i64>() * kind.elt_size_in_bytes() as i64) + bytes
                    <= BUCKET_BYTES =>
            {
                b.numels.push(p.numel() as i64);
                b.params.push(p);
            }
            _ => buckets.push(Bucket {
                numels: vec![p.numel() as i64],
                params: vec![p],
                kind,
                device,
                all_defined: None,
            }),
        }
    }
    for b in &mut buckets {
        b.all_defined = Tensor::f_ones([b.params.len() as i64], (b.kind, b.device)).ok();
    }
    buckets
}

impl Bucket {
    /// The gradients (zeros where undefined) then one flag per parameter (1 where defined), flat.
    fn pack(&self) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(self.params.len() + 1);
        let mut flags = Vec::with_capacity(self.params.len());
        for (p, &n) in self.params.iter().zip(&self.numels) {
            let g = p.grad();
            if g.defined() {
                parts.push(g.f_reshape([-1])?);
                flags.push(1f32);
            } else {
                parts.push(Tensor::f_zeros([n], (self.kind, self.device))?);
                flags.push(0f32);
            }
        }
        // A host-to-device copy of the flags only on a step where this rank lacks a gradient.
        let flags = match &self.all_defined {
            Some(ones) if flags.iter().all(|&f| f == 1.0) => ones.shallow_clone(),
            _ => Tensor::from_slice(&flags)
                .f_to_kind(self.kind)?
                .f_to_device(self.device)?,
        };
        parts.push(flags);
        Ok(Tensor::f_cat(&parts, 0)?)
    }

    /// Writes the summed bucket back as the mean gradients.
    fn unpack(&self, flat: &Tensor, world: f64) -> Result<()> {
        let mut sizes = self.numels.clone();
        sizes.push(self.params.len() as i64);
        let mut undefined = Vec::new();
        let pieces = {
            let _guard = tch::no_grad_guard();
            // One kernel for the mean of the whole bucket (the flags stay > 0 where a rank had one).
            let _ = flat.shallow_clone().f_div_scalar_(world)?;
            let pieces = flat.f_split_with_sizes(&sizes, 0)?;
            for (i, (p, piece)) in self.params.iter().zip(&pieces).enumerate() {
                let mut g = p.grad();
                if g.defined() {
                    g.f_copy_(&piece.f_view_as(&g)?)?;
                } else {
                    undefined.push(i);
                }
            }
            pieces
        };
        if undefined.is_empty() {
            return Ok(());
        }
        // Only here is the flag read (a device-to-host copy): which of this rank's missing
        // gradients another rank had.
        let flags = pieces[self.params.len()].f_to_kind(Kind::Float)?;
        for i in undefined {
            if flags.f_double_value(&[i as i64])? > 0.0 {
                let p = &self.params[i];
                let mean = pieces[i].f_view_as(p)?.f_detach()?;
                // backward of sum(p * g) leaves exactly g in p.grad.
                tch::with_grad(|| p.f_mul(&mean)?.f_sum(p.kind())?.f_backward())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::ThreadGroup;

    #[test]
    fn a_gradient_one_rank_lacks_is_the_mean_of_the_others_and_one_none_had_stays_none() {
        let groups = ThreadGroup::new(2).unwrap();
        std::thread::scope(|s| {
            for g in groups {
                s.spawn(move || {
                    let opts = (Kind::Float, Device::Cpu);
                    let p = Tensor::ones([3], opts).set_requires_grad(true);
                    let q = Tensor::ones([2], opts).set_requires_grad(true);
                    if g.rank() == 0 {
                        (&p * 2.0).sum(Kind::Float).backward();
                    }
                    let mut dp = DataParallel::new(&g, Device::Cpu);
                    dp.grads = GradBuckets::new(vec![p.shallow_clone(), q.shallow_clone()]);
                    let loss = dp.reduce_gradients(g.rank() as f64).unwrap();
                    assert_eq!(loss, 0.5);
                    assert_eq!(Vec::<f32>::try_from(p.grad()).unwrap(), vec![1.0; 3]);
                    assert!(!q.grad().defined());
                });
            }
        });
    }

    #[test]
    fn buckets_hold_at_most_25_mb_per_dtype_in_reverse_order() {
        let opts = |k| (k, Device::Cpu);
        // 4M floats are 16 MB: no two fit in one bucket; the small ones join the last open one.
        let params = vec![
            Tensor::zeros([4 << 20], opts(Kind::Float)),
            Tensor::zeros([10], opts(Kind::Double)),
            Tensor::zeros([4 << 20], opts(Kind::Float)),
            Tensor::zeros([10], opts(Kind::Float)),
        ];
        let b = layout(params);
        let shape: Vec<(Kind, Vec<i64>)> = b.iter().map(|b| (b.kind, b.numels.clone())).collect();
        assert_eq!(
            shape,
            vec![
                (Kind::Float, vec![10, 4 << 20]),
                (Kind::Double, vec![10]),
                (Kind::Float, vec![4 << 20]),
            ]
        );
    }
}
