//! The official per-frame protocol (`utils.py` `frame_level_map_n_cap`, `train.py` `evaluate`):
//! the softmax over every class but the ambiguous one; for each class but the background, frames
//! sorted by descending score and
//!
//! - AP = (1/P) sum over the positives of the precision at their rank, `tp / (tp + fp)`, no
//!   interpolation (Shou et al.'s per-frame mAP);
//! - calibrated AP = (1/P) sum over the positives of `w tp / (w tp + fp)` with `w = #neg / #pos`
//!   (De Geest et al. 2016), which removes the dependence on the positive ratio;
//!
//! mAP and mcAP are the means over the classes. Frames whose current label is ambiguous are
//! dropped (the official data layer never builds their windows); for the anticipation steps an
//! ambiguous future frame stays, a negative for every class, as in the official evaluation.
//! Ties are ranked in frame order (a stable sort; the official `np.argsort` quicksort leaves
//! their order unspecified, which only matters for ties across positives and negatives).

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::config::OadConfig;
use crate::error::{shape_error, OadError, Result};
use crate::model::OadOutput;

/// Frame indices by descending score, ties in frame order; NaN is an error.
fn ranking(scores: &[f32]) -> Result<Vec<usize>> {
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(OadError::Eval(format!("score of frame {i} is NaN")));
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    Ok(idx)
}

/// AP and calibrated AP of one class: `scores[i]` and whether frame `i` is a positive.
/// `Ok(None)` when the class has no positive frame (the official code divides by zero).
pub fn ap_and_cap(scores: &[f32], positive: &[bool]) -> Result<Option<(f64, f64)>> {
    if scores.len() != positive.len() {
        return Err(OadError::Eval(format!(
            "{} scores for {} labels",
            scores.len(),
            positive.len()
        )));
    }
    let pos = positive.iter().filter(|&&p| p).count();
    if pos == 0 {
        return Ok(None);
    }
    let w = (positive.len() - pos) as f64 / pos as f64;
    let (mut tp, mut psum, mut cpsum) = (0usize, 0.0f64, 0.0f64);
    for (k, &i) in ranking(scores)?.iter().enumerate() {
        if positive[i] {
            tp += 1;
            let fp = (k + 1 - tp) as f64;
            let (t, wt) = (tp as f64, w * tp as f64);
            psum += t / (t + fp);
            cpsum += wt / (wt + fp);
        }
    }
    Ok(Some((psum / pos as f64, cpsum / pos as f64)))
}

/// Per-class and mean results of [`frame_map`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameMap {
    /// Mean AP over the classes with a positive frame.
    pub map: f64,
    /// Mean calibrated AP over the same classes.
    pub cap: f64,
    /// AP per scored column (`None`: the background column, or no positive frame).
    pub ap: Vec<Option<f64>>,
    /// Calibrated AP per scored column.
    pub cal_ap: Vec<Option<f64>>,
}

/// `frame_level_map_n_cap` on row-major `probs` and 0/1 `labels`, both `[N, K]`, skipping
/// column `background`. Classes without a positive frame are left out of the means (the
/// official code returns NaN then).
pub fn frame_map(probs: &[f32], labels: &[bool], k: usize, background: usize) -> Result<FrameMap> {
    if k == 0 || probs.len() != labels.len() || probs.len() % k != 0 || probs.is_empty() {
        return Err(OadError::Eval(format!(
            "{} scores and {} labels: expected the same non-zero multiple of {k} classes",
            probs.len(),
            labels.len()
        )));
    }
    let n = probs.len() / k;
    let (mut ap, mut cal_ap) = (vec![None; k], vec![None; k]);
    for c in (0..k).filter(|&c| c != background) {
        let s: Vec<f32> = (0..n).map(|i| probs[i * k + c]).collect();
        let p: Vec<bool> = (0..n).map(|i| labels[i * k + c]).collect();
        if let Some((a, ca)) = ap_and_cap(&s, &p)? {
            ap[c] = Some(a);
            cal_ap[c] = Some(ca);
        }
    }
    let mean = |v: &[Option<f64>]| {
        let x: Vec<f64> = v.iter().flatten().copied().collect();
        if x.is_empty() {
            f64::NAN
        } else {
            x.iter().sum::<f64>() / x.len() as f64
        }
    };
    Ok(FrameMap {
        map: mean(&ap),
        cap: mean(&cal_ap),
        ap,
        cal_ap,
    })
}

/// Everything the protocol reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OadMetrics {
    /// The current frame (the headline mAP / mcAP).
    pub current: FrameMap,
    /// Each anticipation step `j` (frame `t + 1 + j`), when the model has a decoder.
    pub future: Vec<FrameMap>,
    /// Frames scored (ambiguous ones dropped).
    pub frames: usize,
}

impl OadMetrics {
    /// The mean over the anticipation steps of their mAP (`all decoder map` of `train.py`).
    pub fn future_map(&self) -> Option<f64> {
        (!self.future.is_empty())
            .then(|| self.future.iter().map(|f| f.map).sum::<f64>() / self.future.len() as f64)
    }
}

/// Collects a model's outputs window by window and evaluates them with the official protocol.
#[derive(Debug)]
pub struct Evaluator {
    scored: Vec<i64>,
    background: usize,
    ambiguous: Option<i64>,
    num_classes: i64,
    current: (Vec<f32>, Vec<bool>),
    future: Vec<(Vec<f32>, Vec<bool>)>,
}

impl Evaluator {
    /// An empty evaluator for `cfg`'s classes and anticipation steps.
    pub fn new(cfg: &OadConfig) -> Self {
        let scored = cfg.scored_classes();
        let background = scored
            .iter()
            .position(|&c| c == cfg.background_class)
            .unwrap_or(0);
        Evaluator {
            scored,
            background,
            ambiguous: cfg.ambiguous_class,
            num_classes: cfg.num_classes,
            current: (Vec::new(), Vec::new()),
            future: vec![(Vec::new(), Vec::new()); cfg.num_queries() as usize],
        }
    }

    /// The softmax over the scored classes of logits `[N, C]`, flattened, and the 0/1 labels of
    /// class indices `[N]` in the same columns (an ambiguous label is all zeros).
    fn scores_and_labels(&self, logits: &Tensor, labels: &Tensor) -> Result<(Vec<f32>, Vec<bool>)> {
        let keep = Tensor::from_slice(&self.scored).to_device(logits.device());
        let p = logits
            .index_select(1, &keep)
            .to_kind(Kind::Float)
            .softmax(1, Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous();
        let probs = Vec::<f32>::try_from(p.view([-1]))?;
        let labels = Vec::<i64>::try_from(
            labels
                .to_device(tch::Device::Cpu)
                .to_kind(Kind::Int64)
                .view([-1]),
        )?;
        let mut onehot = vec![false; probs.len()];
        let k = self.scored.len();
        for (i, &l) in labels.iter().enumerate() {
            if !(0..self.num_classes).contains(&l) {
                return Err(OadError::Labels(format!(
                    "label {l} of frame {i}: expected in 0..{}",
                    self.num_classes
                )));
            }
            if let Some(col) = self.scored.iter().position(|&c| c == l) {
                onehot[i * k + col] = true;
            }
        }
        Ok((probs, onehot))
    }

    /// Adds one batch: the forward's output, the current-frame labels `[B]` and the future
    /// labels `[B, Q]` (read only when the output has anticipation logits).
    pub fn push(&mut self, out: &OadOutput, current: &Tensor, future: &Tensor) -> Result<()> {
        let b = out.current.size()[0];
        if current.size() != [b] {
            return Err(shape_error(
                "Evaluator::push labels",
                format!("[{b}] class indices"),
                current,
            ));
        }
        let keep_rows: Vec<i64> =
            Vec::<i64>::try_from(current.to_device(tch::Device::Cpu).to_kind(Kind::Int64))?
                .iter()
                .enumerate()
                .filter(|(_, &l)| Some(l) != self.ambiguous)
                .map(|(i, _)| i as i64)
                .collect();
        if keep_rows.is_empty() {
            return Ok(());
        }
        let rows = Tensor::from_slice(&keep_rows).to_device(out.current.device());
        let (p, l) = self.scores_and_labels(
            &out.current.index_select(0, &rows),
            &current
                .to_device(out.current.device())
                .index_select(0, &rows),
        )?;
        self.current.0.extend(p);
        self.current.1.extend(l);
        if let Some(f) = &out.future {
            let q = f.size()[1];
            if future.size() != [b, q] {
                return Err(shape_error(
                    "Evaluator::push future labels",
                    format!("[{b}, {q}] class indices"),
                    future,
                ));
            }
            let future = future.to_device(f.device()).index_select(0, &rows);
            let f = f.index_select(0, &rows);
            for j in 0..q {
                let (p, l) = self.scores_and_labels(&f.select(1, j), &future.select(1, j))?;
                let slot = &mut self.future[j as usize];
                slot.0.extend(p);
                slot.1.extend(l);
            }
        }
        Ok(())
    }

    /// mAP / mcAP of the current frame and of each anticipation step.
    pub fn finish(&self) -> Result<OadMetrics> {
        let k = self.scored.len();
        if self.current.1.is_empty() {
            return Err(OadError::Eval(
                "no frame was pushed (or every frame was ambiguous)".into(),
            ));
        }
        let current = frame_map(&self.current.0, &self.current.1, k, self.background)?;
        let future = self
            .future
            .iter()
            .filter(|f| !f.1.is_empty())
            .map(|f| frame_map(&f.0, &f.1, k, self.background))
            .collect::<Result<Vec<_>>>()?;
        Ok(OadMetrics {
            current,
            future,
            frames: self.current.1.len() / k,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ap_by_hand() {
        // Ranked: P N P N -> AP = (1/1 + 2/3) / 2; w = 1: cAP equals AP.
        let (ap, cap) = ap_and_cap(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false])
            .unwrap()
            .unwrap();
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((cap - ap).abs() < 1e-12);
        // w = 3 (one positive, three negatives), positive ranked second: cAP = 3 / (3 + 1).
        let (ap, cap) = ap_and_cap(&[0.9, 0.8, 0.2, 0.1], &[false, true, false, false])
            .unwrap()
            .unwrap();
        assert!((ap - 0.5).abs() < 1e-12 && (cap - 0.75).abs() < 1e-12);
        assert!(ap_and_cap(&[0.1], &[false]).unwrap().is_none());
        assert!(ap_and_cap(&[f32::NAN], &[true]).is_err());
        assert!(ap_and_cap(&[0.1, 0.2], &[true]).is_err());
    }

    #[test]
    fn ties_rank_in_frame_order() {
        // The tied pair (frames 0 and 1) keeps frame order: N then P -> AP 1/2.
        let (ap, _) = ap_and_cap(&[0.5, 0.5], &[false, true]).unwrap().unwrap();
        assert!((ap - 0.5).abs() < 1e-12);
    }

    #[test]
    fn map_skips_the_background_and_empty_classes() {
        // 3 frames x 3 classes; class 2 has no positive.
        let probs = [0.8, 0.2, 0.0, 0.3, 0.7, 0.0, 0.5, 0.4, 0.1];
        let labels = [true, false, false, false, true, false, true, false, false];
        let m = frame_map(&probs, &labels, 3, 0).unwrap();
        assert_eq!(m.ap[0], None);
        assert_eq!(m.ap[2], None);
        assert_eq!(m.ap[1], Some(1.0));
        assert_eq!(m.map, 1.0);
        assert!(frame_map(&probs, &labels[..8], 3, 0).is_err());
    }

    #[test]
    fn evaluator_drops_ambiguous_frames_and_checks_labels() {
        let mut cfg = OadConfig::small(4, 4, 8);
        cfg.ambiguous_class = Some(3);
        cfg.decoder = None;
        let mut ev = Evaluator::new(&cfg);
        let logits = Tensor::from_slice(&[
            5.0f32, 0., 0., 9., 0., 5., 0., 9., 0., 0., 5., 9., 0., 5., 0., 0.,
        ])
        .view([4, 4]);
        let out = OadOutput {
            current: logits,
            future: None,
        };
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3]);
        ev.push(&out, &labels, &labels).unwrap();
        let m = ev.finish().unwrap();
        assert_eq!(m.frames, 3);
        assert_eq!(m.current.map, 1.0);
        assert!(m.future_map().is_none());
        let bad = Tensor::from_slice(&[0i64, 1, 2, 7]);
        assert!(ev
            .push(&out, &bad, &bad)
            .unwrap_err()
            .to_string()
            .contains("label 7"));
    }
}
