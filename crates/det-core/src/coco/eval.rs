//! The bbox evaluator of pycocotools `COCOeval` (`evaluate` + `accumulate` + `summarize`),
//! reproduced operation by operation so that the 12 summary numbers are the same doubles:
//! detections sorted by score with a stable sort and cut at `maxDets[-1]` per image and
//! category, the per-image matching of [`super::matching`], the per-category accumulation of
//! [`super::accumulate`] over images in ascending id order, the 12 numbers of
//! [`super::summary`]. One direction: eval -> matching, accumulate -> summary.
//!
//! Categories are evaluated in parallel (a rayon pool of [`CocoParams::threads`] workers) and
//! collected in category order, so the result does not depend on the thread count.

use std::collections::{BTreeSet, HashMap};

use ndarray::{s, Array2, Array4, Array5};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::accumulate::{accumulate_category, pr_axis, Accumulated, CategoryAccumulation};
use super::matching::{compute_iou, evaluate_img, Dt, EvalImage, Gt};
use super::params::CocoParams;
use super::summary::{summarize, Summary};
use super::{CocoDataset, CocoDetection};
use crate::error::{DetError, Result};

/// Result of [`evaluate`]: pycocotools' `evalImgs`, `eval` arrays and `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoEval {
    /// The settings the evaluation ran with.
    pub params: CocoParams,
    /// Sorted image ids, as `p.imgIds`.
    pub img_ids: Vec<i64>,
    /// Sorted category ids, as `p.catIds`.
    pub cat_ids: Vec<i64>,
    /// Indexed `[k][a][i]` flattened (category, area range, image), `None` where the image has
    /// neither ground truth nor detections of the category.
    pub eval_imgs: Vec<Option<EvalImage>>,
    /// `precision[t, r, k, a, m]` (`T x R x K x A x M`, axes named by
    /// [`super::pr_axis`]), -1 where a category has no non-ignored ground truth.
    pub precision: Array5<f64>,
    /// `recall[t, k, a, m]` (`T x K x A x M`, axes named by [`super::recall_axis`]).
    pub recall: Array4<f64>,
    /// `scores[t, r, k, a, m]`: the score at which each recall point is reached.
    pub scores: Array5<f64>,
    /// The 12 numbers of `summarize()`.
    pub summary: Summary,
    /// Category ids of detections that the ground truth does not list (not evaluated).
    pub unknown_categories: Vec<i64>,
}

impl CocoEval {
    /// Shape `[T, R, K, A, M]` of [`CocoEval::precision`].
    pub fn precision_shape(&self) -> [usize; 5] {
        let (t, r, k, a, m) = self.precision.dim();
        [t, r, k, a, m]
    }

    /// `precision[:, :, :, 0, -1]`: area range 0 (`all`), the largest maxDets, `T x R x K`;
    /// `None` when the arrays are empty along the area or maxDets axis.
    fn main_precision(&self) -> Option<ndarray::ArrayView3<'_, f64>> {
        let m = self.precision.len_of(pr_axis::MAX_DETS).checked_sub(1)?;
        if self.precision.len_of(pr_axis::AREA) == 0 {
            return None;
        }
        Some(self.precision.slice(s![.., .., .., 0, m]))
    }

    /// Precision-recall curves for [`crate::draw::pr_curve_png`]: one per IoU threshold, area
    /// range "all", the largest maxDets, precision averaged over the categories that have ground
    /// truth at each of the 101 recall points. The mean of the IoU=0.50 curve is stat 1 (AP50).
    pub fn pr_curves(&self) -> Vec<(String, Vec<f64>, Vec<f64>)> {
        let Some(main) = self.main_precision() else {
            return Vec::new();
        };
        main.outer_iter()
            .zip(&self.params.iou_thrs)
            .map(|(by_recall, thr)| {
                let precision = by_recall
                    .outer_iter()
                    .map(|by_cat| mean_or(by_cat.iter(), 0.0))
                    .collect();
                (
                    format!("IoU={thr:.2}"),
                    self.params.rec_thrs.clone(),
                    precision,
                )
            })
            .collect()
    }

    /// AP per category (area "all", largest maxDets), averaged over IoU thresholds and recall
    /// points like stat 0; -1 where the category has no ground truth.
    pub fn per_category_ap(&self) -> Vec<(i64, f64)> {
        let Some(main) = self.main_precision() else {
            return self.cat_ids.iter().map(|&c| (c, -1.0)).collect();
        };
        // Axis 2 of the T x R x K view is the category.
        main.axis_iter(ndarray::Axis(2))
            .zip(&self.cat_ids)
            .map(|(by_tr, &id)| (id, mean_or(by_tr.iter(), -1.0)))
            .collect()
    }
}

/// The plain mean of the values above -1 (in iteration order), or `empty` when none is.
fn mean_or<'a>(values: impl Iterator<Item = &'a f64>, empty: f64) -> f64 {
    let v: Vec<f64> = values.copied().filter(|&x| x > -1.0).collect();
    if v.is_empty() {
        empty
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Rows `[k*I + i]` of item indices, in input order (counting sort).
fn group(keys: &[usize], n_groups: usize) -> (Vec<usize>, Vec<u32>) {
    let mut start = vec![0usize; n_groups + 1];
    for &k in keys {
        start[k + 1] += 1;
    }
    for g in 0..n_groups {
        start[g + 1] += start[g];
    }
    let mut fill = start.clone();
    let mut items = vec![0u32; keys.len()];
    for (idx, &k) in keys.iter().enumerate() {
        items[fill[k]] = idx as u32;
        fill[k] += 1;
    }
    (start, items)
}

/// One category's `evalImgs` (`[a][i]`) and accumulation, as a worker returns them.
struct CatResult {
    eval_imgs: Vec<Option<EvalImage>>,
    acc: CategoryAccumulation,
}

/// Runs pycocotools' `evaluate()`, `accumulate()` and `summarize()` for bbox detections.
///
/// Errors: a detection on an image the ground truth does not list (pycocotools asserts);
/// invalid boxes or scores (named by id / index); inconsistent params.
pub fn evaluate(gt: &CocoDataset, dt: &[CocoDetection], params: &CocoParams) -> Result<CocoEval> {
    params.check()?;
    super::validate_detections(dt)?;
    let img_ids: Vec<i64> = gt
        .images
        .iter()
        .map(|i| i.id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cat_ids: Vec<i64> = gt
        .categories
        .iter()
        .map(|c| c.id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let img_ix: HashMap<i64, usize> = img_ids.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let cat_ix: HashMap<i64, usize> = cat_ids.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let (n_i, n_k) = (img_ids.len(), cat_ids.len());

    let mut gts = Vec::new();
    let mut gt_keys = Vec::new();
    for a in &gt.annotations {
        crate::boxes::validate_xywh(a.bbox, "annotation", a.id)?;
        if let (Some(&i), Some(&k)) = (img_ix.get(&a.image_id), cat_ix.get(&a.category_id)) {
            let area = if a.area.is_nan() {
                a.bbox[2] * a.bbox[3]
            } else {
                a.area
            };
            gts.push(Gt {
                id: a.id,
                bbox: a.bbox,
                area,
                crowd: a.iscrowd,
            });
            gt_keys.push(k * n_i + i);
        }
    }
    let mut dts = Vec::new();
    let mut dt_keys = Vec::new();
    let mut unknown = BTreeSet::new();
    for (n, d) in dt.iter().enumerate() {
        let i = *img_ix.get(&d.image_id).ok_or(DetError::UnknownImage {
            index: n,
            image_id: d.image_id,
        })?;
        match cat_ix.get(&d.category_id) {
            Some(&k) => {
                dts.push(Dt {
                    id: n as i64 + 1, // loadRes: id = index + 1
                    bbox: d.bbox,
                    area: d.bbox[2] * d.bbox[3],
                    score: d.score,
                });
                dt_keys.push(k * n_i + i);
            }
            None => {
                unknown.insert(d.category_id);
            }
        }
    }
    let (gt_start, gt_items) = group(&gt_keys, n_k * n_i);
    let (dt_start, dt_items) = group(&dt_keys, n_k * n_i);

    let max_det = params.max_det();
    // One category: images in ascending id order, detections sorted and cut, IoU matrices,
    // the matching for every area range, the accumulation.
    let evaluate_category = |k: usize| -> CatResult {
        let mut per_img: Vec<(Vec<&Gt>, Vec<&Dt>, Array2<f64>)> = Vec::with_capacity(n_i);
        for i in 0..n_i {
            let row = k * n_i + i;
            let g: Vec<&Gt> = gt_items[gt_start[row]..gt_start[row + 1]]
                .iter()
                .map(|&x| &gts[x as usize])
                .collect();
            let mut d: Vec<&Dt> = dt_items[dt_start[row]..dt_start[row + 1]]
                .iter()
                .map(|&x| &dts[x as usize])
                .collect();
            // Stable descending sort (argsort(-score, kind='mergesort')).
            d.sort_by(|a, b| {
                b.score
                    .partial_cmp(&a.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            d.truncate(max_det);
            let ious = compute_iou(&d, &g);
            per_img.push((g, d, ious));
        }
        let mut eval_imgs = Vec::with_capacity(params.area_rng.len() * n_i);
        for &a_rng in &params.area_rng {
            for (i, (g, d, ious)) in per_img.iter().enumerate() {
                eval_imgs.push(evaluate_img(
                    params,
                    (img_ids[i], cat_ids[k]),
                    g,
                    d,
                    ious,
                    a_rng,
                ));
            }
        }
        let acc = accumulate_category(params, &eval_imgs, n_i);
        CatResult { eval_imgs, acc }
    };
    // A parallel map over categories, collected in category order: the result is the same for
    // every thread count. `threads = 0` lets rayon use all available cores.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(params.threads)
        .build()
        .map_err(|e| DetError::arg("threads", "a thread pool", e.to_string()))?;
    let per_cat: Vec<CatResult> =
        pool.install(|| (0..n_k).into_par_iter().map(evaluate_category).collect());
    let mut eval_imgs = Vec::with_capacity(n_k * params.area_rng.len() * n_i);
    let mut cats = Vec::with_capacity(n_k);
    for c in per_cat {
        eval_imgs.extend(c.eval_imgs);
        cats.push(c.acc);
    }
    let acc = Accumulated::from_categories(params, &cats);
    let summary = summarize(params, &acc);
    let Accumulated {
        precision,
        recall,
        scores,
    } = acc;
    Ok(CocoEval {
        params: params.clone(),
        img_ids,
        cat_ids,
        eval_imgs,
        precision,
        recall,
        scores,
        summary,
        unknown_categories: unknown.into_iter().collect(),
    })
}
