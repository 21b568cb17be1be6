//! Scale rules: which FPN level a box belongs to, and SNIP's valid ranges.
//!
//! - RoI-to-level (Lin et al. 2017, arXiv 1612.03144, Eq. 1): `k = floor(k0 + log2(sqrt(wh) /
//!   224))`, `k0 = 4`, clamped to `[2, 5]`; torchvision `ops/poolers.py` (`LevelMapper`) adds
//!   `eps = 1e-6` inside the floor so that a box of exactly 224 * 2^j lands on level `k0 + j`
//!   despite rounding.
//! - Valid ranges (Singh & Davis 2018, SNIP, arXiv 1711.08189, Sec. 5): at scale i only objects
//!   whose `sqrt(wh)` lies in `[lo_i, hi_i]` are trained and detected; the others are ignored
//!   (neither positive nor background). SNIPER's ranges `(-1, 80), (32, 150), (120, -1)`,
//!   simpledet's TridentNet ranges `(0, 90), (30, 160), (90, -1)`; -1 = unbounded.

pub mod snip;

use serde::{Deserialize, Serialize};

use crate::error::{PyramidError, Result};

/// The parameters of the RoI-to-level rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelRule {
    /// Level of a canonical-size box (4).
    pub k0: i64,
    /// Canonical size (224, the ImageNet pre-training size).
    pub canonical: f64,
    /// Lowest level (2).
    pub min: i64,
    /// Highest level (5).
    pub max: i64,
    /// Added inside the floor (torchvision 1e-6).
    pub eps: f64,
}

impl Default for LevelRule {
    fn default() -> Self {
        Self {
            k0: 4,
            canonical: 224.0,
            min: 2,
            max: 5,
            eps: 1e-6,
        }
    }
}

/// The FPN level of an xyxy box under `rule` (Eq. 1 of the FPN paper, clamped). An empty box
/// goes to the lowest level.
pub fn roi_level_with(b: [f64; 4], rule: &LevelRule) -> i64 {
    let s = ((b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)).sqrt();
    if s <= 0.0 || !s.is_finite() {
        return rule.min;
    }
    let k = (rule.k0 as f64 + (s / rule.canonical).log2() + rule.eps).floor() as i64;
    k.clamp(rule.min, rule.max)
}

/// The FPN level of an xyxy box with the paper's rule (k0 4, 224, levels 2 ..= 5).
pub fn roi_level(b: [f64; 4]) -> i64 {
    roi_level_with(b, &LevelRule::default())
}

/// A valid size range `[lo, hi]` of `sqrt(wh)` in pixels; `None` = unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidRange {
    /// Smallest valid size (inclusive).
    pub lo: Option<f64>,
    /// Largest valid size (inclusive).
    pub hi: Option<f64>,
}

impl ValidRange {
    /// Every size.
    pub const ALL: ValidRange = ValidRange { lo: None, hi: None };

    /// From SNIPER's notation: a negative bound is unbounded.
    pub fn new(lo: f64, hi: f64) -> Result<Self> {
        let lo = (lo >= 0.0).then_some(lo);
        let hi = (hi >= 0.0).then_some(hi);
        if let (Some(a), Some(b)) = (lo, hi) {
            if a > b || a.is_nan() || b.is_nan() {
                return Err(PyramidError::config(
                    "ValidRange",
                    "lo <= hi",
                    format!("({a}, {b})"),
                ));
            }
        }
        Ok(Self { lo, hi })
    }

    /// Whether a box of size `sqrt(wh) = s` is valid.
    pub fn contains(&self, s: f64) -> bool {
        self.lo.is_none_or(|lo| s >= lo) && self.hi.is_none_or(|hi| s <= hi)
    }

    /// Whether an xyxy box is valid.
    pub fn contains_box(&self, b: [f64; 4]) -> bool {
        self.contains(box_size(b))
    }
}

/// `sqrt(wh)` of an xyxy box (0 for an empty one).
pub fn box_size(b: [f64; 4]) -> f64 {
    ((b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)).sqrt()
}

/// SNIPER's training ranges for its three scales (Singh et al. 2018, arXiv 1805.09300).
pub fn sniper_ranges() -> [ValidRange; 3] {
    [
        ValidRange {
            lo: None,
            hi: Some(80.0),
        },
        ValidRange {
            lo: Some(32.0),
            hi: Some(150.0),
        },
        ValidRange {
            lo: Some(120.0),
            hi: None,
        },
    ]
}

/// simpledet's TridentNet branch ranges (dilation 1, 2, 3), in original-image pixels.
pub fn trident_ranges() -> [ValidRange; 3] {
    [
        ValidRange {
            lo: Some(0.0),
            hi: Some(90.0),
        },
        ValidRange {
            lo: Some(30.0),
            hi: Some(160.0),
        },
        ValidRange {
            lo: Some(90.0),
            hi: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(s: f64) -> [f64; 4] {
        [10.0, 20.0, 10.0 + s, 20.0 + s]
    }

    #[test]
    fn level_boundaries_follow_equation_one() {
        // Exactly 224 * 2^j is level 4 + j (the eps guards the floor); just below drops one.
        assert_eq!(roi_level(square(224.0)), 4);
        assert_eq!(roi_level(square(223.9)), 3);
        assert_eq!(roi_level(square(112.0)), 3);
        assert_eq!(roi_level(square(111.9)), 2);
        assert_eq!(roi_level(square(448.0)), 5);
        assert_eq!(roi_level(square(447.9)), 4);
        // Clamped at both ends.
        assert_eq!(roi_level(square(1.0)), 2);
        assert_eq!(roi_level(square(0.0)), 2);
        assert_eq!(roi_level(square(5000.0)), 5);
        // A 56 x 224 box has sqrt(wh) = 112: level 3, as a 112 square.
        assert_eq!(roi_level([0.0, 0.0, 56.0, 224.0]), 3);
        let wide = LevelRule {
            min: 1,
            max: 7,
            ..Default::default()
        };
        assert_eq!(roi_level_with(square(1792.0), &wide), 7);
        assert_eq!(roi_level_with(square(56.0), &wide), 2);
        assert_eq!(roi_level_with(square(55.9), &wide), 1);
    }

    #[test]
    fn valid_ranges_are_inclusive_and_unbounded_where_negative() {
        let [small, mid, large] = sniper_ranges();
        assert!(small.contains(0.0) && small.contains(80.0) && !small.contains(80.01));
        assert!(!mid.contains(31.99) && mid.contains(32.0) && mid.contains(150.0));
        assert!(!mid.contains(150.5));
        assert!(!large.contains(119.9) && large.contains(120.0) && large.contains(1e9));
        assert_eq!(ValidRange::new(-1.0, 80.0).unwrap(), small);
        assert!(ValidRange::new(50.0, 10.0).is_err());
        // sqrt(wh) of a 40 x 160 box is 80.
        assert!(small.contains_box([0.0, 0.0, 40.0, 160.0]));
        assert!(!small.contains_box([0.0, 0.0, 40.0, 161.0]));
        assert!(trident_ranges()[1].contains(30.0) && !trident_ranges()[0].contains(90.5));
    }
}
