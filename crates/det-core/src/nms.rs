//! Non-maximum suppression with torchvision's semantics (`torchvision/csrc/ops/cpu/nms_kernel.cpp`):
//! boxes visited in descending score order with a *stable* sort (equal scores keep input order), a
//! box is suppressed when its IoU with a kept box is strictly greater than the threshold, areas and
//! IoU computed in the input's precision. Batched NMS by per-class coordinate offsets
//! (`batched_nms` / `_batched_nms_coordinate_trick`), and soft-NMS (Bodla et al. 2017, arXiv
//! 1704.04503) with linear and Gaussian decay.

use crate::boxes::{area, validate_xyxy, Real};
use crate::error::{DetError, Result};

fn check<T: Real>(boxes: &[[T; 4]], scores: &[T]) -> Result<()> {
    if boxes.len() != scores.len() {
        return Err(DetError::LengthMismatch {
            what: "scores (one per box)",
            expected: boxes.len(),
            got: scores.len(),
        });
    }
    for (i, b) in boxes.iter().enumerate() {
        validate_xyxy(*b, "box", i)?;
    }
    for (i, s) in scores.iter().enumerate() {
        if !s.is_finite() {
            return Err(DetError::InvalidScore {
                what: "box",
                id: i.to_string(),
                score: s.to_f64(),
            });
        }
    }
    Ok(())
}

/// Indices sorted by descending score, ties in input order (torch's stable descending sort).
fn order_desc<T: Real>(scores: &[T]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
}

fn nms_unchecked<T: Real>(boxes: &[[T; 4]], scores: &[T], iou_threshold: f64) -> Vec<usize> {
    let n = boxes.len();
    let areas: Vec<T> = boxes.iter().map(area).collect();
    let order = order_desc(scores);
    // Coordinates gathered in score order keep the inner loop on contiguous memory.
    let sorted: Vec<([T; 4], T)> = order.iter().map(|&i| (boxes[i], areas[i])).collect();
    let mut suppressed = vec![false; n];
    let mut keep = Vec::new();
    for a in 0..n {
        if suppressed[a] {
            continue;
        }
        keep.push(order[a]);
        let (bi, ai) = sorted[a];
        for b in a + 1..n {
            if suppressed[b] {
                continue;
            }
            let (bj, aj) = sorted[b];
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0])).max(T::ZERO);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1])).max(T::ZERO);
            let inter = w * h;
            let ovr = inter / (ai + aj - inter);
            // torchvision compares the box-precision IoU with a double threshold.
            if ovr.to_f64() > iou_threshold {
                suppressed[b] = true;
            }
        }
    }
    keep
}

/// Greedy NMS on `xyxy` boxes; returns kept indices in descending score order, exactly as
/// `torchvision.ops.nms(boxes, scores, iou_threshold)`.
pub fn nms<T: Real>(boxes: &[[T; 4]], scores: &[T], iou_threshold: f64) -> Result<Vec<usize>> {
    check(boxes, scores)?;
    Ok(nms_unchecked(boxes, scores, iou_threshold))
}

/// Class-aware NMS as `torchvision.ops.batched_nms` (coordinate trick): every box is shifted
/// by `class * (max_coordinate + 1)` so boxes of different classes never overlap, then one
/// greedy NMS. Same indices as torchvision (which switches to a per-class loop above 4000 boxes
/// on the CPU; that loop keeps the same set). Returns indices in descending score order.
pub fn batched_nms<T: Real>(
    boxes: &[[T; 4]],
    scores: &[T],
    classes: &[i64],
    iou_threshold: f64,
) -> Result<Vec<usize>> {
    check(boxes, scores)?;
    if classes.len() != boxes.len() {
        return Err(DetError::LengthMismatch {
            what: "classes (one per box)",
            expected: boxes.len(),
            got: classes.len(),
        });
    }
    if boxes.is_empty() {
        return Ok(Vec::new());
    }
    let max_coord = boxes
        .iter()
        .flat_map(|b| b.iter().copied())
        .fold(boxes[0][0], Real::max);
    let shifted: Vec<[T; 4]> = boxes
        .iter()
        .zip(classes)
        .map(|(b, &c)| {
            let off = T::from_f64(c as f64) * (max_coord + T::ONE);
            [b[0] + off, b[1] + off, b[2] + off, b[3] + off]
        })
        .collect();
    Ok(nms_unchecked(&shifted, scores, iou_threshold))
}

/// How soft-NMS decays the scores of overlapping boxes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum SoftNmsMethod {
    /// `s *= 1 - iou` when `iou > iou_threshold` (paper eq. 2).
    Linear {
        /// Only boxes overlapping the kept one above this decay.
        iou_threshold: f64,
    },
    /// `s *= exp(-iou^2 / sigma)` for every box (paper eq. 3; sigma 0.5 in the paper).
    Gaussian {
        /// The Gaussian's width (0.5 in the paper).
        sigma: f64,
    },
    /// Plain greedy NMS expressed as soft-NMS: `s = 0` when `iou > iou_threshold`.
    Hard {
        /// Boxes overlapping the kept one above this are removed.
        iou_threshold: f64,
    },
}

/// Settings shared by [`soft_nms`] and [`nms_with`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftNmsConfig {
    /// How overlapping scores decay (linear, Gaussian or hard).
    pub method: SoftNmsMethod,
    /// Boxes whose (decayed) score falls below this are dropped (paper: 0.001).
    pub score_threshold: f64,
    /// Keep at most this many boxes (`None`: all).
    pub max_detections: Option<usize>,
}

impl Default for SoftNmsConfig {
    /// The paper's Gaussian setting: sigma 0.5, score threshold 0.001.
    fn default() -> Self {
        SoftNmsConfig {
            method: SoftNmsMethod::Gaussian { sigma: 0.5 },
            score_threshold: 0.001,
            max_detections: None,
        }
    }
}

/// Soft-NMS: repeatedly takes the highest-scoring remaining box and decays the others by
/// their IoU with it. Returns `(index, decayed score)` in selection order (descending decayed
/// score); ties go to the lower index.
pub fn soft_nms(
    boxes: &[[f64; 4]],
    scores: &[f64],
    cfg: &SoftNmsConfig,
) -> Result<Vec<(usize, f64)>> {
    check(boxes, scores)?;
    match cfg.method {
        SoftNmsMethod::Gaussian { sigma } if sigma.is_nan() || sigma <= 0.0 => {
            return Err(DetError::arg("sigma", "a positive number", sigma));
        }
        _ => {}
    }
    let areas: Vec<f64> = boxes.iter().map(area).collect();
    let mut live: Vec<(usize, f64)> = scores.iter().copied().enumerate().collect();
    let mut out = Vec::new();
    let cap = cfg.max_detections.unwrap_or(usize::MAX);
    while !live.is_empty() && out.len() < cap {
        let mut best = 0;
        for (k, &(i, s)) in live.iter().enumerate() {
            let (bi, bs) = live[best];
            if s > bs || (s == bs && i < bi) {
                best = k;
            }
        }
        let (m, sm) = live.swap_remove(best);
        if sm < cfg.score_threshold {
            break;
        }
        out.push((m, sm));
        let bm = boxes[m];
        live.retain_mut(|(j, s)| {
            let bj = boxes[*j];
            let w = (bm[2].min(bj[2]) - bm[0].max(bj[0])).max(0.0);
            let h = (bm[3].min(bj[3]) - bm[1].max(bj[1])).max(0.0);
            let inter = w * h;
            let u = areas[m] + areas[*j] - inter;
            let ov = if u > 0.0 { inter / u } else { 0.0 };
            *s *= match cfg.method {
                SoftNmsMethod::Linear { iou_threshold } if ov > iou_threshold => 1.0 - ov,
                SoftNmsMethod::Linear { .. } => 1.0,
                SoftNmsMethod::Gaussian { sigma } => (-(ov * ov) / sigma).exp(),
                SoftNmsMethod::Hard { iou_threshold } if ov > iou_threshold => 0.0,
                SoftNmsMethod::Hard { .. } => 1.0,
            };
            *s >= cfg.score_threshold
        });
    }
    Ok(out)
}

/// Greedy NMS with a score threshold (applied first) and a cap on the number kept.
pub fn nms_with<T: Real>(
    boxes: &[[T; 4]],
    scores: &[T],
    iou_threshold: f64,
    score_threshold: T,
    max_detections: usize,
) -> Result<Vec<usize>> {
    check(boxes, scores)?;
    let idx: Vec<usize> = (0..boxes.len())
        .filter(|&i| scores[i] >= score_threshold)
        .collect();
    let b: Vec<[T; 4]> = idx.iter().map(|&i| boxes[i]).collect();
    let s: Vec<T> = idx.iter().map(|&i| scores[i]).collect();
    let mut keep: Vec<usize> = nms_unchecked(&b, &s, iou_threshold)
        .into_iter()
        .map(|k| idx[k])
        .collect();
    keep.truncate(max_detections);
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_suppresses_strictly_above_threshold() {
        let boxes = [
            [0.0f32, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 5.0], // IoU 0.5 with box 0
            [20.0, 20.0, 30.0, 30.0],
            [1.0, 1.0, 10.0, 10.0], // IoU 0.81
        ];
        let scores = [0.9f32, 0.8, 0.7, 0.95];
        assert_eq!(nms(&boxes, &scores, 0.5).unwrap(), vec![3, 1, 2]);
        // At 0.49 box 1 (IoU with 3 = 45/100... ) is gone too only if IoU > 0.49
        let k = nms(&boxes, &scores, 0.9).unwrap();
        assert_eq!(k, vec![3, 0, 1, 2]);
    }

    #[test]
    fn ties_keep_input_order() {
        let boxes = [[0.0f64, 0.0, 1.0, 1.0]; 3];
        assert_eq!(nms(&boxes, &[0.5, 0.5, 0.5], 0.5).unwrap(), vec![0]);
        let boxes = [
            [0.0f64, 0.0, 1.0, 1.0],
            [5.0, 5.0, 6.0, 6.0],
            [0.0, 0.0, 1.0, 1.0],
        ];
        assert_eq!(nms(&boxes, &[0.5, 0.5, 0.5], 0.5).unwrap(), vec![0, 1]);
    }

    #[test]
    fn batched_keeps_other_classes() {
        let boxes = [[0.0f64, 0.0, 10.0, 10.0]; 3];
        let k = batched_nms(&boxes, &[0.9, 0.8, 0.7], &[0, 1, 0], 0.5).unwrap();
        assert_eq!(k, vec![0, 1]);
        assert!(batched_nms(&boxes, &[0.9, 0.8, 0.7], &[0, 1], 0.5).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(nms(&[[0.0f64, 0.0, 1.0, 1.0]], &[f64::NAN], 0.5).is_err());
        let e = nms(
            &[[0.0f64, 0.0, 1.0, 1.0], [2.0, 0.0, 1.0, 1.0]],
            &[0.1, 0.2],
            0.5,
        );
        assert!(e.unwrap_err().to_string().contains("box 1"));
    }

    #[test]
    fn soft_nms_decays_instead_of_dropping() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]];
        let cfg = SoftNmsConfig {
            method: SoftNmsMethod::Linear { iou_threshold: 0.3 },
            score_threshold: 0.001,
            max_detections: None,
        };
        let out = soft_nms(&boxes, &[0.9, 0.8], &cfg).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], (0, 0.9));
        test_support::assert_close(out[1].1, 0.4, test_support::Tol::abs(1e-12));
        let g = soft_nms(&boxes, &[0.9, 0.8], &SoftNmsConfig::default()).unwrap();
        test_support::assert_close(
            g[1].1,
            0.8 * (-0.25f64 / 0.5).exp(),
            test_support::Tol::abs(1e-12),
        );
        let hard = SoftNmsConfig {
            method: SoftNmsMethod::Hard { iou_threshold: 0.3 },
            ..cfg
        };
        assert_eq!(soft_nms(&boxes, &[0.9, 0.8], &hard).unwrap().len(), 1);
    }
}
