//! Soft accuracy, soft precision / recall / F1 and sigmoidF1, each beside the hard metric it
//! tends to on the same inputs.
//!
//! The soft counts replace the indicator `[predicted c]` by a probability: `softmax(z / tau)`
//! for single-label (multi-class) scores, `sigmoid(z / tau)` for binary and multi-label ones,
//! so that as `tau -> 0` they become the hard counts of `argmax` / of the threshold `z > 0`
//! (probability 0.5). Soft F1 = `2 tp / (2 tp + fp + fn)` (Su Jianlin, kexue.fm/archives/6620).
//!
//! Degenerate cases (documented values, never NaN): precision of a class never predicted,
//! recall of a class with no positive, and F1 of a class with neither are 0, as scikit-learn's
//! `zero_division=0`; macro averages run over all classes, such a class included. A soft
//! count of such a class gives 0 too, with a zero gradient.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::check;
use crate::error::{Result, SmoothError};

/// Denominators below this are treated as 0 (the ratio is then 0).
const TINY: f64 = 1e-12;

/// How per-class values are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// The mean of the per-class values (every class counts the same).
    Macro,
    /// The value of the summed counts (every sample counts the same).
    Micro,
}

/// Soft (or hard, as 0/1) true-positive, false-positive and false-negative counts per class,
/// `[C]` each (`C = 1` for a binary task).
#[derive(Debug)]
pub struct SoftCounts {
    /// `sum_n p_nc t_nc`.
    pub tp: Tensor,
    /// `sum_n p_nc (1 - t_nc)`.
    pub fp: Tensor,
    /// `sum_n (1 - p_nc) t_nc`.
    pub fn_: Tensor,
}

/// Hard counts per class, as numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// True positives per class.
    pub tp: Vec<f64>,
    /// False positives per class.
    pub fp: Vec<f64>,
    /// False negatives per class.
    pub fn_: Vec<f64>,
}

fn ratio(num: &Tensor, den: &Tensor) -> Tensor {
    num / den.clamp_min(TINY)
}

fn ratio_f(num: f64, den: f64) -> f64 {
    if den > TINY {
        num / den
    } else {
        0.0
    }
}

impl SoftCounts {
    fn from_probs(p: &Tensor, t: &Tensor) -> Self {
        let k = p.kind();
        SoftCounts {
            tp: (p * t).sum_dim_intlist([0i64].as_slice(), false, k),
            fp: (p * (-t + 1.0)).sum_dim_intlist([0i64].as_slice(), false, k),
            fn_: ((-p + 1.0) * t).sum_dim_intlist([0i64].as_slice(), false, k),
        }
    }

    fn reduce(&self, average: Average, f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor) -> Tensor {
        match average {
            Average::Macro => f(&self.tp, &self.fp, &self.fn_).mean(self.tp.kind()),
            Average::Micro => {
                let s = |t: &Tensor| t.sum(t.kind());
                f(&s(&self.tp), &s(&self.fp), &s(&self.fn_))
            }
        }
    }

    /// Soft precision `tp / (tp + fp)`.
    pub fn precision(&self, average: Average) -> Tensor {
        self.reduce(average, |tp, fp, _| ratio(tp, &(tp + fp)))
    }

    /// Soft recall `tp / (tp + fn)`.
    pub fn recall(&self, average: Average) -> Tensor {
        self.reduce(average, |tp, _, fn_| ratio(tp, &(tp + fn_)))
    }

    /// Soft F1 `2 tp / (2 tp + fp + fn)`.
    pub fn f1(&self, average: Average) -> Tensor {
        self.reduce(average, |tp, fp, fn_| {
            ratio(&(tp * 2.0), &(tp * 2.0 + fp + fn_))
        })
    }

    /// The soft-F1 loss, `1 - f1`.
    pub fn f1_loss(&self, average: Average) -> Tensor {
        1.0 - self.f1(average)
    }
}

impl Counts {
    fn from_probs(p: &Tensor, t: &Tensor) -> Result<Self> {
        let c = SoftCounts::from_probs(&p.to_kind(Kind::Double), &t.to_kind(Kind::Double));
        let v = |t: &Tensor| Vec::<f64>::try_from(t).map_err(SmoothError::from);
        Ok(Counts {
            tp: v(&c.tp)?,
            fp: v(&c.fp)?,
            fn_: v(&c.fn_)?,
        })
    }

    fn reduce(&self, average: Average, f: impl Fn(f64, f64, f64) -> f64) -> f64 {
        match average {
            Average::Macro => {
                let n = self.tp.len().max(1) as f64;
                (0..self.tp.len())
                    .map(|c| f(self.tp[c], self.fp[c], self.fn_[c]))
                    .sum::<f64>()
                    / n
            }
            Average::Micro => f(
                self.tp.iter().sum(),
                self.fp.iter().sum(),
                self.fn_.iter().sum(),
            ),
        }
    }

    /// Precision `tp / (tp + fp)` (0 for a class never predicted).
    pub fn precision(&self, average: Average) -> f64 {
        self.reduce(average, |tp, fp, _| ratio_f(tp, tp + fp))
    }

    /// Recall `tp / (tp + fn)` (0 for a class with no positive).
    pub fn recall(&self, average: Average) -> f64 {
        self.reduce(average, |tp, _, fn_| ratio_f(tp, tp + fn_))
    }

    /// F1 `2 tp / (2 tp + fp + fn)` (0 for a class with no positive and no prediction).
    pub fn f1(&self, average: Average) -> f64 {
        self.reduce(average, |tp, fp, fn_| {
            ratio_f(2.0 * tp, 2.0 * tp + fp + fn_)
        })
    }

    /// Per-class F1.
    pub fn f1_per_class(&self) -> Vec<f64> {
        (0..self.tp.len())
            .map(|c| {
                ratio_f(
                    2.0 * self.tp[c],
                    2.0 * self.tp[c] + self.fp[c] + self.fn_[c],
                )
            })
            .collect()
    }
}

fn multiclass_inputs(logits: &Tensor, labels: &Tensor) -> Result<i64> {
    check::scores("logits", logits)?;
    check::dims("logits", logits, 2, "[N, C] logits")?;
    let (n, c) = (logits.size()[0], logits.size()[1]);
    if labels.size() != [n] {
        return Err(SmoothError::Shape {
            what: "labels",
            expected: format!("[{n}] class indices, one per logit row"),
            got: labels.size(),
            kind: format!("{:?}", labels.kind()),
        });
    }
    check::class_labels("labels", labels, c, None)?;
    Ok(c)
}

fn binary_inputs(logits: &Tensor, targets: &Tensor, what: &'static str) -> Result<Tensor> {
    check::scores("logits", logits)?;
    check::same_shape(what, logits, targets)?;
    let t = check::binary_targets(what, targets, logits)?;
    // A binary task is one class: [N] -> [N, 1].
    Ok(if t.dim() == 1 { t.unsqueeze(1) } else { t })
}

fn as_2d(t: &Tensor) -> Tensor {
    if t.dim() == 1 {
        t.unsqueeze(1)
    } else {
        t.shallow_clone()
    }
}

/// Soft accuracy: the mean softmax(`logits / tau`) probability of the true class
/// (`logits [N, C]`, `labels [N]`). Tends to [`accuracy`] as `tau -> 0`.
pub fn soft_accuracy(logits: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    check::temperature("tau", tau)?;
    multiclass_inputs(logits, labels)?;
    let p = (logits / tau).softmax(-1, logits.kind());
    Ok(
        p.gather(1, &labels.to_kind(Kind::Int64).unsqueeze(1), false)
            .mean(logits.kind()),
    )
}

/// The soft-accuracy loss, `1 - soft_accuracy`.
pub fn soft_accuracy_loss(logits: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    Ok(1.0 - soft_accuracy(logits, labels, tau)?)
}

/// Accuracy: the fraction of rows whose argmax is the label.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    multiclass_inputs(logits, labels)?;
    Ok(logits
        .argmax(-1, false)
        .eq_tensor(&labels.to_kind(Kind::Int64))
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]))
}

/// Soft counts of a single-label task: `softmax(logits / tau)` against one-hot labels
/// (`logits [N, C]`, `labels [N]`).
pub fn soft_counts_multiclass(logits: &Tensor, labels: &Tensor, tau: f64) -> Result<SoftCounts> {
    check::temperature("tau", tau)?;
    let c = multiclass_inputs(logits, labels)?;
    let p = (logits / tau).softmax(-1, logits.kind());
    let t = labels
        .to_kind(Kind::Int64)
        .one_hot(c)
        .to_kind(logits.kind());
    Ok(SoftCounts::from_probs(&p, &t))
}

/// Hard counts of a single-label task: argmax against the labels.
pub fn counts_multiclass(logits: &Tensor, labels: &Tensor) -> Result<Counts> {
    let c = multiclass_inputs(logits, labels)?;
    let pred = logits.argmax(-1, false).one_hot(c);
    Counts::from_probs(&pred, &labels.to_kind(Kind::Int64).one_hot(c))
}

/// Soft counts of a binary (`[N]`) or multi-label (`[N, C]`) task: `sigmoid(logits / tau)`
/// against 0/1 targets of the same shape.
pub fn soft_counts_binary(logits: &Tensor, targets: &Tensor, tau: f64) -> Result<SoftCounts> {
    check::temperature("tau", tau)?;
    let t = binary_inputs(logits, targets, "targets")?;
    Ok(SoftCounts::from_probs(
        &as_2d(&(logits / tau).sigmoid()),
        &t,
    ))
}

/// Hard counts of a binary or multi-label task at the default threshold (`logit > 0`, i.e.
/// probability > 0.5).
pub fn counts_binary(logits: &Tensor, targets: &Tensor) -> Result<Counts> {
    let t = binary_inputs(logits, targets, "targets")?;
    Counts::from_probs(&as_2d(&logits.gt(0.0)), &t)
}

/// sigmoidF1's parameters (Benedict et al. 2021, arXiv 2108.10566): the score is
/// `sig = 1 / (1 + exp(S (z + E)))`, as the reference's `sigmoidF1` writes it
/// (`gabriben/metrics-as-losses`, `VLAP/sigmoidF1.py`): `S < 0` sets the slope, `E` shifts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigmoidF1 {
    /// The slope `S` (negative: larger logits give larger scores).
    pub s: f64,
    /// The offset `E`.
    pub e: f64,
}

impl Default for SigmoidF1 {
    /// `S = -1, E = 0`: the logistic sigmoid of the logit.
    fn default() -> Self {
        SigmoidF1 { s: -1.0, e: 0.0 }
    }
}

impl SigmoidF1 {
    /// The reference's hyper-parameters file (`VLAP/hyperparameters.py`): `S = -10, E = 1`.
    pub fn reference_hyperparameters() -> Self {
        SigmoidF1 { s: -10.0, e: 1.0 }
    }

    /// The sigmoidF1 loss of `logits [N, C]` (or `[N]`) against 0/1 `targets`: the mean over
    /// labels of `1 - 2 tp / (2 tp + fn + fp + 1e-16)` from the scores `sig`, computed as
    /// `sigmoid(-S (z + E))` (stable where the reference's `exp` overflows). It is the soft F1
    /// of [`soft_counts_binary`] at `tau = -1 / S` on logits shifted by `E`.
    pub fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if !(self.s.is_finite() && self.s != 0.0 && self.e.is_finite()) {
            return Err(SmoothError::Config(format!(
                "sigmoidF1: S {} and E {}: expected a finite S != 0 and a finite E",
                self.s, self.e
            )));
        }
        let t = binary_inputs(logits, targets, "targets")?;
        // `1 / (1 + exp(u))` = `sigmoid(-u)`: the same value, but the reference's form overflows
        // in float32 for u > 88 and its gradient becomes inf / inf = NaN.
        let sig = as_2d(&((logits + self.e) * (-self.s)).sigmoid());
        let c = SoftCounts::from_probs(&sig, &t);
        let f1: Tensor = &c.tp * 2.0 / (&c.tp * 2.0 + &c.fn_ + &c.fp + 1e-16);
        Ok((-f1 + 1.0).mean(logits.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fd_check, rand64};
    use tch::Device;

    fn labels(n: i64, c: i64, seed: i64) -> Tensor {
        let _g = test_support::rng_lock();
        tch::manual_seed(seed);
        Tensor::randint(c, [n], (Kind::Int64, Device::Cpu))
    }

    fn bits(shape: &[i64], seed: i64) -> Tensor {
        rand64(shape, seed).gt(0.3).to_kind(Kind::Double)
    }

    #[test]
    fn soft_metrics_tend_to_hard_ones() {
        let z = rand64(&[64, 5], 11) * 2.0;
        let y = labels(64, 5, 12);
        let acc = accuracy(&z, &y).unwrap();
        let soft = soft_accuracy(&z, &y, 1e-4).unwrap().double_value(&[]);
        assert!((soft - acc).abs() < 1e-6, "{soft} vs {acc}");
        let hard = counts_multiclass(&z, &y).unwrap();
        let soft = soft_counts_multiclass(&z, &y, 1e-4).unwrap();
        for avg in [Average::Macro, Average::Micro] {
            for (s, h) in [
                (soft.f1(avg), hard.f1(avg)),
                (soft.precision(avg), hard.precision(avg)),
                (soft.recall(avg), hard.recall(avg)),
            ] {
                assert!((s.double_value(&[]) - h).abs() < 1e-6);
            }
        }
        // Micro F1 of a single-label task is its accuracy.
        assert!((hard.f1(Average::Micro) - acc).abs() < 1e-12);
        // Multi-label and binary at the 0.5 threshold.
        let z = rand64(&[50, 4], 13) * 3.0;
        let t = bits(&[50, 4], 14);
        let hard = counts_binary(&z, &t).unwrap();
        let soft = soft_counts_binary(&z, &t, 1e-5).unwrap();
        let s = soft.f1(Average::Macro).double_value(&[]);
        assert!((s - hard.f1(Average::Macro)).abs() < 1e-6);
        let zb = z.select(1, 0);
        let tb = t.select(1, 0);
        let hb = counts_binary(&zb, &tb).unwrap();
        assert_eq!(hb.tp.len(), 1);
        assert!((hb.f1(Average::Macro) - hard.f1_per_class()[0]).abs() < 1e-12);
    }

    #[test]
    fn saturated_inputs_give_the_hard_metric_at_any_temperature() {
        // One-hot "probabilities" (huge logits) equal the hard counts at tau = 1.
        let y = labels(40, 3, 15);
        let z = y.one_hot(3).to_kind(Kind::Double) * 200.0;
        let s = soft_accuracy(&z, &y, 1.0).unwrap().double_value(&[]);
        assert!((s - 1.0).abs() < 1e-12);
        let f1 = soft_counts_multiclass(&z, &y, 1.0)
            .unwrap()
            .f1(Average::Macro);
        assert!((f1.double_value(&[]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn f1_of_an_empty_class_is_zero_not_nan() {
        // Class 2 has no positive and is never predicted.
        let y = Tensor::from_slice(&[0i64, 1, 0, 1]);
        let z = Tensor::from_slice(&[
            5.0f64, 0.0, -5.0, 0.0, 5.0, -9.0, 0.0, 5.0, -9.0, 0.0, 5.0, -9.0,
        ])
        .view([4, 3]);
        let hard = counts_multiclass(&z, &y).unwrap();
        assert_eq!(hard.f1_per_class()[2], 0.0);
        // Class 0: F1 2/3, class 1: 4/5, class 2 (empty): 0.
        assert!((hard.f1(Average::Macro) - (2.0 / 3.0 + 0.8) / 3.0).abs() < 1e-12);
        let t = Tensor::zeros([4, 2], (Kind::Double, Device::Cpu));
        let soft = soft_counts_binary(&(t.ones_like() * -50.0), &t, 1.0).unwrap();
        let v = soft.f1(Average::Macro).double_value(&[]);
        assert!(v.is_finite() && v == 0.0);
        let sig = SigmoidF1::default()
            .loss(&(t.ones_like() * -50.0), &t)
            .unwrap()
            .double_value(&[]);
        assert!((sig - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let z = rand64(&[12, 4], 16);
        let y = labels(12, 4, 17);
        let t = bits(&[12, 4], 18);
        fd_check("soft_accuracy", &z, |z| {
            soft_accuracy_loss(z, &y, 0.7).unwrap()
        });
        for avg in [Average::Macro, Average::Micro] {
            fd_check("soft_f1 multiclass", &z, |z| {
                soft_counts_multiclass(z, &y, 0.7).unwrap().f1_loss(avg)
            });
            fd_check("soft_f1 multilabel", &z, |z| {
                soft_counts_binary(z, &t, 0.7).unwrap().f1_loss(avg)
            });
            fd_check("soft precision", &z, |z| {
                soft_counts_binary(z, &t, 0.7).unwrap().precision(avg)
            });
            fd_check("soft recall", &z, |z| {
                soft_counts_multiclass(z, &y, 0.7).unwrap().recall(avg)
            });
        }
        fd_check("sigmoidF1", &z, |z| {
            SigmoidF1 { s: -2.0, e: 0.3 }.loss(z, &t).unwrap()
        });
    }

    #[test]
    fn sigmoid_f1_is_stable_for_large_logits() {
        let z = (Tensor::from_slice(&[-20.0f32, 20.0, -15.0, 30.0]) * 1.0).set_requires_grad(true);
        let t = Tensor::from_slice(&[0.0f32, 1.0, 1.0, 0.0]);
        let l = SigmoidF1::reference_hyperparameters().loss(&z, &t).unwrap();
        l.backward();
        assert!(z.grad().isfinite().all().int64_value(&[]) == 1);
        // sigmoidF1 (S, E) is the soft F1 at tau = -1 / S of z + E.
        let z = rand64(&[10, 3], 20);
        let t = bits(&[10, 3], 21);
        let a = SigmoidF1 { s: -4.0, e: 0.5 }
            .loss(&z, &t)
            .unwrap()
            .double_value(&[]);
        let b = soft_counts_binary(&(&z + 0.5), &t, 0.25)
            .unwrap()
            .f1_loss(Average::Macro);
        assert!((a - b.double_value(&[])).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let z = rand64(&[4, 3], 19);
        let out_of_range = Tensor::from_slice(&[0i64, 3, 1, 2]);
        assert!(matches!(
            accuracy(&z, &out_of_range),
            Err(SmoothError::Label { .. })
        ));
        let short = Tensor::from_slice(&[0i64, 1]);
        assert!(matches!(
            soft_accuracy(&z, &short, 1.0),
            Err(SmoothError::Shape { .. })
        ));
        assert!(matches!(
            soft_accuracy(&z, &Tensor::from_slice(&[0i64, 1, 1, 2]), 0.0),
            Err(SmoothError::Temperature { .. })
        ));
        let not_binary = z.ones_like() * 2.0;
        assert!(matches!(
            counts_binary(&z, &not_binary),
            Err(SmoothError::Label { .. })
        ));
        let empty = Tensor::zeros([0, 3], (Kind::Double, Device::Cpu));
        let none = Tensor::zeros([0], (Kind::Int64, Device::Cpu));
        assert!(matches!(
            soft_accuracy(&empty, &none, 1.0),
            Err(SmoothError::Empty { .. })
        ));
        assert!(matches!(
            SigmoidF1 { s: 0.0, e: 0.0 }.loss(&z, &z.ones_like()),
            Err(SmoothError::Config(_))
        ));
    }
}
