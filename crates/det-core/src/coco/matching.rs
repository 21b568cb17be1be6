//! pycocotools `evaluateImg` for bbox: the per-image, per-category greedy matching at each IoU
//! threshold (crowd IoU = intersection / detection area as `maskApi.c` `bbIou`), producing the
//! `evalImgs` records that [`super::accumulate`] turns into precision and recall.
//!
//! One pycocotools quirk is kept on purpose: a match is recorded as the matched ground truth's
//! id and "unmatched" means id 0, so a ground-truth annotation with id 0 never counts as a
//! match, exactly as in pycocotools.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::params::CocoParams;

/// Per image, category and area range: pycocotools' `evalImgs` entry (for `maxDets[-1]`).
/// Matrices are row-major `T x D` / `T x G`; matches hold the partner's id, 0 = none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalImage {
    /// `image_id`.
    pub image_id: i64,
    /// `category_id`.
    pub category_id: i64,
    /// `aRng`: the area range this record was matched for.
    pub area_rng: [f64; 2],
    /// `maxDet`: `maxDets[-1]`.
    pub max_det: usize,
    /// `dtIds`: detection ids (results index + 1) in descending score order.
    pub dt_ids: Vec<i64>,
    /// `gtIds`: ground-truth ids, non-ignored first.
    pub gt_ids: Vec<i64>,
    /// `dtMatches` (`T x D`): the matched ground truth's id, 0 = none.
    pub dt_matches: Vec<i64>,
    /// `gtMatches` (`T x G`): the matched detection's id, 0 = none.
    pub gt_matches: Vec<i64>,
    /// `dtScores`, descending.
    pub dt_scores: Vec<f64>,
    /// `gtIgnore`: crowd or outside the area range.
    pub gt_ignore: Vec<bool>,
    /// `dtIgnore` (`T x D`): matched to an ignored ground truth, or unmatched and outside the
    /// area range.
    pub dt_ignore: Vec<bool>,
}

/// One ground-truth annotation as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gt {
    pub id: i64,
    pub bbox: [f64; 4],
    pub area: f64,
    pub crowd: bool,
}

/// One detection as the evaluator sees it (`id` = results index + 1, as `loadRes`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Dt {
    pub id: i64,
    pub bbox: [f64; 4],
    pub area: f64,
    pub score: f64,
}

/// `maskApi.c` `bbIou` for one pair (xywh boxes), same operation order.
#[inline]
fn bb_iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = d[2] * d[3];
    let u = if crowd { da } else { da + g[2] * g[3] - i };
    i / u
}

/// `computeIoU`: the `D x G` IoU matrix of one image and category, ground truth in its
/// original order.
pub(super) fn compute_iou(dts: &[Dt], gts: &[Gt]) -> Array2<f64> {
    Array2::from_shape_fn((dts.len(), gts.len()), |(d, g)| {
        bb_iou(&dts[d].bbox, &gts[g].bbox, gts[g].crowd)
    })
}

/// The outcome of one detection at one IoU threshold, as `accumulate` counts it.
pub(super) mod flag {
    /// Unmatched and not ignored: a false positive.
    pub const FP: u8 = 0;
    /// Matched to a non-ignored ground truth: a true positive.
    pub const TP: u8 = 1;
    /// Matched to an ignored ground truth, or unmatched and outside the area range.
    pub const IGNORED: u8 = 2;
}

/// pycocotools `evaluateImg`'s matching for one image, category and area range, into buffers
/// that are reused from call to call (the evaluator runs it ~10^6 times on a COCO-sized set).
#[derive(Debug, Default)]
pub(super) struct Matcher {
    ign: Vec<bool>,
    /// Ground-truth indices, non-ignored first (stable).
    gtind: Vec<usize>,
    /// `gtIgnore`, in `gtind` order.
    gt_ignore: Vec<bool>,
    crowd: Vec<bool>,
    /// `gtMatches` (`T x G`): the matched detection's id, 0 = none.
    gtm: Vec<i64>,
    /// `dtMatches` (`T x D`): the matched ground truth's id, 0 = none.
    dtm: Vec<i64>,
    /// `dtIgnore` (`T x D`).
    dt_ig: Vec<bool>,
    d_n: usize,
}

impl Matcher {
    /// Matches `dts` (sorted by score, cut at `maxDets[-1]`) to `gts` at every IoU threshold
    /// for area range `a_rng`; `ious` is `D x G` in the original ground-truth order.
    pub(super) fn run(
        &mut self,
        p: &CocoParams,
        gts: &[Gt],
        dts: &[Dt],
        ious: &Array2<f64>,
        a_rng: [f64; 2],
    ) {
        let g_n = gts.len();
        let d_n = dts.len();
        let t_n = p.iou_thrs.len();
        self.d_n = d_n;
        self.ign.clear();
        self.ign.extend(
            gts.iter()
                .map(|g| g.crowd || g.area < a_rng[0] || g.area > a_rng[1]),
        );
        // Stable: non-ignored first.
        self.gtind.clear();
        self.gtind.extend((0..g_n).filter(|&j| !self.ign[j]));
        self.gtind.extend((0..g_n).filter(|&j| self.ign[j]));
        self.gt_ignore.clear();
        self.gt_ignore
            .extend(self.gtind.iter().map(|&j| self.ign[j]));
        self.crowd.clear();
        self.crowd.extend(self.gtind.iter().map(|&j| gts[j].crowd));
        reset(&mut self.gtm, t_n * g_n, 0);
        reset(&mut self.dtm, t_n * d_n, 0);
        reset(&mut self.dt_ig, t_n * d_n, false);
        let (gtind, gt_ignore, crowd) = (&self.gtind, &self.gt_ignore, &self.crowd);
        if g_n > 0 && d_n > 0 {
            for (ti, &t) in p.iou_thrs.iter().enumerate() {
                for (di, (d, row)) in dts.iter().zip(ious.rows()).enumerate() {
                    let mut iou = t.min(1.0 - 1e-10);
                    let mut m: Option<usize> = None;
                    for (gi, &orig) in gtind.iter().enumerate() {
                        if self.gtm[ti * g_n + gi] > 0 && !crowd[gi] {
                            continue;
                        }
                        if let Some(mm) = m {
                            if !gt_ignore[mm] && gt_ignore[gi] {
                                break;
                            }
                        }
                        let v = row[orig];
                        if v < iou {
                            continue;
                        }
                        iou = v;
                        m = Some(gi);
                    }
                    if let Some(mm) = m {
                        self.dt_ig[ti * d_n + di] = gt_ignore[mm];
                        self.dtm[ti * d_n + di] = gts[gtind[mm]].id;
                        self.gtm[ti * g_n + mm] = d.id;
                    }
                }
            }
        }
        for (di, d) in dts.iter().enumerate() {
            if d.area < a_rng[0] || d.area > a_rng[1] {
                for ti in 0..t_n {
                    if self.dtm[ti * d_n + di] == 0 {
                        self.dt_ig[ti * d_n + di] = true;
                    }
                }
            }
        }
    }

    /// The number of non-ignored ground truths of the last [`Matcher::run`].
    pub(super) fn npig(&self) -> usize {
        self.gt_ignore.iter().filter(|&&g| !g).count()
    }

    /// Detection `d`'s outcome at threshold index `t` (a [`flag`]) in the last run.
    #[inline]
    pub(super) fn flag(&self, t: usize, d: usize) -> u8 {
        let k = t * self.d_n + d;
        if self.dt_ig[k] {
            flag::IGNORED
        } else if self.dtm[k] != 0 {
            flag::TP
        } else {
            flag::FP
        }
    }

    /// The last run as pycocotools' `evalImgs` record.
    pub(super) fn record(
        &self,
        p: &CocoParams,
        ids: (i64, i64),
        gts: &[Gt],
        dts: &[Dt],
        a_rng: [f64; 2],
    ) -> EvalImage {
        EvalImage {
            image_id: ids.0,
            category_id: ids.1,
            area_rng: a_rng,
            max_det: p.max_det(),
            dt_ids: dts.iter().map(|d| d.id).collect(),
            gt_ids: self.gtind.iter().map(|&j| gts[j].id).collect(),
            dt_matches: self.dtm.clone(),
            gt_matches: self.gtm.clone(),
            dt_scores: dts.iter().map(|d| d.score).collect(),
            gt_ignore: self.gt_ignore.clone(),
            dt_ignore: self.dt_ig.clone(),
        }
    }
}

fn reset<T: Copy>(v: &mut Vec<T>, n: usize, value: T) {
    v.clear();
    v.resize(n, value);
}
