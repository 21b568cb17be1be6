//! The correlated Gaussian of the MI benchmark (Poole et al. 2019, Sec. 4; vbmi
//! `sample_correlated_gaussian`, `mi_to_rho`, `mi_schedule`): `x ~ N(0, I_d)`,
//! `y = rho x + sqrt(1 - rho^2) eps`, so `I(x; y) = -(d / 2) log(1 - rho^2)`.

use tch::{Device, Kind, Tensor};

use crate::error::{NceError, Result};

/// The true MI of the correlated Gaussian of dimension `dim` and correlation `rho`.
pub fn rho_to_mi(dim: i64, rho: f64) -> f64 {
    -0.5 * (1.0 - rho * rho).ln() * dim as f64
}

/// The correlation that gives `mi` nats in dimension `dim`.
pub fn mi_to_rho(dim: i64, mi: f64) -> f64 {
    (1.0 - (-2.0 / dim as f64 * mi).exp()).sqrt()
}

/// The benchmark's staircase: `steps_per_level` steps at each MI of `levels`, in order
/// (vbmi `mi_schedule`: 2, 4, 6, 8, 10 nats, 4,000 steps each).
pub fn mi_schedule(levels: &[f64], steps_per_level: usize) -> Vec<f64> {
    levels
        .iter()
        .flat_map(|&mi| std::iter::repeat_n(mi, steps_per_level))
        .collect()
}

/// `batch` samples `(x, y)` of the correlated Gaussian, each `[batch, dim]` float32 on `device`,
/// from torch's generator.
pub fn sample(dim: i64, rho: f64, batch: i64, device: Device) -> Result<(Tensor, Tensor)> {
    if !(0.0..1.0).contains(&rho.abs()) || dim < 1 || batch < 1 {
        return Err(NceError::Config(format!(
            "correlated Gaussian needs |rho| < 1, dim >= 1, batch >= 1; got rho {rho}, dim {dim}, batch {batch}"
        )));
    }
    let both = Tensor::randn([batch, 2 * dim], (Kind::Float, device));
    let x = both.narrow(1, 0, dim);
    let eps = both.narrow(1, dim, dim);
    let y = &x * rho + eps * (1.0 - rho * rho).sqrt();
    Ok((x, y))
}

/// The optimal critic: `scores[i, j] = log p(y_i | x_j) - log p(y_i)`, the true log density
/// ratio, for which InfoNCE, DV and NWJ (with `+ 1`) approach the true MI as the batch grows.
pub fn true_log_ratio_scores(x: &Tensor, y: &Tensor, rho: f64) -> Tensor {
    let var = 1.0 - rho * rho;
    let d = x.size()[1] as f64;
    // sum_k (y_ik - rho x_jk)^2 = |y_i|^2 - 2 rho y_i.x_j + rho^2 |x_j|^2
    let y2 = y
        .square()
        .sum_dim_intlist([1i64].as_slice(), true, x.kind());
    let x2 = x
        .square()
        .sum_dim_intlist([1i64].as_slice(), true, x.kind())
        .tr();
    let cross = y.matmul(&x.tr());
    let sq = &y2 - cross * (2.0 * rho) + x2 * (rho * rho);
    let log_cond = sq / (-2.0 * var) - 0.5 * d * (2.0 * std::f64::consts::PI * var).ln();
    let log_marg = &y2 / -2.0 - 0.5 * d * (2.0 * std::f64::consts::PI).ln();
    log_cond - log_marg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mi;

    #[test]
    fn rho_and_mi_invert_each_other_and_the_schedule_steps() {
        for mi in [2.0, 4.0, 10.0] {
            assert!((rho_to_mi(20, mi_to_rho(20, mi)) - mi).abs() < 1e-12);
        }
        let s = mi_schedule(&[2.0, 4.0], 3);
        assert_eq!(s, vec![2.0, 2.0, 2.0, 4.0, 4.0, 4.0]);
        assert!(sample(20, 1.0, 4, Device::Cpu).is_err());
    }

    #[test]
    fn samples_have_the_correlation() {
        let _g = test_support::rng_lock();
        tch::manual_seed(1);
        let rho = 0.6;
        let (x, y) = sample(4, rho, 20_000, Device::Cpu).unwrap();
        let c = (&x * &y).mean(Kind::Double).double_value(&[]);
        assert!((c - rho).abs() < 0.02, "{c}");
    }

    #[test]
    fn bounds_on_the_true_critic_approach_the_true_mi_as_the_batch_grows() {
        let _g = test_support::rng_lock();
        tch::manual_seed(2);
        let (dim, true_mi) = (20, 2.0);
        let rho = mi_to_rho(dim, true_mi);
        let mut infonce_gap = Vec::new();
        for batch in [16, 128, 1024] {
            let (x, y) = sample(dim, rho, batch, Device::Cpu).unwrap();
            let f = true_log_ratio_scores(&x.to_kind(Kind::Double), &y.to_kind(Kind::Double), rho);
            let nce = mi::infonce(&f).unwrap().double_value(&[]);
            assert!(nce <= (batch as f64).ln());
            infonce_gap.push(true_mi - nce);
            // NWJ's optimal critic is 1 + log ratio; at batch 1024 it is near unbiased.
            if batch == 1024 {
                let nwj = mi::nwj(&(&f + 1.0)).unwrap().double_value(&[]);
                let dv = mi::dv(&f).unwrap().double_value(&[]);
                assert!((nwj - true_mi).abs() < 0.3, "nwj {nwj}");
                assert!((dv - true_mi).abs() < 0.3, "dv {dv}");
            }
        }
        assert!(infonce_gap[2] < infonce_gap[0], "{infonce_gap:?}");
        assert!(infonce_gap[2].abs() < 0.2, "{infonce_gap:?}");
    }
}
