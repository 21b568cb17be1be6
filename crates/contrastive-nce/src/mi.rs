//! Variational bounds on mutual information from a critic's score matrix (Poole et al. 2019,
//! "On Variational Bounds of Mutual Information", arXiv 1905.06922; Song & Ermon 2020, SMILE,
//! arXiv 1910.06222).
//!
//! One convention throughout, the vbmi notebook's (`google-research/vbmi/vbmi_demo.ipynb`,
//! "Implementation notes"): `scores[i, j] = f(x_j, y_i)` for a batch of `n` pairs drawn from
//! the joint, so the diagonal holds the `n` joint samples and the `n (n - 1)` off-diagonal
//! entries the product of the marginals. A baseline `log a(y)` is one value per row `i`.
//! Every function returns a scalar tensor that carries the gradient the bound trains the
//! critic with: maximise it (`loss = -mi`).

use tch::{Kind, Tensor};

use crate::error::{check_row_vector, check_scores, NceError, Result};

/// The estimators, as the benchmark and [`estimate`] name them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// InfoNCE / CPC (van den Oord et al. 2018): bounded by `log n`.
    InfoNce,
    /// NWJ / f-GAN KL / MINE-f (Nguyen, Wainwright & Jordan 2010): TUBA with `a(y) = e`.
    Nwj,
    /// TUBA with a learned log-baseline `log a(y)` (Poole et al. eq. 8).
    Tuba,
    /// Donsker-Varadhan with the log outside (an upper-bounded lower bound, SMILE's `dv`).
    Dv,
    /// MINE (Belghazi et al. 2018): DV whose partition gradient is debiased by a moving
    /// average of the denominator.
    Mine {
        /// Weight of the old average (SMILE: 0.9).
        momentum: f64,
    },
    /// The critic trained with the Jensen-Shannon f-GAN bound, the MI reported through NWJ.
    Js,
    /// The interpolated bound `I_alpha` (Poole et al. eq. 15) with the leave-one-out InfoNCE
    /// baseline mixed with a learned baseline.
    Interpolated {
        /// `logit(alpha)`.
        alpha_logit: f64,
    },
    /// SMILE: DV with the scores clipped to `[-tau, tau]` inside the partition term only,
    /// trained through the JS bound; `None` is `tau = inf`.
    Smile {
        /// The clip `tau`.
        clip: Option<f64>,
    },
}

impl Estimator {
    /// Whether the estimator reads a learned baseline `log a(y)`.
    pub fn needs_baseline(&self) -> bool {
        matches!(self, Estimator::Tuba | Estimator::Interpolated { .. })
    }

    /// A short name for plots and tables (`InfoNCE`, `alpha=0.01`, `SMILE (tau=1)`).
    pub fn name(&self) -> String {
        match self {
            Estimator::InfoNce => "InfoNCE".into(),
            Estimator::Nwj => "NWJ".into(),
            Estimator::Tuba => "TUBA".into(),
            Estimator::Dv => "DV".into(),
            Estimator::Mine { .. } => "MINE".into(),
            Estimator::Js => "JS".into(),
            Estimator::Interpolated { alpha_logit } => {
                format!("alpha={:.2}", 1.0 / (1.0 + (-alpha_logit).exp()))
            }
            Estimator::Smile { clip: Some(c) } => format!("SMILE (tau={c})"),
            Estimator::Smile { clip: None } => "SMILE (tau=inf)".into(),
        }
    }
}

/// The moving average of MINE's denominator `E_{p(x)p(y)}[e^f]` (SMILE's `buffer`, 1.0 at
/// the start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MovingAverage {
    /// The current average.
    pub value: f64,
}

impl Default for MovingAverage {
    fn default() -> Self {
        MovingAverage { value: 1.0 }
    }
}

/// Which of the inputs an estimate reads besides the scores.
#[derive(Default)]
pub struct Extras<'a> {
    /// `log a(y_i)`, one per row (TUBA, interpolated).
    pub log_baseline: Option<&'a Tensor>,
    /// MINE's moving average, updated by the call.
    pub mine_average: Option<&'a mut MovingAverage>,
}

/// The MI estimate of `estimator` on `scores` (see the module docs for the convention).
pub fn estimate(estimator: Estimator, scores: &Tensor, extras: Extras<'_>) -> Result<Tensor> {
    let baseline = || {
        extras
            .log_baseline
            .ok_or_else(|| NceError::Config(format!("{} needs a log-baseline", estimator.name())))
    };
    match estimator {
        Estimator::InfoNce => infonce(scores),
        Estimator::Nwj => nwj(scores),
        Estimator::Tuba => tuba(scores, Some(baseline()?)),
        Estimator::Dv => dv(scores),
        Estimator::Mine { momentum } => {
            let mut own = MovingAverage::default();
            let avg = match extras.mine_average {
                Some(a) => a,
                None => &mut own,
            };
            mine(scores, avg, momentum)
        }
        Estimator::Js => js(scores),
        Estimator::Interpolated { alpha_logit } => interpolated(scores, baseline()?, alpha_logit),
        Estimator::Smile { clip } => smile(scores, clip),
    }
}

fn eye_mask(n: i64, like: &Tensor) -> Tensor {
    Tensor::eye(n, (Kind::Bool, like.device()))
}

/// `log mean exp` of the off-diagonal entries of `x`: over all `n (n - 1)` of them
/// (`dim = None`) or along one dimension (`n - 1` per row or column). vbmi's
/// `reduce_logmeanexp_nodiag`.
pub fn logmeanexp_nodiag(x: &Tensor, dim: Option<i64>) -> Result<Tensor> {
    let n = check_scores("logmeanexp_nodiag scores", x)?;
    Ok(lme_nodiag(x, n, dim))
}

// The unchecked forms the public functions share once their input is checked.
fn lme_nodiag(x: &Tensor, n: i64, dim: Option<i64>) -> Tensor {
    let masked = x.masked_fill(&eye_mask(n, x), f64::NEG_INFINITY);
    match dim {
        None => masked.logsumexp([0i64, 1].as_slice(), false) - ((n * (n - 1)) as f64).ln(),
        Some(d) => masked.logsumexp([d].as_slice(), false) - ((n - 1) as f64).ln(),
    }
}

fn tuba_raw(s: &Tensor, n: i64) -> Tensor {
    let joint = s.diagonal(0, 0, 1).mean(s.kind());
    let marg = lme_nodiag(s, n, None).exp();
    joint - marg + 1.0
}

fn js_fgan_raw(scores: &Tensor, n: i64) -> Tensor {
    let diag = scores.diagonal(0, 0, 1);
    let first = (-(-&diag).softplus()).mean(scores.kind());
    let second = (scores.softplus().sum(scores.kind()) - diag.softplus().sum(scores.kind()))
        / (n * (n - 1)) as f64;
    first - second
}

/// TUBA (Poole et al. eq. 8): `1 + E_p[f - log a] - E_{p(x)p(y)}[e^{f - log a}]` with the
/// log-baseline subtracted from each row; without one it is `a = 1`. vbmi `tuba_lower_bound`.
pub fn tuba(scores: &Tensor, log_baseline: Option<&Tensor>) -> Result<Tensor> {
    let n = check_scores("tuba scores", scores)?;
    let s = match log_baseline {
        Some(b) => scores - check_row_vector("tuba log_baseline", b, n)?.unsqueeze(1),
        None => scores.shallow_clone(),
    };
    Ok(tuba_raw(&s, n))
}

/// NWJ: TUBA of `scores - 1` (the constant baseline `a = e`). vbmi `nwj_lower_bound`.
pub fn nwj(scores: &Tensor) -> Result<Tensor> {
    let n = check_scores("nwj scores", scores)?;
    Ok(tuba_raw(&(scores - 1.0), n))
}

/// InfoNCE (van den Oord et al. 2018; Poole et al. eq. 12):
/// `log n + mean_i (f_ii - logsumexp_j f_ij)`, at most `log n`. vbmi `infonce_lower_bound`.
pub fn infonce(scores: &Tensor) -> Result<Tensor> {
    let n = check_scores("infonce scores", scores)?;
    let nll =
        (scores.diagonal(0, 0, 1) - scores.logsumexp([1i64].as_slice(), false)).mean(scores.kind());
    Ok(nll + (n as f64).ln())
}

/// The Jensen-Shannon f-GAN bound (Nowozin et al. 2016):
/// `E_p[-softplus(-f)] - E_{p(x)p(y)}[softplus(f)]`. vbmi `js_fgan_lower_bound`.
pub fn js_fgan(scores: &Tensor) -> Result<Tensor> {
    let n = check_scores("js scores", scores)?;
    Ok(js_fgan_raw(scores, n))
}

/// `value` in the forward pass, the gradient of `grad_of` in the backward pass
/// (`grad_of + stop_gradient(value - grad_of)`, vbmi's trick).
fn value_with_grad_of(value: &Tensor, grad_of: &Tensor) -> Tensor {
    grad_of + (value - grad_of).detach()
}

/// The critic trained with [`js_fgan`], the MI read through [`nwj`]: the value is NWJ's, the
/// gradient JS's. vbmi `js_lower_bound`.
pub fn js(scores: &Tensor) -> Result<Tensor> {
    let n = check_scores("js scores", scores)?;
    let mi = tuba_raw(&(scores - 1.0), n);
    let j = js_fgan_raw(scores, n);
    Ok(value_with_grad_of(&mi, &j))
}

/// Donsker-Varadhan with the log outside: `E_p[f] - log E_{p(x)p(y)}[e^f]`. SMILE
/// `dv_upper_lower_bound`.
pub fn dv(scores: &Tensor) -> Result<Tensor> {
    let n = check_scores("dv scores", scores)?;
    let first = scores.diagonal(0, 0, 1).mean(scores.kind());
    Ok(first - lme_nodiag(scores, n, None))
}

/// MINE: the value is DV's; the partition term's gradient is `grad(E[e^f]) / m`, with `m` the
/// moving average `momentum * m + (1 - momentum) * E[e^f]` (clamped at 1e-4), which the call
/// updates. SMILE `mine_lower_bound`.
pub fn mine(scores: &Tensor, average: &mut MovingAverage, momentum: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&momentum) {
        return Err(NceError::Config(format!(
            "MINE momentum must lie in [0, 1], got {momentum}"
        )));
    }
    let n = check_scores("mine scores", scores)?;
    let first = scores.diagonal(0, 0, 1).mean(scores.kind());
    let lme = lme_nodiag(scores, n, None);
    let update = lme.exp();
    let new = (average.value * momentum + update.double_value(&[]) * (1.0 - momentum)).max(1e-4);
    let ratio = &update / new;
    average.value = new;
    Ok(first - lme.detach() - &ratio + ratio.detach())
}

/// `log(alpha a + (1 - alpha) b)` from `log a`, `log b` and `logit(alpha)`, stably. vbmi
/// `log_interpolate`.
pub fn log_interpolate(log_a: &Tensor, log_b: &Tensor, alpha_logit: f64) -> Tensor {
    let log_alpha = -softplus_scalar(-alpha_logit);
    let log_1m_alpha = -softplus_scalar(alpha_logit);
    Tensor::stack(&[log_a + log_alpha, log_b + log_1m_alpha], 0).logsumexp([0i64].as_slice(), false)
}

fn softplus_scalar(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// The leave-one-out `log mean exp` of each row: entry `[i, j]` is
/// `log (1 / (n - 1)) sum_{k != j} e^{f_ik}`, computed as `f_ij + softplus^{-1}(lse_i - f_ij)`.
/// vbmi `compute_log_loomean` (after tfp's `csiszar_vimco_helper`).
pub fn log_loomean(scores: &Tensor) -> Result<Tensor> {
    let n = check_scores("log_loomean scores", scores)?;
    Ok(loo_raw(scores, n))
}

fn loo_raw(scores: &Tensor, n: i64) -> Tensor {
    let max = scores.amax([1i64].as_slice(), true);
    let lse_minus_max = (scores - &max).logsumexp([1i64].as_slice(), true);
    let d = lse_minus_max + (&max - scores);
    let d_ok = d.ne(0.0);
    let safe_d = d.where_self(&d_ok, &d.ones_like());
    // softplus^{-1}(d) = log(e^d - 1) = d + log(-expm1(-d))
    let inv = &safe_d + (-(-&safe_d).expm1()).log();
    scores + inv - ((n - 1) as f64).ln()
}

/// The interpolated bound `I_alpha` (Poole et al. eq. 15; vbmi `interpolated_lower_bound`):
/// the baseline of row `i` held out at `j` mixes the leave-one-out InfoNCE mean with the
/// learned `log a(y_i)` with weight `alpha = sigmoid(alpha_logit)`. It interpolates between
/// InfoNCE (`alpha -> 1`) and TUBA (`alpha -> 0`), and stays below `1 + log n - log alpha`.
pub fn interpolated(scores: &Tensor, log_baseline: &Tensor, alpha_logit: f64) -> Result<Tensor> {
    let n = check_scores("interpolated scores", scores)?;
    let b = check_row_vector("interpolated log_baseline", log_baseline, n)?;
    let nce_baseline = loo_raw(scores, n);
    let interp = log_interpolate(
        &nce_baseline,
        &b.unsqueeze(1).expand([n, n], false),
        alpha_logit,
    );
    let critic_marg = scores - interp.diagonal(0, 0, 1).unsqueeze(1);
    let marg = lme_nodiag(&critic_marg, n, None).exp();
    let critic_joint = scores.diagonal(0, 0, 1).unsqueeze(1) - &interp;
    let joint = (critic_joint.sum(scores.kind())
        - critic_joint.diagonal(0, 0, 1).sum(scores.kind()))
        / (n * (n - 1)) as f64;
    Ok(joint - marg + 1.0)
}

/// SMILE (Song & Ermon 2020, eq. 17; `estimators.py` `smile_lower_bound`): the partition term
/// `z = logmeanexp_nodiag(clip(f, -tau, tau))` uses the clipped scores, the first term
/// `mean(diag f)` the unclipped ones; the value is that DV estimate, the gradient the JS
/// bound's.
pub fn smile(scores: &Tensor, clip: Option<f64>) -> Result<Tensor> {
    let n = check_scores("smile scores", scores)?;
    let clipped = match clip {
        Some(tau) if tau > 0.0 => scores.clamp(-tau, tau),
        Some(tau) => {
            return Err(NceError::Config(format!(
                "SMILE clip tau must be positive, got {tau}"
            )))
        }
        None => scores.shallow_clone(),
    };
    let z = lme_nodiag(&clipped, n, None);
    let dv = scores.diagonal(0, 0, 1).mean(scores.kind()) - z;
    let j = js_fgan_raw(scores, n);
    Ok(value_with_grad_of(&dv, &j))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn scores(n: i64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn([n, n], (Kind::Double, Device::Cpu))
    }

    fn v(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    #[test]
    fn infonce_of_equal_scores_is_zero_and_a_perfect_critic_gives_log_n() {
        let _g = test_support::rng_lock();
        for n in [2, 7, 64] {
            let eq = Tensor::full([n, n], 0.3, (Kind::Double, Device::Cpu));
            // Equal scores: each row's softmax is uniform, the bound is log n + log(1/n) = 0.
            assert!(v(&infonce(&eq).unwrap()).abs() < 1e-12);
            // The loss (cross-entropy) of equal scores is log n.
            let loss = -(v(&infonce(&eq).unwrap()) - (n as f64).ln());
            assert!((loss - (n as f64).ln()).abs() < 1e-12);
            // A diagonal far above the rest reaches the ceiling log n from below.
            let sharp = Tensor::eye(n, (Kind::Double, Device::Cpu)) * 50.0;
            let mi = v(&infonce(&sharp).unwrap());
            assert!(mi <= (n as f64).ln() && mi > (n as f64).ln() - 1e-9, "{mi}");
        }
        let s = scores(16, 1) * 10.0;
        assert!(v(&infonce(&s).unwrap()) <= 16f64.ln());
    }

    #[test]
    fn tuba_nwj_dv_on_constant_scores() {
        let n = 8;
        let c = 0.7;
        let s = Tensor::full([n, n], c, (Kind::Double, Device::Cpu));
        // TUBA = 1 + c - e^c; NWJ = 1 + (c - 1) - e^{c - 1}; DV = 0.
        assert!((v(&tuba(&s, None).unwrap()) - (1.0 + c - c.exp())).abs() < 1e-12);
        assert!((v(&nwj(&s).unwrap()) - (c - (c - 1.0).exp())).abs() < 1e-12);
        assert!(v(&dv(&s).unwrap()).abs() < 1e-12);
        // A baseline equal to the scores makes TUBA 1 + 0 - 1 = 0.
        let b = Tensor::full([n], c, (Kind::Double, Device::Cpu));
        assert!(v(&tuba(&s, Some(&b)).unwrap()).abs() < 1e-12);
        // The JS f-GAN bound of zero scores is -2 log 2 (its minimum over f is at f = 0 for
        // independent data), and SMILE with any clip equals DV's value = 0.
        let z = Tensor::zeros([n, n], (Kind::Double, Device::Cpu));
        assert!((v(&js_fgan(&z).unwrap()) + 2.0 * 2f64.ln()).abs() < 1e-12);
        assert!(v(&smile(&s, Some(1.0)).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn smile_clips_only_the_partition_term() {
        let _g = test_support::rng_lock();
        let s = scores(10, 3) * 4.0;
        let tau = 1.0;
        let expected = v(&s.diagonal(0, 0, 1).mean(Kind::Double))
            - v(&logmeanexp_nodiag(&s.clamp(-tau, tau), None).unwrap());
        assert!((v(&smile(&s, Some(tau)).unwrap()) - expected).abs() < 1e-12);
        // Without a clip it is DV.
        assert!((v(&smile(&s, None).unwrap()) - v(&dv(&s).unwrap())).abs() < 1e-12);
    }

    #[test]
    fn loo_mean_holds_out_the_column() {
        let _g = test_support::rng_lock();
        let s = scores(5, 4);
        let loo = log_loomean(&s).unwrap();
        let rows: Vec<Vec<f64>> = Vec::try_from(&s).unwrap();
        for (i, row) in rows.iter().enumerate() {
            for j in 0..5 {
                let sum: f64 = (0..5).filter(|&k| k != j).map(|k| row[k].exp()).sum();
                let want = (sum / 4.0).ln();
                assert!((loo.double_value(&[i as i64, j as i64]) - want).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn interpolated_reaches_infonce_and_tuba_at_its_ends() {
        let _g = test_support::rng_lock();
        let s = scores(12, 5);
        let b = Tensor::randn([12], (Kind::Double, Device::Cpu));
        // alpha -> 0: the learned baseline only, i.e. TUBA with that baseline.
        let lo = v(&interpolated(&s, &b, -40.0).unwrap());
        assert!((lo - v(&tuba(&s, Some(&b)).unwrap())).abs() < 1e-8, "{lo}");
        // alpha -> 1: below the InfoNCE ceiling 1 + log n - log alpha = 1 + log n.
        let hi = v(&interpolated(&(&s * 20.0), &b, 40.0).unwrap());
        assert!(hi <= 1.0 + 12f64.ln());
    }

    #[test]
    fn mine_value_is_dv_and_its_average_moves() {
        let _g = test_support::rng_lock();
        let s = scores(6, 6);
        let mut avg = MovingAverage::default();
        let m = v(&mine(&s, &mut avg, 0.9).unwrap());
        assert!((m - v(&dv(&s).unwrap())).abs() < 1e-12);
        let update = v(&logmeanexp_nodiag(&s, None).unwrap().exp());
        assert!((avg.value - (0.9 + 0.1 * update)).abs() < 1e-12);
        assert!(mine(&s, &mut avg, 1.5).is_err());
    }

    #[test]
    fn js_value_is_nwj_gradient_is_js() {
        let _g = test_support::rng_lock();
        let s = scores(6, 7).set_requires_grad(true);
        let out = js(&s).unwrap();
        assert!((v(&out) - v(&nwj(&s).unwrap())).abs() < 1e-12);
        let g = Tensor::run_backward(&[out], &[&s], false, false).remove(0);
        let g_js = Tensor::run_backward(&[js_fgan(&s).unwrap()], &[&s], false, false).remove(0);
        assert!(g.allclose(&g_js, 1e-12, 1e-12, false));
    }

    #[test]
    fn bad_scores_are_refused_with_what_arrived() {
        let rect = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        let e = infonce(&rect).unwrap_err().to_string();
        assert!(e.contains("square") && e.contains("[3, 4]"), "{e}");
        let one = Tensor::zeros([1, 1], (Kind::Float, Device::Cpu));
        let e = nwj(&one).unwrap_err().to_string();
        assert!(e.contains("batch of 1"), "{e}");
        let nan = Tensor::zeros([3, 3], (Kind::Float, Device::Cpu));
        let _ = nan.get(1).get(2).fill_(f64::NAN);
        let e = dv(&nan).unwrap_err().to_string();
        assert!(e.contains("1 non-finite"), "{e}");
        let s = Tensor::zeros([4, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let e = tuba(&s, Some(&b)).unwrap_err().to_string();
        assert!(e.contains("[4]") && e.contains("[3]"), "{e}");
        assert!(estimate(Estimator::Tuba, &s, Extras::default()).is_err());
        assert!(smile(&s, Some(0.0)).is_err());
    }
}
