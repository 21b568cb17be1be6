//! Contrastive losses: NCE (Gutmann & Hyvarinen 2010), InfoNCE with in-batch or given
//! negatives (van den Oord et al. 2018; the `info-nce-pytorch` package's interface) and
//! NT-Xent (SimCLR, Chen et al. 2020, eq. 1; `pytorch-metric-learning`'s `NTXentLoss`).

use tch::{Kind, Reduction, Tensor};

use crate::error::{check_finite, NceError, Result};

fn shape_err(what: &'static str, expected: String, got: Vec<i64>) -> NceError {
    NceError::Shape {
        what,
        expected,
        got,
    }
}

fn check_temperature(t: f64) -> Result<()> {
    if t > 0.0 && t.is_finite() {
        Ok(())
    } else {
        Err(NceError::Config(format!(
            "temperature must be positive and finite, got {t}"
        )))
    }
}

/// The NCE loss (Gutmann & Hyvarinen 2010, eq. 3-5): logistic regression of data against
/// noise with the classifier's logit `G(u) = log p_model(u) - log p_noise(u) - log nu`, where
/// `nu` noise samples are drawn per data sample and `log p_model` includes a learned
/// log-normaliser. Returns `mean_data softplus(-G) + nu mean_noise softplus(G)`, the negative
/// of the paper's `J_T` (per data sample).
///
/// `model_data` / `noise_data`: `log p_model` and `log p_noise` at the data samples (`[n]`);
/// `model_noise` / `noise_noise`: the same at the noise samples (`[m]`).
pub fn nce_loss(
    model_data: &Tensor,
    noise_data: &Tensor,
    model_noise: &Tensor,
    noise_noise: &Tensor,
    nu: f64,
) -> Result<Tensor> {
    if !(nu > 0.0 && nu.is_finite()) {
        return Err(NceError::Config(format!(
            "NCE noise ratio nu must be positive, got {nu}"
        )));
    }
    for (what, a, b) in [
        ("nce data log-densities", model_data, noise_data),
        ("nce noise log-densities", model_noise, noise_noise),
    ] {
        if a.size() != b.size() || a.dim() != 1 || a.size()[0] == 0 {
            return Err(shape_err(
                what,
                format!(
                    "two equal non-empty [n] vectors (model, noise), got {:?} and",
                    a.size()
                ),
                b.size(),
            ));
        }
        check_finite(what, a)?;
        check_finite(what, b)?;
    }
    let g_data = model_data - noise_data - nu.ln();
    let g_noise = model_noise - noise_noise - nu.ln();
    let kind = g_data.kind();
    Ok((-g_data).softplus().mean(kind) + g_noise.softplus().mean(kind) * nu)
}

/// Where InfoNCE's negatives come from.
#[derive(Debug, Clone, Copy)]
pub enum Negatives<'a> {
    /// The other samples' positives (`logits = q p^T`, label `i`).
    InBatch,
    /// One set `[m, d]` shared by all queries (a memory bank or MoCo's queue).
    Unpaired(&'a Tensor),
    /// Each query's own `[n, m, d]`.
    Paired(&'a Tensor),
}

/// InfoNCE as a loss (van den Oord et al. 2018, eq. 4), as `info_nce` of `info-nce-pytorch`:
/// query, positive and negatives are L2-normalised, the logits (cosine similarities) divided by
/// `temperature`, and the loss is the mean cross-entropy of picking the positive. With
/// in-batch negatives it is `log n - I_NCE` of the cosine critic.
pub fn info_nce_loss(
    query: &Tensor,
    positive: &Tensor,
    negatives: Negatives<'_>,
    temperature: f64,
) -> Result<Tensor> {
    check_temperature(temperature)?;
    let (sq, sp) = (query.size(), positive.size());
    if sq.len() != 2 || sp != sq {
        return Err(shape_err(
            "info_nce positive",
            format!("[n, d] like the query {sq:?}"),
            sp,
        ));
    }
    let (n, d) = (sq[0], sq[1]);
    check_finite("info_nce query", query)?;
    check_finite("info_nce positive", positive)?;
    let q = normalize(query);
    let p = normalize(positive);
    let (logits, labels) = match negatives {
        Negatives::InBatch => {
            if n < 2 {
                return Err(NceError::BatchTooSmall {
                    what: "info_nce in-batch negatives",
                    got: n,
                    min: 2,
                });
            }
            (
                q.matmul(&p.tr()),
                Tensor::arange(n, (Kind::Int64, q.device())),
            )
        }
        Negatives::Unpaired(neg) => {
            let s = neg.size();
            if s.len() != 2 || s[1] != d || s[0] == 0 {
                return Err(shape_err(
                    "info_nce unpaired negatives",
                    format!("[m, {d}]"),
                    s,
                ));
            }
            check_finite("info_nce negatives", neg)?;
            let pos = (&q * &p).sum_dim_intlist([1i64].as_slice(), true, q.kind());
            let negl = q.matmul(&normalize(neg).tr());
            (
                Tensor::cat(&[pos, negl], 1),
                Tensor::zeros([n], (Kind::Int64, q.device())),
            )
        }
        Negatives::Paired(neg) => {
            let s = neg.size();
            if s.len() != 3 || s[0] != n || s[2] != d || s[1] == 0 {
                return Err(shape_err(
                    "info_nce paired negatives",
                    format!("[{n}, m, {d}]"),
                    s,
                ));
            }
            check_finite("info_nce negatives", neg)?;
            let pos = (&q * &p).sum_dim_intlist([1i64].as_slice(), true, q.kind());
            let negl = q
                .unsqueeze(1)
                .matmul(&normalize(neg).transpose(-2, -1))
                .squeeze_dim(1);
            (
                Tensor::cat(&[pos, negl], 1),
                Tensor::zeros([n], (Kind::Int64, q.device())),
            )
        }
    };
    Ok((logits / temperature).cross_entropy_loss::<Tensor>(
        &labels,
        None,
        Reduction::Mean,
        -100,
        0.0,
    ))
}

/// `x / max(|x|_2, 1e-12)` along the last dimension (torch's `F.normalize`).
pub fn normalize(x: &Tensor) -> Tensor {
    let norm = x
        .norm_scalaropt_dim(2, [-1i64].as_slice(), true)
        .clamp_min(1e-12);
    x / norm
}

/// How NT-Xent treats an anchor with several positives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiPositive {
    /// One term per positive pair, whose denominator holds that positive and the anchor's
    /// negatives only; the loss is the mean over positive pairs (`pytorch-metric-learning`'s
    /// `NTXentLoss`).
    PerPair,
    /// Supervised contrastive `L_out` (Khosla et al. 2020, eq. 2): the denominator holds every
    /// other sample; the terms of an anchor's positives are averaged, then the anchors.
    SupCon,
}

/// NT-Xent over `embeddings [m, d]` with `labels [m]` (equal labels are positives): cosine
/// similarities over `temperature`, self-similarity excluded. SimCLR's loss of two views
/// `z1, z2` is [`simclr_loss`]; both directions enter because every sample is an anchor.
pub fn nt_xent(
    embeddings: &Tensor,
    labels: &Tensor,
    temperature: f64,
    mode: MultiPositive,
) -> Result<Tensor> {
    check_temperature(temperature)?;
    let s = embeddings.size();
    if s.len() != 2 || s[0] < 2 {
        return Err(shape_err(
            "nt_xent embeddings",
            "[m, d] with m >= 2".into(),
            s,
        ));
    }
    let m = s[0];
    if labels.size() != [m] {
        return Err(shape_err(
            "nt_xent labels",
            format!("[{m}] (one per embedding)"),
            labels.size(),
        ));
    }
    check_finite("nt_xent embeddings", embeddings)?;
    let z = normalize(embeddings);
    let sim = z.matmul(&z.tr()) / temperature;
    let eye = Tensor::eye(m, (Kind::Bool, z.device()));
    let same = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
    let pos = same.logical_and(&eye.logical_not());
    let neg = same.logical_not();
    let n_pos = pos.sum(Kind::Int64).int64_value(&[]);
    if n_pos == 0 {
        return Err(NceError::Config(format!(
            "nt_xent: no two embeddings share a label among {m}: no positive pair"
        )));
    }
    let neg_inf = f64::NEG_INFINITY;
    match mode {
        MultiPositive::PerPair => {
            // log(e^{s_ap} + sum_n e^{s_an}) for each (a, p): logaddexp of the positive and the
            // anchor's negatives' logsumexp.
            let neg_lse = sim
                .masked_fill(&neg.logical_not(), neg_inf)
                .logsumexp([1i64].as_slice(), true);
            let denom = sim.logaddexp(&neg_lse.expand_as(&sim));
            let terms = (denom - &sim).masked_select(&pos);
            Ok(terms.mean(sim.kind()))
        }
        MultiPositive::SupCon => {
            let log_prob = &sim
                - sim
                    .masked_fill(&eye, neg_inf)
                    .logsumexp([1i64].as_slice(), true);
            let pos_f = pos.to_kind(sim.kind());
            let per_anchor_count = pos_f.sum_dim_intlist([1i64].as_slice(), false, sim.kind());
            let has = per_anchor_count.gt(0.0);
            let per_anchor = (log_prob.masked_fill(&pos.logical_not(), 0.0)).sum_dim_intlist(
                [1i64].as_slice(),
                false,
                sim.kind(),
            ) / per_anchor_count.clamp_min(1.0);
            Ok(-(per_anchor.masked_select(&has)).mean(sim.kind()))
        }
    }
}

/// SimCLR's NT-Xent of two views `[n, d]` (sample `i` of `z1` and of `z2` are the positive
/// pair): the mean over the `2n` anchors.
pub fn simclr_loss(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<Tensor> {
    if z1.size() != z2.size() || z1.dim() != 2 {
        return Err(shape_err(
            "simclr views",
            format!("two [n, d] views of one shape, the first {:?}", z1.size()),
            z2.size(),
        ));
    }
    check_temperature(temperature)?;
    let n = z1.size()[0];
    if n < 1 {
        return Err(shape_err(
            "simclr views",
            "[n, d] with n >= 1".into(),
            z1.size(),
        ));
    }
    let z = Tensor::cat(&[z1, z2], 0);
    check_finite("simclr views", &z)?;
    // One positive per anchor: NT-Xent's per-pair term is the cross-entropy of the anchor's
    // row, self-similarity masked, with the other view as the target. This is the general
    // `nt_xent(.., PerPair)` (tested equal) in one fused kernel, without its masks.
    let z = normalize(&z);
    let eye = Tensor::eye(2 * n, (Kind::Bool, z.device()));
    let sim = (z.matmul(&z.tr()) / temperature).masked_fill(&eye, f64::NEG_INFINITY);
    let targets = (Tensor::arange(2 * n, (Kind::Int64, z.device())) + n).remainder(2 * n);
    Ok(sim.cross_entropy_loss::<Tensor>(&targets, None, Reduction::Mean, -100, 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn v(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    #[test]
    fn orthonormal_identity_batch_at_tau_one() {
        // Both views equal and orthonormal: s_ii = 1, s_ij = 0, so each anchor's loss is
        // -log(e / (e + (2n - 2) e^0)) over its 2n - 2 negatives; info_nce of q = p with
        // in-batch negatives gives ln(1 + (n - 1) / e).
        let n = 6;
        let z = Tensor::eye(n, (Kind::Double, Device::Cpu));
        let e = std::f64::consts::E;
        let nce = v(&info_nce_loss(&z, &z, Negatives::InBatch, 1.0).unwrap());
        assert!(
            (nce - (1.0 + (n as f64 - 1.0) / e).ln()).abs() < 1e-12,
            "{nce}"
        );
        let nt = v(&simclr_loss(&z, &z, 1.0).unwrap());
        assert!(
            (nt - (1.0 + (2.0 * n as f64 - 2.0) / e).ln()).abs() < 1e-12,
            "{nt}"
        );
    }

    #[test]
    fn one_positive_per_anchor_makes_both_modes_agree() {
        let _g = test_support::rng_lock();
        tch::manual_seed(0);
        let z = Tensor::randn([8, 5], (Kind::Double, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 0, 1, 2, 3]);
        let a = v(&nt_xent(&z, &labels, 0.5, MultiPositive::PerPair).unwrap());
        let b = v(&nt_xent(&z, &labels, 0.5, MultiPositive::SupCon).unwrap());
        assert!((a - b).abs() < 1e-12);
        // Three of a class: the modes differ (SupCon's denominators hold the other positives).
        let labels = Tensor::from_slice(&[0i64, 0, 0, 1, 1, 2, 2, 3]);
        let a = v(&nt_xent(&z, &labels, 0.5, MultiPositive::PerPair).unwrap());
        let b = v(&nt_xent(&z, &labels, 0.5, MultiPositive::SupCon).unwrap());
        assert!(b > a);
    }

    #[test]
    fn unpaired_negatives_equal_in_batch_when_they_are_the_other_positives() {
        let _g = test_support::rng_lock();
        tch::manual_seed(1);
        let q = Tensor::randn([1, 4], (Kind::Double, Device::Cpu));
        let p = Tensor::randn([1, 4], (Kind::Double, Device::Cpu));
        let neg = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
        let unpaired = v(&info_nce_loss(&q, &p, Negatives::Unpaired(&neg), 0.2).unwrap());
        let paired = v(&info_nce_loss(&q, &p, Negatives::Paired(&neg.unsqueeze(0)), 0.2).unwrap());
        assert!((unpaired - paired).abs() < 1e-12);
    }

    #[test]
    fn nce_recovers_the_log_normaliser_of_a_gaussian() {
        // Small kernels: one thread is faster than two contending ones on a shared machine.
        tch::set_num_threads(1);
        let _g = test_support::rng_lock();
        tch::manual_seed(3);
        // Data N(0, sigma^2) modelled as -x^2 / (2 sigma^2) + c; noise N(0, (2 sigma)^2), nu = 1.
        let sigma = 0.7f64;
        let n = 20_000;
        let opts = (Kind::Double, Device::Cpu);
        let data = Tensor::randn([n], opts) * sigma;
        let noise = Tensor::randn([n], opts) * (2.0 * sigma);
        let log_noise = |x: &Tensor| {
            x.square() / (-2.0 * 4.0 * sigma * sigma)
                - (2.0 * std::f64::consts::PI * 4.0 * sigma * sigma).ln() / 2.0
        };
        let mut c = Tensor::zeros([1], opts).set_requires_grad(true);
        let model = |x: &Tensor, c: &Tensor| x.square() / (-2.0 * sigma * sigma) + c;
        let (ln_d, ln_n) = (log_noise(&data), log_noise(&noise));
        for _ in 0..300 {
            let loss = nce_loss(&model(&data, &c), &ln_d, &model(&noise, &c), &ln_n, 1.0).unwrap();
            let g = Tensor::run_backward(&[loss], &[&c], false, false).remove(0);
            tch::no_grad(|| {
                let _ = c.f_sub_(&(g * 2.0)).unwrap();
            });
        }
        let truth = -(2.0 * std::f64::consts::PI * sigma * sigma).ln() / 2.0;
        let got = c.double_value(&[0]);
        assert!((got - truth).abs() < 0.03, "c = {got}, -log Z = {truth}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let opts = (Kind::Float, Device::Cpu);
        let q = Tensor::zeros([3, 4], opts);
        let e = info_nce_loss(&q, &Tensor::zeros([3, 5], opts), Negatives::InBatch, 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[3, 5]"), "{e}");
        assert!(info_nce_loss(&q, &q, Negatives::InBatch, 0.0).is_err());
        let one = Tensor::ones([1, 4], opts);
        assert!(info_nce_loss(&one, &one, Negatives::InBatch, 0.1).is_err());
        let neg = Tensor::zeros([2, 5, 4], opts);
        let e = info_nce_loss(&q, &q, Negatives::Paired(&neg), 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[3, m, 4]"), "{e}");
        let labels = Tensor::from_slice(&[0i64, 1, 2]);
        assert!(nt_xent(&q, &labels, 0.1, MultiPositive::PerPair).is_err());
        let nan = Tensor::full([2, 4], f64::NAN, opts);
        assert!(simclr_loss(&nan, &nan, 0.1).is_err());
        let d = Tensor::zeros([4], opts);
        assert!(nce_loss(&d, &Tensor::zeros([3], opts), &d, &d, 1.0).is_err());
    }

    #[test]
    fn simclr_loss_equals_per_pair_nt_xent_in_value_and_gradient() {
        let _g = test_support::rng_lock();
        tch::manual_seed(5);
        let opts = (Kind::Double, Device::Cpu);
        for n in [1i64, 2, 7] {
            let z1 = Tensor::randn([n, 5], opts).set_requires_grad(true);
            let z2 = Tensor::randn([n, 5], opts).set_requires_grad(true);
            let fast = simclr_loss(&z1, &z2, 0.3).unwrap();
            let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).repeat([2]);
            let general = nt_xent(
                &Tensor::cat(&[&z1, &z2], 0),
                &labels,
                0.3,
                MultiPositive::PerPair,
            )
            .unwrap();
            assert!((v(&fast) - v(&general)).abs() < 1e-12, "n = {n}");
            let g_fast = Tensor::run_backward(&[&fast], &[&z1, &z2], false, false);
            let g_gen = Tensor::run_backward(&[&general], &[&z1, &z2], false, false);
            for (a, b) in g_fast.iter().zip(&g_gen) {
                assert!(a.allclose(b, 1e-12, 1e-12, false), "n = {n}");
            }
        }
        let opts = (Kind::Float, Device::Cpu);
        assert!(simclr_loss(
            &Tensor::zeros([0, 4], opts),
            &Tensor::zeros([0, 4], opts),
            0.1
        )
        .is_err());
        assert!(simclr_loss(
            &Tensor::ones([2, 4], opts),
            &Tensor::ones([2, 4], opts),
            0.0
        )
        .is_err());
    }
}
