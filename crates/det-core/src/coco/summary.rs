//! pycocotools `COCOeval.summarize` for bbox: the 12 numbers, read from the [`Accumulated`]
//! arrays by named axis, with numpy's pairwise summation so that they are the same doubles.

use serde::{Deserialize, Serialize};

use super::accumulate::{pr_axis, recall_axis, Accumulated};
use super::params::CocoParams;

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
    /// AP, AP50, AP75, AP small / medium / large, AR@1, AR@10, AR@100, AR small / medium /
    /// large, in pycocotools' order ([`STAT_NAMES`]).
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

/// pycocotools `summarize()` for bbox: the 12 stats from the accumulated arrays.
pub(super) fn summarize(p: &CocoParams, acc: &Accumulated) -> Summary {
    let t_n = p.iou_thrs.len();
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
        // s = precision[t, :, :, a, m], flattened in (t, r, k) order as numpy's s[s > -1].
        let by_iou = acc
            .precision
            .index_axis(pr_axis::MAX_DETS, m)
            .index_axis_move(pr_axis::AREA, a);
        let mut v = Vec::new();
        for t in tind(thr) {
            v.extend(by_iou.index_axis(pr_axis::IOU, t).iter().copied());
        }
        mean_valid(&v)
    };
    let ar = |area: &str, md: usize| -> f64 {
        let (Some(a), Some(m)) = (aind(area), mind(md)) else {
            return -1.0;
        };
        // s = recall[:, :, a, m], flattened in (t, k) order.
        let v: Vec<f64> = acc
            .recall
            .index_axis(recall_axis::MAX_DETS, m)
            .index_axis_move(recall_axis::AREA, a)
            .iter()
            .copied()
            .collect();
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
