//! Anchor assignment and box coding.
//!
//! - IoU assignment (RetinaNet, Lin et al. 2017b, Sec. 4; torchvision `_utils.py` `Matcher`):
//!   an anchor is positive for its best ground truth when IoU >= 0.5, background below 0.4,
//!   ignored in between; with `low_quality`, every ground truth also keeps the anchors of its
//!   highest IoU (torchvision's RetinaNet sets it).
//! - SNIP (Singh & Davis 2018, Sec. 5): ground truth outside the valid range of a scale (or
//!   of a TridentNet branch) is not matched, and the background anchors that overlap it by
//!   more than `invalid_overlap` (0.3 in the paper) are ignored, not background.
//! - Box coding (torchvision `BoxCoder`, weights 1, `bbox_xform_clip = log(1000 / 16)`):
//!   `dx = (x_g - x_a) / w_a`, `dw = log(w_g / w_a)`, and the inverse.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{PyramidError, Result};
use crate::levels::ValidRange;

/// Match value of a background anchor.
pub const BACKGROUND: i64 = -1;
/// Match value of an ignored anchor (between the thresholds, or near invalid ground truth).
pub const IGNORED: i64 = -2;

/// The IoU thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherConfig {
    /// Positive at or above (0.5).
    pub fg_iou: f64,
    /// Background below (0.4).
    pub bg_iou: f64,
    /// Keep each ground truth's best anchors even below `fg_iou`.
    pub low_quality: bool,
    /// Background anchors overlapping invalid ground truth by more than this are ignored.
    pub invalid_overlap: f64,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            fg_iou: 0.5,
            bg_iou: 0.4,
            low_quality: true,
            invalid_overlap: 0.3,
        }
    }
}

/// `[A]` int64 matches from a `[G, A]` IoU matrix: the ground-truth index, [`BACKGROUND`] or
/// [`IGNORED`] (torchvision `Matcher.__call__`).
pub fn match_iou(iou: &Tensor, cfg: &MatcherConfig) -> Result<Tensor> {
    let s = iou.size();
    if s.len() != 2 {
        return Err(PyramidError::input("IoU matrix", "[G, A]", s));
    }
    if s[0] == 0 {
        return Ok(Tensor::full(
            [s[1]],
            BACKGROUND,
            (Kind::Int64, iou.device()),
        ));
    }
    let (vals, matches) = iou.max_dim(0, false);
    let all = matches.shallow_clone();
    let below = vals.lt(cfg.bg_iou);
    let between = vals.ge(cfg.bg_iou).logical_and(&vals.lt(cfg.fg_iou));
    let mut m = matches.masked_fill(&below, BACKGROUND);
    m = m.masked_fill(&between, IGNORED);
    if cfg.low_quality {
        // Rows with no overlap at all (or masked to -1 as invalid) keep nothing; torchvision
        // would match every zero-IoU anchor to such a row.
        let (best, _) = iou.max_dim(1, true);
        let keep = iou
            .eq_tensor(&best)
            .logical_and(&best.gt(0.0))
            .any_dim(0, false);
        m = m.where_self(&keep.logical_not(), &all);
    }
    Ok(m)
}

/// Matches anchors `[A, 4]` to the ground truth `[G, 4]` of one image. Ground truth whose
/// `sqrt(wh) / size_scale` lies outside `range` is invalid (SNIP): never matched, and the
/// background anchors overlapping it by more than `cfg.invalid_overlap` are ignored.
pub fn assign(
    anchors: &Tensor,
    gt: &Tensor,
    range: &ValidRange,
    size_scale: f64,
    cfg: &MatcherConfig,
) -> Result<Tensor> {
    let iou = det_core::tensor::box_iou_t(gt, anchors)?;
    if *range == ValidRange::ALL || gt.size()[0] == 0 {
        return match_iou(&iou, cfg);
    }
    let wh = gt.narrow(1, 2, 2) - gt.narrow(1, 0, 2);
    let size =
        (wh.select(1, 0).clamp_min(0.0) * wh.select(1, 1).clamp_min(0.0)).sqrt() / size_scale;
    let lo = range
        .lo
        .map_or_else(|| size.ones_like().to_kind(Kind::Bool), |lo| size.ge(lo));
    let hi = range
        .hi
        .map_or_else(|| size.ones_like().to_kind(Kind::Bool), |hi| size.le(hi));
    let valid = lo.logical_and(&hi);
    // Invalid rows get IoU -1: never the best match, never low quality.
    let masked = iou.where_self(&valid.unsqueeze(1), &iou.full_like(-1.0));
    let any_valid = valid.any().int64_value(&[]) != 0;
    let mut m = if any_valid {
        match_iou(&masked, cfg)?
    } else {
        Tensor::full(
            [anchors.size()[0]],
            BACKGROUND,
            (Kind::Int64, anchors.device()),
        )
    };
    let near_invalid = iou
        .where_self(&valid.logical_not().unsqueeze(1), &iou.zeros_like())
        .amax([0], false)
        .gt(cfg.invalid_overlap);
    m = m.masked_fill(&near_invalid.logical_and(&m.eq(BACKGROUND)), IGNORED);
    Ok(m)
}

/// `bbox_xform_clip`: the largest `dw`, `dh` decoded (torchvision: log(1000 / 16)).
pub fn xform_clip() -> f64 {
    (1000.0f64 / 16.0).ln()
}

fn centre_size(b: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
    let w = b.select(1, 2) - b.select(1, 0);
    let h = b.select(1, 3) - b.select(1, 1);
    let cx = b.select(1, 0) + &w * 0.5;
    let cy = b.select(1, 1) + &h * 0.5;
    (cx, cy, w, h)
}

/// Regression targets `[N, 4]` of boxes `gt` from `anchors` (both `[N, 4]` xyxy).
pub fn encode(gt: &Tensor, anchors: &Tensor) -> Tensor {
    let (ax, ay, aw, ah) = centre_size(anchors);
    let (gx, gy, gw, gh) = centre_size(gt);
    Tensor::stack(
        &[
            (gx - ax) / &aw,
            (gy - ay) / &ah,
            (gw / aw).log(),
            (gh / ah).log(),
        ],
        1,
    )
}

/// Boxes `[N, 4]` xyxy from deltas `[N, 4]` on `anchors` (the inverse of [`encode`]).
pub fn decode(deltas: &Tensor, anchors: &Tensor) -> Tensor {
    let (ax, ay, aw, ah) = centre_size(anchors);
    let clip = xform_clip();
    let dx = deltas.select(1, 0);
    let dy = deltas.select(1, 1);
    let dw = deltas.select(1, 2).clamp_max(clip);
    let dh = deltas.select(1, 3).clamp_max(clip);
    let cx = dx * &aw + ax;
    let cy = dy * &ah + ay;
    let w = dw.exp() * aw;
    let h = dh.exp() * ah;
    Tensor::stack(
        &[
            &cx - &w * 0.5,
            &cy - &h * 0.5,
            &cx + &w * 0.5,
            &cy + &h * 0.5,
        ],
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[[f32; 4]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([-1, 4])
    }

    #[test]
    fn thresholds_split_positive_ignored_background() {
        // IoU rows: gt 0 and gt 1 over five anchors.
        let iou = Tensor::from_slice(&[0.7f32, 0.45, 0.1, 0.5, 0.39, 0.2, 0.3, 0.35, 0.1, 0.0])
            .view([2, 5]);
        let cfg = MatcherConfig {
            low_quality: false,
            ..Default::default()
        };
        let m = Vec::<i64>::try_from(match_iou(&iou, &cfg).unwrap()).unwrap();
        assert_eq!(m, vec![0, IGNORED, BACKGROUND, 0, BACKGROUND]);
        // With low-quality matches gt 1 keeps its best anchor (index 2, IoU 0.35).
        let m = Vec::<i64>::try_from(match_iou(&iou, &MatcherConfig::default()).unwrap()).unwrap();
        assert_eq!(m, vec![0, IGNORED, 1, 0, BACKGROUND]);
        let none = match_iou(&Tensor::zeros([0, 3], (Kind::Float, Device::Cpu)), &cfg).unwrap();
        assert_eq!(Vec::<i64>::try_from(none).unwrap(), vec![BACKGROUND; 3]);
    }

    #[test]
    fn invalid_ground_truth_is_ignored_not_background() {
        let anchors = t(&[
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [50.0, 50.0, 90.0, 90.0],
            [200.0, 200.0, 210.0, 210.0],
        ]);
        // A 10 px object and a 40 px object.
        let gt = t(&[[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 90.0, 90.0]]);
        let cfg = MatcherConfig::default();
        let all = Vec::<i64>::try_from(assign(&anchors, &gt, &ValidRange::ALL, 1.0, &cfg).unwrap())
            .unwrap();
        assert_eq!(all, vec![0, 0, 1, BACKGROUND]);
        // Only objects of 32 px or more are valid: the small one's anchors are ignored.
        let big = ValidRange::new(32.0, -1.0).unwrap();
        let m = Vec::<i64>::try_from(assign(&anchors, &gt, &big, 1.0, &cfg).unwrap()).unwrap();
        assert_eq!(m, vec![IGNORED, IGNORED, 1, BACKGROUND]);
        // At scale 4 (an upsampled image) the 40 px box measures 10 px in the original.
        let small = ValidRange::new(-1.0, 12.0).unwrap();
        let m = Vec::<i64>::try_from(assign(&anchors, &gt, &small, 4.0, &cfg).unwrap()).unwrap();
        assert_eq!(m, vec![0, 0, 1, BACKGROUND]);
        let m = Vec::<i64>::try_from(assign(&anchors, &gt, &small, 1.0, &cfg).unwrap()).unwrap();
        assert_eq!(m, vec![0, 0, IGNORED, BACKGROUND]);
    }

    #[test]
    fn decode_inverts_encode_and_clips() {
        let anchors = t(&[[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 45.0, 25.0]]);
        let gt = t(&[[1.0, 2.0, 13.0, 17.0], [0.0, 10.0, 60.0, 30.0]]);
        let d = encode(&gt, &anchors);
        let back = decode(&d, &anchors);
        let err = (back - &gt).abs().max().double_value(&[]);
        assert!(err < 1e-4, "{err}");
        let huge = Tensor::from_slice(&[0.0f32, 0.0, 100.0, 100.0]).view([1, 4]);
        let b = decode(&huge, &anchors.narrow(0, 0, 1));
        let w = (b.select(1, 2) - b.select(1, 0)).double_value(&[0]);
        assert!((w - 10.0 * 1000.0 / 16.0).abs() < 1e-2, "{w}");
    }
}
