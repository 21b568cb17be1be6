//! pycocotools `COCOeval.accumulate`: the per-image matches of one category turned into its
//! precision, recall and score arrays, and the categories stacked into [`Accumulated`], the
//! named result that [`super::summary`] reads. Arrays are `ndarray` arrays whose axes are named
//! by [`pr_axis`] (precision, scores: `T x R x K x A x M`) and [`recall_axis`] (recall:
//! `T x K x A x M`), in pycocotools' order.

use ndarray::{Array3, Array4, Array5};
use serde::{Deserialize, Serialize};

use super::matching::flag;
#[cfg(test)]
use super::matching::EvalImage;
use super::params::CocoParams;

/// The axes of the precision and scores arrays (`T x R x K x A x M`), by name.
pub mod pr_axis {
    use ndarray::Axis;
    /// T: IoU thresholds (`p.iouThrs`).
    pub const IOU: Axis = Axis(0);
    /// R: recall points (`p.recThrs`).
    pub const RECALL: Axis = Axis(1);
    /// K: categories (`p.catIds`, ascending).
    pub const CATEGORY: Axis = Axis(2);
    /// A: area ranges (`p.areaRng`).
    pub const AREA: Axis = Axis(3);
    /// M: detection caps (`p.maxDets`).
    pub const MAX_DETS: Axis = Axis(4);
}

/// The axes of the recall array (`T x K x A x M`), by name.
pub mod recall_axis {
    use ndarray::Axis;
    /// T: IoU thresholds.
    pub const IOU: Axis = Axis(0);
    /// K: categories.
    pub const CATEGORY: Axis = Axis(1);
    /// A: area ranges.
    pub const AREA: Axis = Axis(2);
    /// M: detection caps.
    pub const MAX_DETS: Axis = Axis(3);
}

/// pycocotools' `eval` arrays after `accumulate()`; -1 where a category has no non-ignored
/// ground truth in the area range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accumulated {
    /// `precision[t, r, k, a, m]`: the precision envelope at each recall point.
    pub precision: Array5<f64>,
    /// `recall[t, k, a, m]`: the recall reached with all detections.
    pub recall: Array4<f64>,
    /// `scores[t, r, k, a, m]`: the detection score at which each recall point is reached.
    pub scores: Array5<f64>,
}

/// One category's slice of [`Accumulated`]: the same arrays without the category axis
/// (precision and scores `T x R x A x M`, recall `T x A x M`).
pub(super) struct CategoryAccumulation {
    pub precision: Array4<f64>,
    pub scores: Array4<f64>,
    pub recall: Array3<f64>,
}

/// `np.finfo(float).eps`, pycocotools' `np.spacing(1)`.
const SPACING_1: f64 = f64::EPSILON;

/// One category's detections (each image's cut at `maxDets[-1]`) in pycocotools'
/// `np.argsort(-dtScores, kind='mergesort')` order over the images in ascending id order: the
/// same for every area range and, filtered by [`SortedCategory::rank`], for every `maxDets`.
pub(super) struct SortedCategory {
    /// Scores, descending.
    pub scores: Vec<f64>,
    /// Each detection's index within its image's score-sorted list.
    pub rank: Vec<u32>,
    /// The most detections any image has (0 without detections).
    pub max_rank: usize,
    /// Whether any image has ground truth or detections of the category (pycocotools skips the
    /// category's accumulation otherwise, leaving -1).
    pub any_image: bool,
}

/// One area range's matching outcome for a category: `flags[t * N + j]` is the [`flag`] of
/// detection `j` (in [`SortedCategory`] order) at IoU threshold `t`.
pub(super) struct AreaOutcome {
    pub flags: Vec<u8>,
    /// Non-ignored ground truths over the images.
    pub npig: usize,
}

/// Accumulates one category from its sorted detections and per-area outcomes: the same
/// arithmetic as pycocotools' `accumulate`, without its per-(area, maxDets) re-sorts. A
/// `maxDets` cap at or above every image's detection count selects every detection, so its
/// arrays equal those of the first such cap and are copied.
pub(super) fn accumulate_sorted(
    p: &CocoParams,
    cat: &SortedCategory,
    areas: &[AreaOutcome],
) -> CategoryAccumulation {
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rng.len(),
        p.max_dets.len(),
    );
    let mut precision = Array4::from_elem((t_n, r_n, a_n, m_n), -1.0);
    let mut scores = Array4::from_elem((t_n, r_n, a_n, m_n), -1.0);
    let mut recall = Array3::from_elem((t_n, a_n, m_n), -1.0);
    if !cat.any_image {
        return CategoryAccumulation {
            precision,
            scores,
            recall,
        };
    }
    let n = cat.scores.len();
    let all: Vec<u32> = (0..n as u32).collect();
    let mut list: Vec<u32> = Vec::with_capacity(n);
    // Per true positive in order: its position in the (filtered) order and its precision.
    let mut tp_at: Vec<usize> = Vec::with_capacity(n);
    let mut tp_pr: Vec<f64> = Vec::with_capacity(n);
    for (a, area) in areas.iter().enumerate().take(a_n) {
        if area.npig == 0 {
            continue;
        }
        let npig = area.npig as f64;
        // The first cap that keeps every detection: later caps repeat its arrays.
        let mut full_at: Option<usize> = None;
        for (m, &max_det) in p.max_dets.iter().enumerate() {
            if let Some(m0) = full_at {
                for t in 0..t_n {
                    recall[[t, a, m]] = recall[[t, a, m0]];
                    for r in 0..r_n {
                        precision[[t, r, a, m]] = precision[[t, r, a, m0]];
                        scores[[t, r, a, m]] = scores[[t, r, a, m0]];
                    }
                }
                continue;
            }
            let order: &[u32] = if max_det >= cat.max_rank {
                full_at = Some(m);
                &all
            } else {
                list.clear();
                list.extend((0..n as u32).filter(|&j| (cat.rank[j as usize] as usize) < max_det));
                &list
            };
            let nd = order.len();
            for t in 0..t_n {
                let fl = &area.flags[t * n..(t + 1) * n];
                tp_at.clear();
                tp_pr.clear();
                let (mut ctp, mut cfp) = (0u64, 0u64);
                for (i, &j) in order.iter().enumerate() {
                    match fl[j as usize] {
                        flag::TP => {
                            ctp += 1;
                            let (tpf, fpf) = (ctp as f64, cfp as f64);
                            tp_at.push(i);
                            tp_pr.push(tpf / (fpf + tpf + SPACING_1));
                        }
                        flag::FP => cfp += 1,
                        _ => {}
                    }
                }
                recall[[t, a, m]] = if nd == 0 { 0.0 } else { ctp as f64 / npig };
                // pycocotools' envelope `pr[i-1] = max(pr[i-1], pr[i])`, needed only at true
                // positives: a false positive's precision is below that of the true positive
                // before it, an ignored one repeats its predecessor's, and before the first
                // true positive precision is 0.
                for k in (1..tp_pr.len()).rev() {
                    if tp_pr[k] > tp_pr[k - 1] {
                        tp_pr[k - 1] = tp_pr[k];
                    }
                }
                // `np.searchsorted(tp / npig, recThrs, side='left')`: recall only rises at true
                // positives, so the first position reaching a threshold above rc[0] is the
                // c-th true positive, the first c with c / npig >= thr.
                let mut c = 0usize; // true positives passed
                for (r, &thr) in p.rec_thrs.iter().enumerate() {
                    let first_rc = match tp_at.first() {
                        Some(0) => 1.0 / npig,
                        _ => 0.0,
                    };
                    let hit = if nd > 0 && first_rc >= thr {
                        // Position 0: the envelope's maximum over everything.
                        Some((0usize, tp_pr.first().copied().unwrap_or(0.0).max(0.0)))
                    } else {
                        while c < tp_at.len() && ((c + 1) as f64) / npig < thr {
                            c += 1;
                        }
                        (c < tp_at.len()).then(|| (tp_at[c], tp_pr[c]))
                    };
                    match hit {
                        Some((idx, pr)) => {
                            precision[[t, r, a, m]] = pr;
                            scores[[t, r, a, m]] = cat.scores[order[idx] as usize];
                        }
                        None => {
                            // pycocotools leaves zeros from here on (IndexError caught).
                            for r2 in r..r_n {
                                precision[[t, r2, a, m]] = 0.0;
                                scores[[t, r2, a, m]] = 0.0;
                            }
                            break;
                        }
                    }
                }
            }
        }
    }
    CategoryAccumulation {
        precision,
        scores,
        recall,
    }
}

/// pycocotools' `accumulate` for one category, read from its `evalImgs` records indexed
/// `[a * n_i + i]` (area range, image) and re-sorting per area range and `maxDets` as
/// pycocotools does: the oracle [`accumulate_sorted`] is tested against.
#[cfg(test)]
pub(super) fn accumulate_category(
    p: &CocoParams,
    eval_imgs: &[Option<EvalImage>],
    n_i: usize,
) -> CategoryAccumulation {
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rng.len(),
        p.max_dets.len(),
    );
    let mut precision = Array4::from_elem((t_n, r_n, a_n, m_n), -1.0);
    let mut scores = Array4::from_elem((t_n, r_n, a_n, m_n), -1.0);
    let mut recall = Array3::from_elem((t_n, a_n, m_n), -1.0);
    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut tp = Vec::new();
    let mut fp = Vec::new();
    let mut pr = Vec::new();
    for (a, area_imgs) in eval_imgs.chunks(n_i.max(1)).take(a_n).enumerate() {
        let es: Vec<&EvalImage> = area_imgs.iter().flatten().collect();
        if es.is_empty() {
            continue;
        }
        let npig = es
            .iter()
            .map(|e| e.gt_ignore.iter().filter(|&&g| !g).count())
            .sum::<usize>();
        for (m, &max_det) in p.max_dets.iter().enumerate() {
            // (image slot, detection index) in concatenation order, then a stable sort by
            // descending score: np.argsort(-dtScores, kind='mergesort').
            order.clear();
            for (ei, e) in es.iter().enumerate() {
                let nd = e.dt_scores.len().min(max_det);
                order.extend((0..nd).map(|d| (ei, d)));
            }
            order.sort_by(|x, y| {
                let sx = es[x.0].dt_scores[x.1];
                let sy = es[y.0].dt_scores[y.1];
                sy.partial_cmp(&sx).unwrap_or(std::cmp::Ordering::Equal)
            });
            if npig == 0 {
                continue;
            }
            let nd = order.len();
            for t in 0..t_n {
                tp.clear();
                fp.clear();
                let (mut ctp, mut cfp) = (0u64, 0u64);
                for &(ei, d) in &order {
                    let e = es[ei];
                    let n = e.dt_scores.len();
                    let matched = e.dt_matches[t * n + d] != 0;
                    let ignored = e.dt_ignore[t * n + d];
                    if !ignored {
                        if matched {
                            ctp += 1;
                        } else {
                            cfp += 1;
                        }
                    }
                    tp.push(ctp as f64);
                    fp.push(cfp as f64);
                }
                recall[[t, a, m]] = match tp.last() {
                    Some(&last) => last / npig as f64,
                    None => 0.0,
                };
                pr.clear();
                pr.extend(
                    tp.iter()
                        .zip(&fp)
                        .map(|(&tp, &fp)| tp / (fp + tp + SPACING_1)),
                );
                for i in (1..nd).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                let mut idx = 0usize;
                for (r, &thr) in p.rec_thrs.iter().enumerate() {
                    while idx < nd && tp[idx] / (npig as f64) < thr {
                        idx += 1;
                    }
                    if idx < nd {
                        precision[[t, r, a, m]] = pr[idx];
                        let (ei, d) = order[idx];
                        scores[[t, r, a, m]] = es[ei].dt_scores[d];
                    } else {
                        // pycocotools leaves zeros from here on (IndexError caught).
                        for r2 in r..r_n {
                            precision[[t, r2, a, m]] = 0.0;
                            scores[[t, r2, a, m]] = 0.0;
                        }
                        break;
                    }
                }
            }
        }
    }
    CategoryAccumulation {
        precision,
        scores,
        recall,
    }
}

impl Accumulated {
    /// Stacks the categories (in `p.catIds` order) along [`pr_axis::CATEGORY`] /
    /// [`recall_axis::CATEGORY`].
    pub(super) fn from_categories(p: &CocoParams, cats: &[CategoryAccumulation]) -> Self {
        let (t_n, r_n, k_n, a_n, m_n) = (
            p.iou_thrs.len(),
            p.rec_thrs.len(),
            cats.len(),
            p.area_rng.len(),
            p.max_dets.len(),
        );
        let mut acc = Accumulated {
            precision: Array5::from_elem((t_n, r_n, k_n, a_n, m_n), -1.0),
            recall: Array4::from_elem((t_n, k_n, a_n, m_n), -1.0),
            scores: Array5::from_elem((t_n, r_n, k_n, a_n, m_n), -1.0),
        };
        for (k, c) in cats.iter().enumerate() {
            acc.precision
                .index_axis_mut(pr_axis::CATEGORY, k)
                .assign(&c.precision);
            acc.scores
                .index_axis_mut(pr_axis::CATEGORY, k)
                .assign(&c.scores);
            acc.recall
                .index_axis_mut(recall_axis::CATEGORY, k)
                .assign(&c.recall);
        }
        acc
    }

    /// The number of categories K.
    pub fn categories(&self) -> usize {
        self.precision.len_of(pr_axis::CATEGORY)
    }
}
