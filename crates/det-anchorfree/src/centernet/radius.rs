//! The Gaussian radius of a box (CornerNet's three overlap cases, min overlap 0.7) and the
//! "umich" Gaussian drawn around an object centre.
//!
//! Sources: CenterNet `src/lib/utils/image.py` (`gaussian_radius`, `gaussian2D`,
//! `draw_umich_gaussian`); the call site `src/lib/datasets/sample/ctdet.py` takes
//! `max(0, int(gaussian_radius((ceil(h), ceil(w)))))`. The official code solves the three
//! quadratics `a r^2 + b r + c = 0` as `(b + sqrt(b^2 - 4ac)) / 2` (CornerNet issue 37): the
//! first two should be `(b - sq) / (2a)`, the third `(b + sq) / (2a)`. [`RadiusRule::Corrected`]
//! (the default here) solves them; [`RadiusRule::Original`] keeps the official numbers.

use serde::{Deserialize, Serialize};

/// Which solution of the three radius quadratics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RadiusRule {
    /// The roots of the quadratics (CornerNet issue 37's fix): `(b1 - sq1) / 2`,
    /// `(b2 - sq2) / 8`, `(b3 + sq3) / (8 m)`.
    #[default]
    Corrected,
    /// The official code as written: `(b + sq) / 2` for all three (larger radii).
    Original,
}

impl RadiusRule {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            RadiusRule::Corrected => "corrected",
            RadiusRule::Original => "original",
        }
    }
}

/// The radius for a `height x width` box (output-resolution pixels) such that a box whose
/// corners move within it keeps IoU >= `min_overlap` with the original, as the smallest of
/// the three cases (both corners inward, both outward, one each).
pub fn gaussian_radius(height: f64, width: f64, min_overlap: f64, rule: RadiusRule) -> f64 {
    let (h, w, m) = (height, width, min_overlap);
    let a1 = 1.0;
    let b1 = h + w;
    let c1 = w * h * (1.0 - m) / (1.0 + m);
    let sq1 = (b1 * b1 - 4.0 * a1 * c1).sqrt();
    let a2 = 4.0;
    let b2 = 2.0 * (h + w);
    let c2 = (1.0 - m) * w * h;
    let sq2 = (b2 * b2 - 4.0 * a2 * c2).sqrt();
    let a3 = 4.0 * m;
    let b3 = -2.0 * m * (h + w);
    let c3 = (m - 1.0) * w * h;
    let sq3 = (b3 * b3 - 4.0 * a3 * c3).sqrt();
    let (r1, r2, r3) = match rule {
        RadiusRule::Corrected => (
            (b1 - sq1) / (2.0 * a1),
            (b2 - sq2) / (2.0 * a2),
            (b3 + sq3) / (2.0 * a3),
        ),
        RadiusRule::Original => ((b1 + sq1) / 2.0, (b2 + sq2) / 2.0, (b3 + sq3) / 2.0),
    };
    r1.min(r2).min(r3)
}

/// The integer radius the official call site draws with: the box size rounded up, then
/// `max(0, int(r))` (truncation toward zero).
pub fn integer_radius(height: f64, width: f64, min_overlap: f64, rule: RadiusRule) -> i64 {
    let r = gaussian_radius(height.ceil(), width.ceil(), min_overlap, rule);
    if r.is_finite() {
        (r.trunc() as i64).max(0)
    } else {
        0
    }
}

/// The `(2r + 1)^2` Gaussian patch of `gaussian2D((d, d), sigma = d / 6)`, row-major, with
/// values below `f64::EPSILON * max` set to 0 (f64, as numpy computes it).
pub fn gaussian_patch(radius: i64) -> Vec<f64> {
    let r = radius.max(0);
    let d = 2 * r + 1;
    let sigma = d as f64 / 6.0;
    let mut g = Vec::with_capacity((d * d) as usize);
    for y in -r..=r {
        for x in -r..=r {
            let v = (-((x * x + y * y) as f64) / (2.0 * sigma * sigma)).exp();
            g.push(v);
        }
    }
    let max = g.iter().cloned().fold(0.0, f64::max);
    for v in &mut g {
        if *v < f64::EPSILON * max {
            *v = 0.0;
        }
    }
    g
}

/// Draws the umich Gaussian of `radius` at the integer `center = (x, y)` into a row-major
/// `height x width` heatmap: the patch is clipped at the borders and merged by element-wise
/// max (peak 1 at the centre). A centre outside the map draws nothing.
pub fn draw_umich_gaussian(
    heatmap: &mut [f32],
    width: usize,
    height: usize,
    center: (i64, i64),
    radius: i64,
) {
    let r = radius.max(0);
    let (x, y) = center;
    let (w, h) = (width as i64, height as i64);
    if heatmap.len() != width * height || x < 0 || y < 0 || x >= w || y >= h {
        return;
    }
    let g = gaussian_patch(r);
    let d = 2 * r + 1;
    let (left, right) = (x.min(r), (w - x).min(r + 1));
    let (top, bottom) = (y.min(r), (h - y).min(r + 1));
    for dy in -top..bottom {
        let row = ((y + dy) * w) as usize;
        let grow = ((r + dy) * d) as usize;
        for dx in -left..right {
            let i = row + (x + dx) as usize;
            let v = g[grow + (r + dx) as usize];
            // numpy's maximum of a float32 map with a float64 patch, stored back as float32.
            heatmap[i] = (heatmap[i] as f64).max(v) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radius_unit_values_of_both_rules() {
        let c = |s: f64| gaussian_radius(s, s, 0.7, RadiusRule::Corrected);
        let o = |s: f64| gaussian_radius(s, s, 0.7, RadiusRule::Original);
        assert!((c(10.0) - 0.817).abs() < 1e-3, "{}", c(10.0));
        assert!((o(10.0) - 2.733).abs() < 1e-3, "{}", o(10.0));
        assert!((c(32.0) - 2.613).abs() < 1e-3, "{}", c(32.0));
        assert!((o(32.0) - 8.746).abs() < 1e-3, "{}", o(32.0));
        // The call site's integer radius: ceil the size, truncate, at least 0.
        assert_eq!(integer_radius(10.0, 10.0, 0.7, RadiusRule::Corrected), 0);
        assert_eq!(integer_radius(10.0, 10.0, 0.7, RadiusRule::Original), 2);
        assert_eq!(integer_radius(31.2, 31.5, 0.7, RadiusRule::Corrected), 2);
        assert_eq!(integer_radius(31.2, 31.5, 0.7, RadiusRule::Original), 8);
        assert_eq!(integer_radius(0.0, 0.0, 0.7, RadiusRule::Corrected), 0);
    }

    #[test]
    fn the_corrected_radius_keeps_the_overlap() {
        // A box shrunk by r on both corners (case 1 of CornerNet) keeps IoU >= 0.7.
        for s in [6.0, 20.0, 50.0] {
            let r = gaussian_radius(s, s, 0.7, RadiusRule::Corrected);
            let inner = (s - 2.0 * r).powi(2) / (s * s);
            let outer = (s * s) / (s + 2.0 * r).powi(2);
            assert!(
                inner >= 0.7 - 1e-9 && outer >= 0.7 - 1e-9,
                "{s}: {inner} {outer}"
            );
        }
    }

    #[test]
    fn drawn_gaussian_peak_extent_and_border_clipping() {
        let (w, h) = (12, 10);
        let mut hm = vec![0f32; w * h];
        draw_umich_gaussian(&mut hm, w, h, (5, 4), 2);
        assert_eq!(hm[4 * w + 5], 1.0);
        // Extent: 5 x 5 non-zero patch, nothing outside.
        let nz: Vec<usize> = (0..w * h).filter(|&i| hm[i] > 0.0).collect();
        assert_eq!(nz.len(), 25);
        assert!(nz
            .iter()
            .all(|&i| (i % w).abs_diff(5) <= 2 && (i / w).abs_diff(4) <= 2));
        // sigma = 5 / 6: the neighbour is exp(-1 / (2 sigma^2)).
        let s = 5.0f64 / 6.0;
        let want = (-1.0 / (2.0 * s * s)).exp() as f32;
        assert!((hm[4 * w + 6] - want).abs() < 1e-7);
        // At a corner the patch is clipped, the peak still there.
        let mut hm = vec![0f32; w * h];
        draw_umich_gaussian(&mut hm, w, h, (0, 9), 3);
        assert_eq!(hm[9 * w], 1.0);
        assert_eq!(hm.iter().filter(|v| **v > 0.0).count(), 16);
        // Element-wise max: a second smaller Gaussian does not lower the first.
        let before = hm.clone();
        draw_umich_gaussian(&mut hm, w, h, (1, 8), 1);
        assert!(hm.iter().zip(&before).all(|(a, b)| a >= b));
        assert_eq!(hm[8 * w + 1], 1.0);
        // Outside the map: nothing.
        let mut hm = vec![0f32; w * h];
        draw_umich_gaussian(&mut hm, w, h, (12, 3), 2);
        assert!(hm.iter().all(|v| *v == 0.0));
    }
}
