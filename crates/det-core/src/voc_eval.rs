//! Pascal VOC detection AP as the devkit's `voc_eval.py`: per class, detections in descending
//! confidence, each matched to the ground truth box of largest overlap in its image; a match
//! above the threshold (strictly greater, default 0.5) is a true positive unless that box was
//! already taken (false positive) or is `difficult` (neither); difficult boxes do not count
//! towards the positives. Overlaps use the `+1` pixel convention of VOC's inclusive integer
//! coordinates (switchable). AP is the VOC2007 11-point interpolation (`use_07_metric`) or
//! the area under the monotone precision envelope (VOC2010+ all-point).
//!
//! The devkit sorts with numpy's default (unstable) quicksort; here ties keep input order
//! (stable), which only matters for detections with exactly equal confidence.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::boxes::validate_xyxy;
use crate::error::{DetError, Result};

/// Ground truth box of one image: `xyxy`, class name, difficult flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocGt {
    /// Key of the image the box lies on.
    pub image: String,
    /// Class name.
    pub class: String,
    /// `xyxy` box.
    pub bbox: [f64; 4],
    /// `difficult`: neither a positive nor a false positive when matched.
    pub difficult: bool,
}

/// One detection: image key, class name, confidence, `xyxy` box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocDet {
    /// Key of the image the detection lies on.
    pub image: String,
    /// Class name.
    pub class: String,
    /// Confidence, higher first.
    pub score: f64,
    /// `xyxy` box.
    pub bbox: [f64; 4],
}

/// Which AP the evaluator reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VocMetric {
    /// VOC2007: mean of the maximum precision at recall >= 0, 0.1, ..., 1.0.
    ElevenPoint,
    /// VOC2010+: area under the precision envelope at every recall change.
    AllPoint,
}

/// Settings of [`voc_evaluate`]; `Default` = the VOC2007 test protocol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocParams {
    /// A match needs IoU strictly above this (0.5).
    pub iou_threshold: f64,
    /// 11-point (VOC2007) or all-point (VOC2010+) AP.
    pub metric: VocMetric,
    /// Width = x2 - x1 + 1 (VOC's inclusive pixel boxes).
    pub plus_one: bool,
}

impl Default for VocParams {
    fn default() -> Self {
        VocParams {
            iou_threshold: 0.5,
            metric: VocMetric::ElevenPoint,
            plus_one: true,
        }
    }
}

/// Per-class result: AP, the recall/precision curve (one point per detection) and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocClassResult {
    /// Class name.
    pub class: String,
    /// Average precision.
    pub ap: f64,
    /// Recall after each detection, in descending confidence.
    pub recall: Vec<f64>,
    /// Precision after each detection.
    pub precision: Vec<f64>,
    /// Non-difficult ground truth boxes.
    pub npos: usize,
    /// Detections of the class.
    pub detections: usize,
}

/// All classes (sorted by name) and their mean AP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocResult {
    /// Per class, sorted by name.
    pub classes: Vec<VocClassResult>,
    /// Mean of the classes' AP.
    pub map: f64,
}

/// `voc_ap(rec, prec, use_07_metric)` of the devkit.
pub fn voc_ap(rec: &[f64], prec: &[f64], metric: VocMetric) -> f64 {
    match metric {
        VocMetric::ElevenPoint => {
            let mut ap = 0.0;
            for i in 0..11 {
                let t = i as f64 * 0.1; // np.arange(0., 1.1, 0.1)
                let p = rec
                    .iter()
                    .zip(prec)
                    .filter(|(&r, _)| r >= t)
                    .map(|(_, &p)| p)
                    .fold(f64::NEG_INFINITY, f64::max);
                ap += if p.is_finite() { p } else { 0.0 } / 11.0;
            }
            ap
        }
        VocMetric::AllPoint => {
            let mut mrec = Vec::with_capacity(rec.len() + 2);
            mrec.push(0.0);
            mrec.extend_from_slice(rec);
            mrec.push(1.0);
            let mut mpre = Vec::with_capacity(prec.len() + 2);
            mpre.push(0.0);
            mpre.extend_from_slice(prec);
            mpre.push(0.0);
            for i in (1..mpre.len()).rev() {
                mpre[i - 1] = mpre[i - 1].max(mpre[i]);
            }
            let mut ap = 0.0;
            for i in 0..mrec.len() - 1 {
                if mrec[i + 1] != mrec[i] {
                    ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1];
                }
            }
            ap
        }
    }
}

/// Evaluates every class that has ground truth or detections.
pub fn voc_evaluate(gt: &[VocGt], dets: &[VocDet], p: &VocParams) -> Result<VocResult> {
    if !(0.0..=1.0).contains(&p.iou_threshold) {
        return Err(DetError::arg(
            "iou_threshold",
            "a number in [0, 1]",
            p.iou_threshold,
        ));
    }
    for (i, g) in gt.iter().enumerate() {
        validate_xyxy(g.bbox, "ground truth box", i)?;
    }
    for (i, d) in dets.iter().enumerate() {
        validate_xyxy(d.bbox, "detection", i)?;
        if !d.score.is_finite() {
            return Err(DetError::InvalidScore {
                what: "detection",
                id: i.to_string(),
                score: d.score,
            });
        }
    }
    let one = if p.plus_one { 1.0 } else { 0.0 };
    let mut classes: BTreeMap<&str, (Vec<&VocGt>, Vec<&VocDet>)> = BTreeMap::new();
    for g in gt {
        classes.entry(&g.class).or_default().0.push(g);
    }
    for d in dets {
        classes.entry(&d.class).or_default().1.push(d);
    }
    let mut out = Vec::new();
    for (class, (gts, mut ds)) in classes {
        let mut per_image: HashMap<&str, Vec<(&VocGt, bool)>> = HashMap::new();
        for g in &gts {
            per_image.entry(&g.image).or_default().push((g, false));
        }
        let npos = gts.iter().filter(|g| !g.difficult).count();
        ds.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        let mut recall = Vec::with_capacity(ds.len());
        let mut precision = Vec::with_capacity(ds.len());
        for d in &ds {
            let bb = d.bbox;
            let mut ovmax = f64::NEG_INFINITY;
            let mut jmax = 0;
            if let Some(r) = per_image.get(d.image.as_str()) {
                for (j, (g, _)) in r.iter().enumerate() {
                    let gb = g.bbox;
                    let iw = (gb[2].min(bb[2]) - gb[0].max(bb[0]) + one).max(0.0);
                    let ih = (gb[3].min(bb[3]) - gb[1].max(bb[1]) + one).max(0.0);
                    let inters = iw * ih;
                    let uni = (bb[2] - bb[0] + one) * (bb[3] - bb[1] + one)
                        + (gb[2] - gb[0] + one) * (gb[3] - gb[1] + one)
                        - inters;
                    let ov = inters / uni;
                    // np.argmax: first maximum
                    if ov > ovmax {
                        ovmax = ov;
                        jmax = j;
                    }
                }
            }
            if ovmax > p.iou_threshold {
                if let Some(r) = per_image.get_mut(d.image.as_str()) {
                    let (g, taken) = &mut r[jmax];
                    if !g.difficult {
                        if !*taken {
                            tp += 1.0;
                            *taken = true;
                        } else {
                            fp += 1.0;
                        }
                    }
                }
            } else {
                fp += 1.0;
            }
            recall.push(tp / npos as f64);
            precision.push(tp / (tp + fp).max(f64::EPSILON));
        }
        let ap = voc_ap(&recall, &precision, p.metric);
        out.push(VocClassResult {
            class: class.to_owned(),
            ap,
            recall,
            precision,
            npos,
            detections: ds.len(),
        });
    }
    let map = if out.is_empty() {
        f64::NAN
    } else {
        out.iter().map(|c| c.ap).sum::<f64>() / out.len() as f64
    };
    Ok(VocResult { classes: out, map })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(image: &str, bbox: [f64; 4], difficult: bool) -> VocGt {
        VocGt {
            image: image.into(),
            class: "tree".into(),
            bbox,
            difficult,
        }
    }
    fn d(image: &str, score: f64, bbox: [f64; 4]) -> VocDet {
        VocDet {
            image: image.into(),
            class: "tree".into(),
            score,
            bbox,
        }
    }

    #[test]
    fn ap_formulas() {
        // recall reaches 0.5 at precision 1, then 1.0 at precision 2/3
        let rec = [0.5, 0.5, 1.0];
        let prec = [1.0, 0.5, 2.0 / 3.0];
        let tight = test_support::Tol::abs(1e-15);
        test_support::assert_close(
            voc_ap(&rec, &prec, VocMetric::AllPoint),
            0.5 + 0.5 * 2.0 / 3.0,
            tight,
        );
        let eleven = (6.0 * 1.0 + 5.0 * 2.0 / 3.0) / 11.0;
        test_support::assert_close(voc_ap(&rec, &prec, VocMetric::ElevenPoint), eleven, tight);
    }

    #[test]
    fn difficult_duplicates_and_plus_one() {
        let gt = [
            g("a", [0.0, 0.0, 9.0, 9.0], false),
            g("a", [50.0, 50.0, 59.0, 59.0], true),
            g("b", [0.0, 0.0, 9.0, 9.0], false),
        ];
        let dets = [
            d("a", 0.9, [0.0, 0.0, 9.0, 9.0]),     // tp
            d("a", 0.8, [0.0, 0.0, 9.0, 9.0]),     // duplicate: fp
            d("a", 0.7, [50.0, 50.0, 59.0, 59.0]), // on a difficult box: ignored
            d("b", 0.6, [0.0, 0.0, 9.0, 9.0]),     // tp
        ];
        let r = voc_evaluate(&gt, &dets, &VocParams::default()).unwrap();
        let c = &r.classes[0];
        assert_eq!(c.npos, 2);
        assert_eq!(c.recall, vec![0.5, 0.5, 0.5, 1.0]);
        assert_eq!(c.precision[3], 2.0 / 3.0);
        // +1: a 10x10 box vs the 9x9 box at offset 1 overlaps 81/100 > 0.5 ...
        let shifted = [d("b", 0.5, [1.0, 1.0, 9.0, 9.0])];
        let with = voc_evaluate(&gt[2..], &shifted, &VocParams::default()).unwrap();
        assert_eq!(with.classes[0].recall, vec![1.0]);
        // ... and 64/81 without the +1.
        let without = VocParams {
            plus_one: false,
            ..VocParams::default()
        };
        assert_eq!(
            voc_evaluate(&gt[2..], &shifted, &without).unwrap().classes[0].recall,
            vec![1.0]
        );
        let far = [d("b", 0.5, [6.0, 6.0, 15.0, 15.0])]; // 16/184 with +1
        assert_eq!(
            voc_evaluate(&gt[2..], &far, &VocParams::default())
                .unwrap()
                .classes[0]
                .ap,
            0.0
        );
        assert!(voc_evaluate(&gt, &[d("a", f64::NAN, [0.0; 4])], &VocParams::default()).is_err());
    }
}
