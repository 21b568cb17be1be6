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

use super::accumulate::{
    accumulate_sorted, pr_axis, Accumulated, AreaOutcome, CategoryAccumulation, SortedCategory,
};
use super::matching::{compute_iou, flag, Dt, EvalImage, Gt, Matcher};
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
    /// neither ground truth nor detections of the category; empty unless
    /// [`CocoParams::keep_eval_imgs`] asked for them.
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

/// A category's detections in global score order, and where each image's detections went.
struct Sorted {
    cat: SortedCategory,
    /// Image `i`'s detections start at `offset[i]` in concatenation order.
    offset: Vec<usize>,
    /// `position[offset[i] + d]`: where detection `d` of image `i` sits in the sorted order.
    position: Vec<u32>,
}

/// The key that orders scores descending with `sort_unstable`: IEEE bits mapped to an unsigned
/// total order and inverted; -0.0 is 0.0 (equal scores tie, as in numpy's comparison).
fn descending_key(score: f64) -> u64 {
    let s = if score == 0.0 { 0.0 } else { score };
    let bits = s.to_bits();
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    !ascending
}

/// pycocotools' per-(area, maxDets) `np.argsort(-np.concatenate(dtScores), kind='mergesort')`,
/// done once: sorting by (score descending, concatenation index) with an unstable sort is the
/// stable sort, and the order is the same for every area range (the records of an image exist
/// for all or none of them; their scores do not depend on the range).
fn sort_category(per_img: &[(&[Gt], &[Dt], Array2<f64>)]) -> Sorted {
    let mut offset = Vec::with_capacity(per_img.len() + 1);
    let mut keyed = Vec::new();
    let mut rank_of = Vec::new();
    let mut max_rank = 0;
    offset.push(0);
    for (_, d, _) in per_img {
        for (r, dt) in d.iter().enumerate() {
            keyed.push((descending_key(dt.score), keyed.len() as u32));
            rank_of.push(r as u32);
        }
        max_rank = max_rank.max(d.len());
        offset.push(keyed.len());
    }
    let mut scores_of = Vec::with_capacity(keyed.len());
    for (_, d, _) in per_img {
        scores_of.extend(d.iter().map(|dt| dt.score));
    }
    keyed.sort_unstable();
    let mut position = vec![0u32; keyed.len()];
    let mut scores = Vec::with_capacity(keyed.len());
    let mut rank = Vec::with_capacity(keyed.len());
    for (j, &(_, seq)) in keyed.iter().enumerate() {
        position[seq as usize] = j as u32;
        scores.push(scores_of[seq as usize]);
        rank.push(rank_of[seq as usize]);
    }
    let any_image = per_img
        .iter()
        .any(|(g, d, _)| !g.is_empty() || !d.is_empty());
    Sorted {
        cat: SortedCategory {
            scores,
            rank,
            max_rank,
            any_image,
        },
        offset,
        position,
    }
}

/// One category's `evalImgs` (`[a][i]`, when kept) and accumulation, as a worker returns them.
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
    // Contiguous per (category, image), in input order; detections then sorted by score with a
    // stable sort (argsort(-score, kind='mergesort')) within each image.
    let (gt_start, gt_items) = group(&gt_keys, n_k * n_i);
    let gts: Vec<Gt> = gt_items.iter().map(|&x| gts[x as usize]).collect();
    let (dt_start, mut dt_items) = group(&dt_keys, n_k * n_i);
    for w in dt_start.windows(2) {
        dt_items[w[0]..w[1]].sort_by(|&a, &b| {
            dts[b as usize]
                .score
                .partial_cmp(&dts[a as usize].score)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let dts: Vec<Dt> = dt_items.iter().map(|&x| dts[x as usize]).collect();

    let max_det = params.max_det();
    let t_n = params.iou_thrs.len();
    // One category: images in ascending id order, detections sorted and cut, IoU matrices,
    // one global score order, the matching for every area range, the accumulation.
    let evaluate_category = |k: usize| -> CatResult {
        let mut per_img: Vec<(&[Gt], &[Dt], Array2<f64>)> = Vec::with_capacity(n_i);
        for i in 0..n_i {
            let row = k * n_i + i;
            let g = &gts[gt_start[row]..gt_start[row + 1]];
            let (d0, d1) = (dt_start[row], dt_start[row + 1]);
            let d = &dts[d0..d1.min(d0 + max_det)];
            let ious = compute_iou(d, g);
            per_img.push((g, d, ious));
        }
        let sorted = sort_category(&per_img);
        let n = sorted.cat.scores.len();
        let mut matcher = Matcher::default();
        let mut eval_imgs = Vec::new();
        let mut areas = Vec::with_capacity(params.area_rng.len());
        for &a_rng in &params.area_rng {
            let mut flags = vec![flag::IGNORED; t_n * n];
            let mut npig = 0;
            for (i, (g, d, ious)) in per_img.iter().enumerate() {
                if g.is_empty() && d.is_empty() {
                    if params.keep_eval_imgs {
                        eval_imgs.push(None);
                    }
                    continue;
                }
                matcher.run(params, g, d, ious, a_rng);
                npig += matcher.npig();
                let at = &sorted.position[sorted.offset[i]..sorted.offset[i] + d.len()];
                for t in 0..t_n {
                    let row = &mut flags[t * n..(t + 1) * n];
                    for (di, &j) in at.iter().enumerate() {
                        row[j as usize] = matcher.flag(t, di);
                    }
                }
                if params.keep_eval_imgs {
                    let ids = (img_ids[i], cat_ids[k]);
                    eval_imgs.push(Some(matcher.record(params, ids, g, d, a_rng)));
                }
            }
            areas.push(AreaOutcome { flags, npig });
        }
        let acc = accumulate_sorted(params, &sorted.cat, &areas);
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
    let kept = if params.keep_eval_imgs {
        n_k * params.area_rng.len() * n_i
    } else {
        0
    };
    let mut eval_imgs = Vec::with_capacity(kept);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coco::accumulate::accumulate_category;
    use crate::synth::{coco_like, SynthSpec};

    /// The one-sort accumulation equals pycocotools' per-(area, maxDets) re-sorting one, read
    /// from the kept records, bit for bit: few categories with many detections per image (caps
    /// below the per-image count), many with few (every cap above it), tied scores (two
    /// decimals), small caps.
    #[test]
    fn one_sort_accumulation_equals_the_record_oracle() {
        let specs = [(40, 3, 300, 40, 1), (80, 20, 200, 6, 2), (30, 5, 90, 25, 3)];
        for (images, categories, ground_truth, detections_per_image, seed) in specs {
            let spec = SynthSpec {
                images,
                categories,
                ground_truth,
                detections_per_image,
                seed,
            };
            let (gt, mut dt) = coco_like(&spec);
            for d in dt.iter_mut() {
                d.score = (d.score * 100.0).round() / 100.0;
            }
            for max_dets in [vec![1, 10, 100], vec![2, 3, 5]] {
                let params = CocoParams {
                    max_dets,
                    keep_eval_imgs: true,
                    ..CocoParams::default()
                };
                let ev = evaluate(&gt, &dt, &params).unwrap();
                let per_cat = params.area_rng.len() * ev.img_ids.len();
                for (k, records) in ev.eval_imgs.chunks(per_cat).enumerate() {
                    let oracle = accumulate_category(&params, records, ev.img_ids.len());
                    let got = |a: &Array5<f64>| a.index_axis(pr_axis::CATEGORY, k).to_owned();
                    assert_eq!(got(&ev.precision), oracle.precision, "{spec:?} k={k}");
                    assert_eq!(got(&ev.scores), oracle.scores, "{spec:?} k={k}");
                    let recall = ev.recall.index_axis(super::super::recall_axis::CATEGORY, k);
                    assert_eq!(recall, oracle.recall, "{spec:?} k={k}");
                }
            }
        }
    }

    #[test]
    fn descending_keys_order_scores_and_tie_signed_zeros() {
        let xs = [
            1.0,
            0.5,
            0.0,
            -0.0,
            -0.25,
            -3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut sorted = xs.to_vec();
        sorted.sort_by_key(|&x| descending_key(x));
        assert_eq!(
            sorted[..3],
            [f64::INFINITY, 1.0, 0.5],
            "descending from the top"
        );
        assert_eq!(descending_key(0.0), descending_key(-0.0));
        assert_eq!(sorted[7], f64::NEG_INFINITY);
    }
}
