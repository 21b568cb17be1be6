//! pycocotools `COCOeval.accumulate` (per category) and `summarize` (the 12 numbers).

use serde::{Deserialize, Serialize};

use super::eval::{CocoParams, EvalImage};

/// The labels pycocotools prints for the 12 stats, in order.
pub const STAT_NAMES: [&str; 12] = [
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
];

/// The 12 summary numbers (`COCOeval.stats`); -1 where pycocotools prints -1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub stats: [f64; 12],
}

impl std::fmt::Display for Summary {
    /// The same lines as pycocotools' `summarize()`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, v) in STAT_NAMES.iter().zip(self.stats) {
            writeln!(f, " {name} = {v:.3}")?;
        }
        Ok(())
    }
}

/// `np.finfo(float).eps`, pycocotools' `np.spacing(1)`.
const SPACING_1: f64 = f64::EPSILON;

/// Accumulates one category: returns `(precision T x R x A x M, scores T x R x A x M,
/// recall T x A x M)`, -1 where there is no non-ignored ground truth.
pub(super) fn accumulate_category(
    p: &CocoParams,
    eval_imgs: &[Option<EvalImage>],
    n_i: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rng.len(),
        p.max_dets.len(),
    );
    let mut precision = vec![-1.0; t_n * r_n * a_n * m_n];
    let mut scores = vec![-1.0; t_n * r_n * a_n * m_n];
    let mut recall = vec![-1.0; t_n * a_n * m_n];
    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut tp = Vec::new();
    let mut fp = Vec::new();
    let mut pr = Vec::new();
    for a in 0..a_n {
        let es: Vec<&EvalImage> = eval_imgs[a * n_i..(a + 1) * n_i].iter().flatten().collect();
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
                let ri = (t * a_n + a) * m_n + m;
                recall[ri] = if nd > 0 {
                    tp[nd - 1] / npig as f64
                } else {
                    0.0
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
                    let at = ((t * r_n + r) * a_n + a) * m_n + m;
                    if idx < nd {
                        precision[at] = pr[idx];
                        let (ei, d) = order[idx];
                        scores[at] = es[ei].dt_scores[d];
                    } else {
                        // pycocotools leaves zeros from here on (IndexError caught).
                        for r2 in r..r_n {
                            let at = ((t * r_n + r2) * a_n + a) * m_n + m;
                            precision[at] = 0.0;
                            scores[at] = 0.0;
                        }
                        break;
                    }
                }
            }
        }
    }
    (precision, scores, recall)
}

/// numpy's pairwise summation (`pairwise_sum_DOUBLE`, block 128, 8 accumulators).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `np.mean(s[s > -1])`, or -1 when nothing is left.
fn mean_valid(v: &[f64]) -> f64 {
    let kept: Vec<f64> = v.iter().copied().filter(|&x| x > -1.0).collect();
    if kept.is_empty() {
        -1.0
    } else {
        pairwise_sum(&kept) / kept.len() as f64
    }
}

/// pycocotools `summarize()` for bbox: the 12 stats. Arrays as in [`super::CocoEval`].
pub(super) fn summarize(p: &CocoParams, precision: &[f64], recall: &[f64], n_k: usize) -> Summary {
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rng.len(),
        p.max_dets.len(),
    );
    let aind = |lbl: &str| p.area_rng_lbl.iter().position(|l| l == lbl);
    let mind = |md: usize| p.max_dets.iter().position(|&m| m == md);
    // np.where(iouThr == p.iouThrs): exact float equality, as pycocotools.
    let tind = |thr: Option<f64>| -> Vec<usize> {
        match thr {
            None => (0..t_n).collect(),
            Some(x) => (0..t_n).filter(|&t| p.iou_thrs[t] == x).collect(),
        }
    };
    let ap = |thr: Option<f64>, area: &str, md: usize| -> f64 {
        let (Some(a), Some(m)) = (aind(area), mind(md)) else {
            return -1.0;
        };
        let mut v = Vec::new();
        for t in tind(thr) {
            for r in 0..r_n {
                for k in 0..n_k {
                    v.push(precision[(((t * r_n + r) * n_k + k) * a_n + a) * m_n + m]);
                }
            }
        }
        mean_valid(&v)
    };
    let ar = |area: &str, md: usize| -> f64 {
        let (Some(a), Some(m)) = (aind(area), mind(md)) else {
            return -1.0;
        };
        let mut v = Vec::new();
        for t in 0..t_n {
            for k in 0..n_k {
                v.push(recall[((t * n_k + k) * a_n + a) * m_n + m]);
            }
        }
        mean_valid(&v)
    };
    let last = *p.max_dets.last().unwrap_or(&100);
    let m0 = p.max_dets.first().copied().unwrap_or(1);
    let m1 = p.max_dets.get(1).copied().unwrap_or(last);
    Summary {
        stats: [
            ap(None, "all", last),
            ap(Some(0.5), "all", last),
            ap(Some(0.75), "all", last),
            ap(None, "small", last),
            ap(None, "medium", last),
            ap(None, "large", last),
            ar("all", m0),
            ar("all", m1),
            ar("all", last),
            ar("small", last),
            ar("medium", last),
            ar("large", last),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_plain_sum_on_exact_values() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&v), 499_500.0);
        assert_eq!(pairwise_sum(&v[..5]), 10.0);
        assert_eq!(pairwise_sum(&v[..100]), 4950.0);
        assert_eq!(mean_valid(&[-1.0, -1.0]), -1.0);
        assert_eq!(mean_valid(&[-1.0, 0.5, 1.0]), 0.75);
    }
}
