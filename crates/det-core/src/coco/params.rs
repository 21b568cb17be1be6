//! The evaluation settings shared by every stage of the COCO evaluator (pycocotools' `Params`
//! for `iouType='bbox'`), and numpy's `linspace` that builds its threshold lists.

use serde::{Deserialize, Serialize};

use crate::error::{DetError, Result};

/// `np.linspace(start, stop, num)` with numpy's arithmetic: `i * step + start`, last = stop.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// Evaluation settings; `Default` is pycocotools' `Params(iouType='bbox')`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CocoParams {
    /// IoU thresholds `p.iouThrs` (T of them; default 0.50:0.05:0.95).
    pub iou_thrs: Vec<f64>,
    /// Recall points `p.recThrs` at which precision is sampled (R of them; default 101).
    pub rec_thrs: Vec<f64>,
    /// `p.maxDets`, ascending (M of them); the last one caps the detections kept per image and
    /// category.
    pub max_dets: Vec<usize>,
    /// `p.areaRng`: inclusive `[lo, hi]` ranges of ground-truth `area` (A of them).
    pub area_rng: Vec<[f64; 2]>,
    /// `p.areaRngLbl`: one label per area range (`all`, `small`, `medium`, `large`).
    pub area_rng_lbl: Vec<String>,
    /// Worker threads of the per-category evaluation (0: all available cores). The result
    /// does not depend on it.
    pub threads: usize,
    /// Keep pycocotools' per-image records (`evalImgs`) in [`super::CocoEval::eval_imgs`].
    /// Off by default: the statistics and arrays do not need them, and on a COCO-sized set they
    /// are ~10^6 records of seven vectors each.
    #[serde(default)]
    pub keep_eval_imgs: bool,
}

impl Default for CocoParams {
    fn default() -> Self {
        CocoParams {
            iou_thrs: linspace(0.5, 0.95, 10),
            rec_thrs: linspace(0.0, 1.0, 101),
            max_dets: vec![1, 10, 100],
            area_rng: vec![
                [0.0, 1e5 * 1e5],
                [0.0, 32.0 * 32.0],
                [32.0 * 32.0, 96.0 * 96.0],
                [96.0 * 96.0, 1e5 * 1e5],
            ],
            area_rng_lbl: ["all", "small", "medium", "large"].map(String::from).into(),
            threads: 0,
            keep_eval_imgs: false,
        }
    }
}

impl CocoParams {
    /// Rejects empty threshold lists, unsorted `max_dets` and a label count that differs from
    /// the area-range count.
    pub(crate) fn check(&self) -> Result<()> {
        if self.iou_thrs.is_empty() || self.rec_thrs.is_empty() || self.area_rng.is_empty() {
            return Err(DetError::arg(
                "params",
                "non-empty iou_thrs, rec_thrs and area_rng",
                format!("{self:?}"),
            ));
        }
        if self.max_dets.is_empty() || self.max_dets.windows(2).any(|w| w[0] > w[1]) {
            return Err(DetError::arg(
                "max_dets",
                "a non-empty ascending list",
                format!("{:?}", self.max_dets),
            ));
        }
        if self.area_rng_lbl.len() != self.area_rng.len() {
            return Err(DetError::LengthMismatch {
                what: "area_rng_lbl (one label per area range)",
                expected: self.area_rng.len(),
                got: self.area_rng_lbl.len(),
            });
        }
        Ok(())
    }

    /// `maxDets[-1]`: the detections kept per image and category (0 for an empty list, which
    /// [`CocoParams::check`] rejects).
    pub(crate) fn max_det(&self) -> usize {
        self.max_dets.last().copied().unwrap_or(0)
    }
}
