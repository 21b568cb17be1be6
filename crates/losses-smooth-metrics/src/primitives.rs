//! The smooth primitives of Su Jianlin's "函数光滑化杂谈" (kexue.fm/archives/6620): each is the
//! hard operation's limit as the temperature `tau -> 0`, with the bound it obeys for `tau > 0`.
//!
//! | primitive | formula | bound / limit |
//! |---|---|---|
//! | [`smooth_max`] | `tau * logsumexp(x / tau)` | `max <= . <= max + tau ln n` |
//! | [`smooth_min`] | `-smooth_max(-x)` | `min - tau ln n <= . <= min` |
//! | [`soft_argmax`] | `softmax(x / tau)` | `-> one_hot(argmax)` |
//! | [`soft_argmax_index`] | `sum_i i softmax(x / tau)_i` | `-> argmax` |
//! | [`smooth_step`] | `sigmoid(x / tau)` | `-> [x > 0]` |
//! | [`smooth_abs`] | `smooth_max(x, -x)` | `|x| <= . <= |x| + tau ln 2` |
//! | [`smooth_relu`] | `tau softplus(x / tau)` = `smooth_max(x, 0)` | `relu <= . <= relu + tau ln 2` |
//! | [`smooth_top_k`] | `sigmoid((x - t) / tau)`, `t` midway between the k-th and (k+1)-th largest | `-> [x in top k]`, sums to k in the limit |
//! | [`smooth_ranks`] | `1 + sum_{j != i} sigmoid((x_j - x_i) / tau)` | `->` the rank (1 = largest) when scores differ by `>> tau` |

use tch::{Kind, Tensor};

use crate::check;
use crate::error::{Result, SmoothError};

fn dim_len(x: &Tensor, dim: i64) -> Result<i64> {
    let d = x.dim() as i64;
    let axis = if dim < 0 { dim + d } else { dim };
    if d == 0 || !(0..d).contains(&axis) {
        return Err(SmoothError::Shape {
            what: "x",
            expected: format!("a tensor with dimension {dim}"),
            got: x.size(),
            kind: format!("{:?}", x.kind()),
        });
    }
    Ok(x.size()[axis as usize])
}

fn checked(x: &Tensor, tau: f64) -> Result<()> {
    check::temperature("tau", tau)?;
    check::scores("x", x)
}

/// Smooth maximum along `dim`: `tau * logsumexp(x / tau)`; `max <= . <= max + tau ln n`.
pub fn smooth_max(x: &Tensor, dim: i64, tau: f64) -> Result<Tensor> {
    checked(x, tau)?;
    dim_len(x, dim)?;
    Ok((x / tau).logsumexp([dim], false) * tau)
}

/// Smooth minimum along `dim`: `-smooth_max(-x)`; `min - tau ln n <= . <= min`.
pub fn smooth_min(x: &Tensor, dim: i64, tau: f64) -> Result<Tensor> {
    Ok(-smooth_max(&(-x), dim, tau)?)
}

/// Smooth one-hot of the argmax along `dim`: `softmax(x / tau)`.
pub fn soft_argmax(x: &Tensor, dim: i64, tau: f64) -> Result<Tensor> {
    checked(x, tau)?;
    dim_len(x, dim)?;
    Ok((x / tau).softmax(dim, x.kind()))
}

/// Smooth index of the argmax along `dim` (removed): `sum_i i * softmax(x / tau)_i`.
pub fn soft_argmax_index(x: &Tensor, dim: i64, tau: f64) -> Result<Tensor> {
    let n = dim_len(x, dim)?;
    let p = soft_argmax(x, dim, tau)?;
    let mut shape = vec![1i64; x.dim()];
    let axis = if dim < 0 { dim + x.dim() as i64 } else { dim } as usize;
    shape[axis] = n;
    let idx = Tensor::arange(n, (x.kind(), x.device())).view(shape.as_slice());
    Ok((p * idx).sum_dim_intlist([dim].as_slice(), false, x.kind()))
}

/// Smooth Heaviside step: `sigmoid(x / tau)`, `-> [x > 0]` (`1/2` at `x = 0`).
pub fn smooth_step(x: &Tensor, tau: f64) -> Result<Tensor> {
    checked(x, tau)?;
    Ok((x / tau).sigmoid())
}

/// Smooth absolute value, `smooth_max(x, -x) = tau ln(e^{x/tau} + e^{-x/tau})`:
/// `|x| <= . <= |x| + tau ln 2`; its derivative is `tanh(x / tau)`.
pub fn smooth_abs(x: &Tensor, tau: f64) -> Result<Tensor> {
    checked(x, tau)?;
    Ok(Tensor::stack(&[x / tau, -x / tau], 0).logsumexp([0], false) * tau)
}

/// Smooth ReLU, `smooth_max(x, 0) = tau softplus(x / tau)`: `relu <= . <= relu + tau ln 2`.
pub fn smooth_relu(x: &Tensor, tau: f64) -> Result<Tensor> {
    checked(x, tau)?;
    Ok((x / tau).softplus() * tau)
}

/// Smooth indicator of the `k` largest entries along the last dimension:
/// `sigmoid((x - t) / tau)` with `t` midway between the k-th and the (k+1)-th largest value
/// (gradients flow through `t` too). Needs `1 <= k < n`.
pub fn smooth_top_k(x: &Tensor, k: i64, tau: f64) -> Result<Tensor> {
    checked(x, tau)?;
    let n = dim_len(x, -1)?;
    if !(1..n).contains(&k) {
        return Err(SmoothError::Config(format!(
            "smooth_top_k: k {k} with {n} entries: expected 1 <= k < n"
        )));
    }
    let (top, _) = x.topk(k + 1, -1, true, true);
    let t = (top.narrow(-1, k - 1, 1) + top.narrow(-1, k, 1)) * 0.5;
    Ok(((x - t) / tau).sigmoid())
}

/// Smooth ranks along the last dimension, 1 for the largest (`descending`) or the smallest:
/// `rank_i = 1 + sum_{j != i} sigmoid((x_j - x_i) / tau)` (Smooth-AP's ranking, Brown et al.
/// 2020 Eq. 5). Builds an `[.., n, n]` tensor of pairwise differences.
pub fn smooth_ranks(x: &Tensor, tau: f64, descending: bool) -> Result<Tensor> {
    checked(x, tau)?;
    dim_len(x, -1)?;
    let xs = if descending { x.shallow_clone() } else { -x };
    // d[.., i, j] = x_j - x_i; the diagonal contributes sigmoid(0) = 1/2, taken off.
    let d = xs.unsqueeze(-2) - xs.unsqueeze(-1);
    Ok((d / tau)
        .sigmoid()
        .sum_dim_intlist([-1i64].as_slice(), false, x.kind())
        + 0.5)
}

/// Hard ranks along the last dimension (1 = largest for `descending`), ties broken by position:
/// the value [`smooth_ranks`] tends to.
pub fn hard_ranks(x: &Tensor, descending: bool) -> Result<Tensor> {
    check::scores("x", x)?;
    dim_len(x, -1)?;
    let (_, order) = x.sort_stable(true, -1, descending);
    Ok(order.argsort(-1, false).to_kind(Kind::Int64) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fd_check, rand64};
    use tch::Device;

    fn max_abs(t: &Tensor) -> f64 {
        t.abs().max().double_value(&[])
    }

    #[test]
    fn lse_bounds_and_limit() {
        let x = rand64(&[16, 7], 1) * 3.0;
        let hard = x.amax([-1], false);
        let ln_n = (7f64).ln();
        for tau in [1.0, 0.3, 0.05, 1e-3] {
            let s = smooth_max(&x, -1, tau).unwrap();
            // Bounds up to float64 rounding of max / tau * tau.
            assert!(
                s.ge_tensor(&(&hard - 1e-12)).all().int64_value(&[]) == 1,
                "tau {tau}"
            );
            let upper = &hard + tau * ln_n + 1e-12;
            assert!(s.le_tensor(&upper).all().int64_value(&[]) == 1, "tau {tau}");
            let m = smooth_min(&x, -1, tau).unwrap();
            let hmin = x.amin([-1], false);
            assert!(m.le_tensor(&(&hmin + 1e-12)).all().int64_value(&[]) == 1);
            assert!(
                m.ge_tensor(&(&hmin - tau * ln_n - 1e-12))
                    .all()
                    .int64_value(&[])
                    == 1
            );
        }
        assert!(max_abs(&(smooth_max(&x, -1, 1e-4).unwrap() - &hard)) < 1e-3);
    }

    #[test]
    fn argmax_step_abs_relu_limits() {
        let x = rand64(&[32, 5], 2) * 2.0;
        let tau = 1e-4;
        let hard = x.argmax(-1, false);
        let onehot = hard.one_hot(5).to_kind(Kind::Double);
        assert!(max_abs(&(soft_argmax(&x, -1, tau).unwrap() - &onehot)) < 1e-6);
        let idx = soft_argmax_index(&x, -1, tau).unwrap();
        assert!(max_abs(&(idx - hard.to_kind(Kind::Double))) < 1e-5);
        let step = smooth_step(&x, tau).unwrap();
        assert!(max_abs(&(step - x.gt(0.0).to_kind(Kind::Double))) < 1e-6);
        for t in [0.5, 0.01] {
            let a = smooth_abs(&x, t).unwrap();
            let d = &a - x.abs();
            assert!(d.min().double_value(&[]) >= -1e-12);
            assert!(d.max().double_value(&[]) <= t * 2f64.ln() + 1e-12);
            let r = smooth_relu(&x, t).unwrap();
            let d = &r - x.relu();
            assert!(d.min().double_value(&[]) >= -1e-12);
            assert!(d.max().double_value(&[]) <= t * 2f64.ln() + 1e-12);
        }
    }

    #[test]
    fn top_k_and_ranks_limits() {
        let x = rand64(&[4, 9], 3);
        let k = 3;
        let soft = smooth_top_k(&x, k, 1e-5).unwrap();
        let (_, idx) = x.topk(k, -1, true, true);
        let hard = x.zeros_like().scatter_value(-1, &idx, 1.0);
        assert!(max_abs(&(&soft - &hard)) < 1e-6);
        let sums = smooth_top_k(&x, k, 0.05).unwrap().sum_dim_intlist(
            [-1i64].as_slice(),
            false,
            Kind::Double,
        );
        assert!(
            sums.min().double_value(&[]) > 1.5,
            "a soft top-3 of 9 sums near 3"
        );
        // Well-separated scores: soft ranks equal hard ranks.
        let sep = Tensor::from_slice(&[3.0f64, -1.0, 7.0, 0.5, 2.0]);
        let soft = smooth_ranks(&sep, 0.01, true).unwrap();
        let hard = hard_ranks(&sep, true).unwrap();
        assert_eq!(Vec::<i64>::try_from(&hard).unwrap(), vec![2, 5, 1, 4, 3]);
        assert!(max_abs(&(soft - hard.to_kind(Kind::Double))) < 1e-12);
        let asc = smooth_ranks(&sep, 0.01, false).unwrap();
        assert!((asc.double_value(&[1]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = rand64(&[3, 6], 4);
        fd_check("smooth_max", &x, |x| {
            smooth_max(x, -1, 0.3).unwrap().sum(Kind::Double)
        });
        fd_check("soft_argmax_index", &x, |x| {
            soft_argmax_index(x, -1, 0.3).unwrap().sum(Kind::Double)
        });
        fd_check("smooth_abs", &x, |x| {
            smooth_abs(x, 0.2).unwrap().sum(Kind::Double)
        });
        fd_check("smooth_relu", &x, |x| {
            smooth_relu(x, 0.2).unwrap().sum(Kind::Double)
        });
        fd_check("smooth_top_k", &x, |x| {
            (smooth_top_k(x, 2, 0.3).unwrap() * x).sum(Kind::Double)
        });
        fd_check("smooth_ranks", &x, |x| {
            (smooth_ranks(x, 0.3, true).unwrap() * x).sum(Kind::Double)
        });
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = rand64(&[4], 5);
        for tau in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                smooth_max(&x, 0, tau),
                Err(SmoothError::Temperature { .. })
            ));
        }
        let empty = Tensor::zeros([0], (Kind::Double, Device::Cpu));
        assert!(matches!(
            smooth_step(&empty, 1.0),
            Err(SmoothError::Empty { .. })
        ));
        let nan = Tensor::from_slice(&[1.0f64, f64::NAN]);
        assert!(matches!(
            smooth_relu(&nan, 1.0),
            Err(SmoothError::NotFinite { count: 1, .. })
        ));
        assert!(matches!(
            smooth_top_k(&x, 4, 1.0),
            Err(SmoothError::Config(_))
        ));
        assert!(matches!(
            smooth_max(&x, 3, 1.0),
            Err(SmoothError::Shape { .. })
        ));
        let ints = Tensor::from_slice(&[1i64, 2]);
        assert!(matches!(
            smooth_ranks(&ints, 1.0, true),
            Err(SmoothError::Shape { .. })
        ));
    }
}
