//! The bbox evaluator of pycocotools `COCOeval` (`evaluate` + `accumulate` + `summarize`),
//! reproduced operation by operation so that the 12 summary numbers are the same doubles:
//! crowd IoU = intersection / detection area (`maskApi.c` `bbIou`), detections sorted by score
//! with a stable sort and cut at `maxDets[-1]` per image and category, ground truth ordered
//! non-ignored first, greedy matching at each IoU threshold (with `min(t, 1 - 1e-10)`),
//! unmatched detections outside the area range ignored, per-category accumulation over images
//! in ascending id order, the precision envelope sampled with `searchsorted(side='left')` at
//! 101 recall points. Images are matched per category on all cores (std threads).
//!
//! One pycocotools quirk is kept on purpose: a match is recorded as the matched ground truth's
//! id and "unmatched" means id 0, so a ground-truth annotation with id 0 never counts as a
//! match, exactly as in pycocotools.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::summary::{summarize, Summary};
use super::{CocoDataset, CocoDetection};
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
    pub iou_thrs: Vec<f64>,
    pub rec_thrs: Vec<f64>,
    /// Ascending; the last one caps the detections kept per image and category.
    pub max_dets: Vec<usize>,
    /// Inclusive `[lo, hi]` ranges of ground-truth `area`.
    pub area_rng: Vec<[f64; 2]>,
    pub area_rng_lbl: Vec<String>,
    /// Worker threads (0: all available cores).
    pub threads: usize,
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
        }
    }
}

impl CocoParams {
    fn check(&self) -> Result<()> {
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
}

/// Per image, category and area range: pycocotools' `evalImgs` entry (for `maxDets[-1]`).
/// Matrices are row-major `T x D` / `T x G`; matches hold the partner's id, 0 = none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalImage {
    pub image_id: i64,
    pub category_id: i64,
    pub area_rng: [f64; 2],
    pub max_det: usize,
    pub dt_ids: Vec<i64>,
    pub gt_ids: Vec<i64>,
    pub dt_matches: Vec<i64>,
    pub gt_matches: Vec<i64>,
    pub dt_scores: Vec<f64>,
    pub gt_ignore: Vec<bool>,
    pub dt_ignore: Vec<bool>,
}

/// Result of [`evaluate`]: pycocotools' `evalImgs`, `eval` arrays and `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoEval {
    pub params: CocoParams,
    /// Sorted ids, as `p.imgIds` / `p.catIds`.
    pub img_ids: Vec<i64>,
    pub cat_ids: Vec<i64>,
    /// Indexed `[k][a][i]` flattened (category, area range, image), `None` where the image has
    /// neither ground truth nor detections of the category.
    pub eval_imgs: Vec<Option<EvalImage>>,
    /// `T x R x K x A x M`, -1 where a category has no non-ignored ground truth.
    pub precision: Vec<f64>,
    /// `T x K x A x M`.
    pub recall: Vec<f64>,
    /// `T x R x K x A x M`: score at each recall point.
    pub scores: Vec<f64>,
    pub summary: Summary,
    /// Category ids of detections that the ground truth does not list (not evaluated).
    pub unknown_categories: Vec<i64>,
}

impl CocoEval {
    /// Shape `[T, R, K, A, M]` of [`CocoEval::precision`].
    pub fn precision_shape(&self) -> [usize; 5] {
        let p = &self.params;
        [
            p.iou_thrs.len(),
            p.rec_thrs.len(),
            self.cat_ids.len(),
            p.area_rng.len(),
            p.max_dets.len(),
        ]
    }

    /// Precision-recall curves for [`crate::draw::pr_curve_png`]: one per IoU threshold, area
    /// range "all", the largest maxDets, precision averaged over the categories that have ground
    /// truth at each of the 101 recall points. The mean of the IoU=0.50 curve is stat 1 (AP50).
    pub fn pr_curves(&self) -> Vec<(String, Vec<f64>, Vec<f64>)> {
        let [t, r, k, a, m] = self.precision_shape();
        (0..t)
            .map(|tt| {
                let precision = (0..r)
                    .map(|rr| {
                        let v: Vec<f64> = (0..k)
                            .map(|kk| self.precision[(((tt * r + rr) * k + kk) * a) * m + (m - 1)])
                            .filter(|&x| x > -1.0)
                            .collect();
                        if v.is_empty() {
                            0.0
                        } else {
                            v.iter().sum::<f64>() / v.len() as f64
                        }
                    })
                    .collect();
                (
                    format!("IoU={:.2}", self.params.iou_thrs[tt]),
                    self.params.rec_thrs.clone(),
                    precision,
                )
            })
            .collect()
    }

    /// AP per category (area "all", largest maxDets), averaged over IoU thresholds and recall
    /// points like stat 0; -1 where the category has no ground truth.
    pub fn per_category_ap(&self) -> Vec<(i64, f64)> {
        let [t, r, k, a, m] = self.precision_shape();
        (0..k)
            .map(|kk| {
                let v: Vec<f64> = (0..t * r)
                    .map(|tr| self.precision[((tr * k + kk) * a) * m + (m - 1)])
                    .filter(|&x| x > -1.0)
                    .collect();
                let ap = if v.is_empty() {
                    -1.0
                } else {
                    v.iter().sum::<f64>() / v.len() as f64
                };
                (self.cat_ids[kk], ap)
            })
            .collect()
    }
}

struct Gt {
    id: i64,
    bbox: [f64; 4],
    area: f64,
    crowd: bool,
}

struct Dt {
    id: i64,
    bbox: [f64; 4],
    area: f64,
    score: f64,
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

/// pycocotools `evaluateImg` for one image, category and area range. `dts` are already sorted
/// by score and cut at `maxDets[-1]`; `ious` is `D x G` in the original ground-truth order.
fn evaluate_img(
    p: &CocoParams,
    ids: (i64, i64),
    gts: &[&Gt],
    dts: &[&Dt],
    ious: &[f64],
    a_rng: [f64; 2],
) -> Option<EvalImage> {
    if gts.is_empty() && dts.is_empty() {
        return None;
    }
    let g_n = gts.len();
    let d_n = dts.len();
    let t_n = p.iou_thrs.len();
    let ign: Vec<bool> = gts
        .iter()
        .map(|g| g.crowd || g.area < a_rng[0] || g.area > a_rng[1])
        .collect();
    // Stable: non-ignored first.
    let mut gtind: Vec<usize> = (0..g_n).filter(|&j| !ign[j]).collect();
    gtind.extend((0..g_n).filter(|&j| ign[j]));
    let gt_ignore: Vec<bool> = gtind.iter().map(|&j| ign[j]).collect();
    let crowd: Vec<bool> = gtind.iter().map(|&j| gts[j].crowd).collect();
    let mut gtm = vec![0i64; t_n * g_n];
    let mut dtm = vec![0i64; t_n * d_n];
    let mut dt_ig = vec![false; t_n * d_n];
    if g_n > 0 && d_n > 0 {
        for (ti, &t) in p.iou_thrs.iter().enumerate() {
            for (di, d) in dts.iter().enumerate() {
                let mut iou = t.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                let row = &ious[di * g_n..(di + 1) * g_n];
                for (gi, &orig) in gtind.iter().enumerate() {
                    if gtm[ti * g_n + gi] > 0 && !crowd[gi] {
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
                    dt_ig[ti * d_n + di] = gt_ignore[mm];
                    dtm[ti * d_n + di] = gts[gtind[mm]].id;
                    gtm[ti * g_n + mm] = d.id;
                }
            }
        }
    }
    for (di, d) in dts.iter().enumerate() {
        let out = d.area < a_rng[0] || d.area > a_rng[1];
        if out {
            for ti in 0..t_n {
                if dtm[ti * d_n + di] == 0 {
                    dt_ig[ti * d_n + di] = true;
                }
            }
        }
    }
    Some(EvalImage {
        image_id: ids.0,
        category_id: ids.1,
        area_rng: a_rng,
        max_det: *p.max_dets.last().unwrap_or(&0),
        dt_ids: dts.iter().map(|d| d.id).collect(),
        gt_ids: gtind.iter().map(|&j| gts[j].id).collect(),
        dt_matches: dtm,
        gt_matches: gtm,
        dt_scores: dts.iter().map(|d| d.score).collect(),
        gt_ignore,
        dt_ignore: dt_ig,
    })
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

/// Per-category output of the workers.
pub(super) struct CatResult {
    pub eval_imgs: Vec<Option<EvalImage>>,
    /// `T x R x A x M` for this category.
    pub precision: Vec<f64>,
    pub scores: Vec<f64>,
    /// `T x A x M`.
    pub recall: Vec<f64>,
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

    let threads = if params.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        params.threads
    }
    .min(n_k.max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CatResult>>> = Mutex::new((0..n_k).map(|_| None).collect());
    let max_det = *params.max_dets.last().unwrap_or(&0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n_k {
                    break;
                }
                let mut eval_imgs = Vec::with_capacity(params.area_rng.len() * n_i);
                let mut per_img: Vec<(Vec<&Gt>, Vec<&Dt>, Vec<f64>)> = Vec::with_capacity(n_i);
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
                    let mut ious = Vec::with_capacity(d.len() * g.len());
                    for dd in &d {
                        ious.extend(g.iter().map(|gg| bb_iou(&dd.bbox, &gg.bbox, gg.crowd)));
                    }
                    per_img.push((g, d, ious));
                }
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
                let acc = super::summary::accumulate_category(params, &eval_imgs, n_i);
                let r = CatResult {
                    eval_imgs,
                    precision: acc.0,
                    scores: acc.1,
                    recall: acc.2,
                };
                if let Ok(mut v) = results.lock() {
                    v[k] = Some(r);
                }
            });
        }
    });
    let per_cat: Vec<CatResult> = results
        .into_inner()
        .map_err(|_| DetError::arg("threads", "workers that finish", "a worker panicked"))?
        .into_iter()
        .map(|r| r.ok_or_else(|| DetError::arg("threads", "every category evaluated", "a gap")))
        .collect::<Result<_>>()?;
    let (t_n, r_n, a_n, m_n) = (
        params.iou_thrs.len(),
        params.rec_thrs.len(),
        params.area_rng.len(),
        params.max_dets.len(),
    );
    let mut precision = vec![-1.0; t_n * r_n * n_k * a_n * m_n];
    let mut scores = vec![-1.0; t_n * r_n * n_k * a_n * m_n];
    let mut recall = vec![-1.0; t_n * n_k * a_n * m_n];
    let mut eval_imgs = Vec::with_capacity(n_k * a_n * n_i);
    for (k, c) in per_cat.into_iter().enumerate() {
        for tr in 0..t_n * r_n {
            for am in 0..a_n * m_n {
                precision[(tr * n_k + k) * a_n * m_n + am] = c.precision[tr * a_n * m_n + am];
                scores[(tr * n_k + k) * a_n * m_n + am] = c.scores[tr * a_n * m_n + am];
            }
        }
        for t in 0..t_n {
            for am in 0..a_n * m_n {
                recall[(t * n_k + k) * a_n * m_n + am] = c.recall[t * a_n * m_n + am];
            }
        }
        eval_imgs.extend(c.eval_imgs);
    }
    let summary = summarize(params, &precision, &recall, n_k);
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
