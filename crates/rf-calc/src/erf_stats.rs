//! Statistics of an effective-receptive-field map (Luo et al. 2016), plain Rust.
//!
//! The map is the mean absolute gradient of one output unit with respect to each input pixel.
//! Along each axis its marginal is a distribution over pixels; from it come the centroid, the
//! standard deviation `sigma`, the *effective size* (the width of the central interval that
//! holds [`MASS`] of the gradient, 95.45% as within two standard deviations of a Gaussian),
//! `4 sigma`, how Gaussian it is (`R^2` of the Gaussian with the same mean and variance, and
//! the kurtosis, 3 for a Gaussian, 1.8 for a uniform) and its support.

use serde::Serialize;

/// Share of the gradient inside the effective size: two standard deviations of a Gaussian.
pub const MASS: f64 = 0.9545;

/// A non-negative map over the input, row-major.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErfMap {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width` values, row-major.
    pub data: Vec<f64>,
}

/// Statistics of a map along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AxisErf {
    /// Mean pixel index.
    pub centroid: f64,
    /// Standard deviation of the marginal, in pixels.
    pub sigma: f64,
    /// Width of the central interval holding [`MASS`] of the marginal (pixels as unit bins).
    pub size: f64,
    /// `4 sigma`, the Gaussian's 95.45% width.
    pub size_4sigma: f64,
    /// `R^2` of the discretised Gaussian with the same mean and variance.
    pub gaussian_r2: f64,
    /// Kurtosis of the marginal (3 for a Gaussian).
    pub kurtosis: f64,
    /// First and last pixel with a non-zero marginal (above the tolerance given).
    pub support: Option<[i64; 2]>,
}

/// Statistics along height and width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErfStats {
    /// Along height (rows).
    pub h: AxisErf,
    /// Along width (columns).
    pub w: AxisErf,
}

impl ErfMap {
    /// A map from row-major `data`; `None` unless `data` has `height * width` finite, non-negative values.
    pub fn new(height: usize, width: usize, data: Vec<f64>) -> Option<ErfMap> {
        (data.len() == height * width && data.iter().all(|v| v.is_finite() && *v >= 0.0)).then_some(
            ErfMap {
                height,
                width,
                data,
            },
        )
    }

    /// The value at row `y`, column `x`.
    pub fn at(&self, y: usize, x: usize) -> f64 {
        self.data[y * self.width + x]
    }

    /// The marginal along height (`axis` 0, a value per row) or width (1).
    pub fn marginal(&self, axis: usize) -> Vec<f64> {
        let n = if axis == 0 { self.height } else { self.width };
        let mut m = vec![0.0; n];
        for y in 0..self.height {
            for x in 0..self.width {
                m[if axis == 0 { y } else { x }] += self.at(y, x);
            }
        }
        m
    }

    /// Statistics; `tol` is the largest marginal value still counted as zero for the support.
    pub fn stats(&self, tol: f64) -> ErfStats {
        ErfStats {
            h: axis_stats(&self.marginal(0), tol),
            w: axis_stats(&self.marginal(1), tol),
        }
    }

    /// Share of the total inside the inclusive box `[[top, bottom], [left, right]]`.
    pub fn mass_in(&self, b: [[i64; 2]; 2]) -> f64 {
        let total: f64 = self.data.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let mut inside = 0.0;
        for y in 0..self.height {
            for x in 0..self.width {
                let (yi, xi) = (y as i64, x as i64);
                if (b[0][0]..=b[0][1]).contains(&yi) && (b[1][0]..=b[1][1]).contains(&xi) {
                    inside += self.at(y, x);
                }
            }
        }
        inside / total
    }
}

/// Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Statistics of one marginal (any non-negative weights).
pub fn axis_stats(m: &[f64], tol: f64) -> AxisErf {
    let total: f64 = m.iter().sum();
    let support = {
        let first = m.iter().position(|v| *v > tol);
        let last = m.iter().rposition(|v| *v > tol);
        first.zip(last).map(|(a, b)| [a as i64, b as i64])
    };
    if total <= 0.0 {
        return AxisErf {
            centroid: f64::NAN,
            sigma: 0.0,
            size: 0.0,
            size_4sigma: 0.0,
            gaussian_r2: f64::NAN,
            kurtosis: f64::NAN,
            support,
        };
    }
    let p: Vec<f64> = m.iter().map(|v| v / total).collect();
    let mean: f64 = p.iter().enumerate().map(|(j, q)| j as f64 * q).sum();
    let var: f64 = p
        .iter()
        .enumerate()
        .map(|(j, q)| (j as f64 - mean).powi(2) * q)
        .sum();
    let m4: f64 = p
        .iter()
        .enumerate()
        .map(|(j, q)| (j as f64 - mean).powi(4) * q)
        .sum();
    let sigma = var.sqrt();
    // Quantiles of the piecewise-uniform density (pixel j spreads over [j - 1/2, j + 1/2]).
    let quantile = |target: f64| {
        let mut acc = 0.0;
        for (j, q) in p.iter().enumerate() {
            if acc + q >= target && *q > 0.0 {
                return j as f64 - 0.5 + (target - acc) / q;
            }
            acc += q;
        }
        p.len() as f64 - 0.5
    };
    let tail = (1.0 - MASS) / 2.0;
    let size = quantile(1.0 - tail) - quantile(tail);
    let gaussian_r2 = if sigma > 0.0 {
        let mu = p.iter().sum::<f64>() / p.len() as f64;
        let (mut res, mut tot) = (0.0, 0.0);
        for (j, q) in p.iter().enumerate() {
            let g = normal_cdf((j as f64 + 0.5 - mean) / sigma)
                - normal_cdf((j as f64 - 0.5 - mean) / sigma);
            res += (q - g).powi(2);
            tot += (q - mu).powi(2);
        }
        if tot > 0.0 {
            1.0 - res / tot
        } else {
            f64::NAN
        }
    } else {
        f64::NAN
    };
    AxisErf {
        centroid: mean,
        sigma,
        size,
        size_4sigma: 4.0 * sigma,
        gaussian_r2,
        kurtosis: if var > 0.0 {
            m4 / (var * var)
        } else {
            f64::NAN
        },
        support,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::{assert_close, Tol};

    #[test]
    fn gaussian_and_uniform_are_told_apart() {
        let gauss: Vec<f64> = (0..101)
            .map(|j| (-((j as f64 - 50.0) / 6.0).powi(2) / 2.0).exp())
            .collect();
        let s = axis_stats(&gauss, 0.0);
        assert_close(s.centroid, 50.0, Tol::abs(1e-9));
        assert_close(s.sigma, 6.0, Tol::abs(0.05));
        assert!(s.gaussian_r2 > 0.999, "{}", s.gaussian_r2);
        assert_close(s.kurtosis, 3.0, Tol::abs(0.05));
        assert_close(s.size, 24.0, Tol::abs(0.5));

        let mut uniform = vec![0.0; 101];
        uniform[30..=70].iter_mut().for_each(|v| *v = 1.0);
        let u = axis_stats(&uniform, 0.0);
        assert_eq!(u.support, Some([30, 70]));
        assert_close(u.size, MASS * 41.0, Tol::abs(1e-9));
        assert!(u.gaussian_r2 < 0.95, "{u:?}");
        assert_close(u.kurtosis, 1.8, Tol::abs(0.02));
    }

    #[test]
    fn map_marginals_and_mass() {
        let m = ErfMap::new(2, 3, vec![0.0, 1.0, 0.0, 0.0, 3.0, 0.0]).unwrap();
        assert_eq!(m.marginal(0), vec![1.0, 3.0]);
        assert_eq!(m.marginal(1), vec![0.0, 4.0, 0.0]);
        assert_eq!(m.mass_in([[1, 1], [0, 2]]), 0.75);
        assert!(ErfMap::new(2, 2, vec![1.0]).is_none());
        assert!(ErfMap::new(1, 1, vec![f64::NAN]).is_none());
    }
}
