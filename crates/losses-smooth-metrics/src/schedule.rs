//! The temperature schedule and the training recipe Su Jianlin recommends for metric losses
//! (kexue.fm/archives/6620): cross-entropy does the early work, the smooth metric finishes (or
//! a weighted sum of the two), with the temperature annealed towards the hard metric. Both
//! are plain values that any `train_kit::Trainer` step closure reads from its
//! [`train_kit::StepInfo`].

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::check;
use crate::error::{Result, SmoothError};

/// A temperature as a function of training progress (iteration / total iterations).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TemperatureSchedule {
    /// The same temperature throughout.
    Constant {
        /// The temperature.
        tau: f64,
    },
    /// Geometric from `start` to `end`: `start (end / start)^progress`.
    Exponential {
        /// The first temperature.
        start: f64,
        /// The last temperature.
        end: f64,
    },
    /// Half a cosine from `start` to `end`.
    Cosine {
        /// The first temperature.
        start: f64,
        /// The last temperature.
        end: f64,
    },
}

impl Default for TemperatureSchedule {
    /// A constant 1: the plain softmax / sigmoid of the logits.
    fn default() -> Self {
        TemperatureSchedule::Constant { tau: 1.0 }
    }
}

impl TemperatureSchedule {
    /// Checks every temperature is finite and > 0.
    pub fn validate(&self) -> Result<()> {
        match *self {
            TemperatureSchedule::Constant { tau } => check::temperature("schedule tau", tau),
            TemperatureSchedule::Exponential { start, end }
            | TemperatureSchedule::Cosine { start, end } => {
                check::temperature("schedule start", start)?;
                check::temperature("schedule end", end)
            }
        }
    }

    /// The temperature at iteration `iter` of `total` (clamped to the end past it).
    pub fn at(&self, iter: u64, total: u64) -> Result<f64> {
        self.validate()?;
        let t = if total <= 1 {
            1.0
        } else {
            (iter as f64 / (total - 1) as f64).clamp(0.0, 1.0)
        };
        Ok(match *self {
            TemperatureSchedule::Constant { tau } => tau,
            TemperatureSchedule::Exponential { start, end } => start * (end / start).powf(t),
            TemperatureSchedule::Cosine { start, end } => {
                end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        })
    }
}

/// How cross-entropy and a metric loss share training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Recipe {
    /// Cross-entropy only (the baseline).
    CrossEntropy,
    /// Cross-entropy for the first `switch_epoch` epochs, the metric loss alone after (the
    /// source's advice: the metric loss for the late phase).
    Sequential {
        /// The first epoch of the metric loss.
        switch_epoch: u64,
    },
    /// `(1 - w) CE + w metric` from the first epoch, `w = weight`.
    Weighted {
        /// The metric loss's weight in [0, 1].
        weight: f64,
    },
    /// The metric loss only, from the start.
    MetricOnly,
}

/// The two weights of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossWeights {
    /// Weight of the cross-entropy.
    pub ce: f64,
    /// Weight of the metric loss.
    pub metric: f64,
}

impl Recipe {
    /// Checks the recipe (a weight in [0, 1]).
    pub fn validate(&self) -> Result<()> {
        if let Recipe::Weighted { weight } = *self {
            if !(0.0..=1.0).contains(&weight) {
                return Err(SmoothError::Config(format!(
                    "recipe weight {weight}: expected a value in [0, 1]"
                )));
            }
        }
        Ok(())
    }

    /// The weights in force during `epoch` (from 0).
    pub fn weights(&self, epoch: u64) -> LossWeights {
        let (ce, metric) = match *self {
            Recipe::CrossEntropy => (1.0, 0.0),
            Recipe::Sequential { switch_epoch } if epoch < switch_epoch => (1.0, 0.0),
            Recipe::Sequential { .. } | Recipe::MetricOnly => (0.0, 1.0),
            Recipe::Weighted { weight } => (1.0 - weight, weight),
        };
        LossWeights { ce, metric }
    }

    /// The step loss of `epoch`: the weighted sum of the terms, each computed only when its
    /// weight is not 0; the parts named `ce` and `metric` go into the Trainer's metrics lines.
    pub fn combine(
        &self,
        epoch: u64,
        ce: impl FnOnce() -> Result<Tensor>,
        metric: impl FnOnce() -> Result<Tensor>,
    ) -> Result<train_kit::StepOutput> {
        self.validate()?;
        let w = self.weights(epoch);
        let mut parts = Vec::new();
        let mut loss: Option<Tensor> = None;
        for (name, weight, term) in [
            (
                "ce",
                w.ce,
                Box::new(ce) as Box<dyn FnOnce() -> Result<Tensor>>,
            ),
            ("metric", w.metric, Box::new(metric)),
        ] {
            if weight == 0.0 {
                continue;
            }
            let t = term()?;
            let weighted = &t * weight;
            parts.push((name.to_owned(), t.detach()));
            loss = Some(match loss {
                Some(l) => l + weighted,
                None => weighted,
            });
        }
        match loss {
            Some(loss) => Ok(train_kit::StepOutput { loss, parts }),
            None => Err(SmoothError::Config(format!(
                "recipe {self:?} gives both losses weight 0 in epoch {epoch}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn schedules_start_and_end_where_they_say() {
        let e = TemperatureSchedule::Exponential {
            start: 1.0,
            end: 0.01,
        };
        assert!((e.at(0, 11).unwrap() - 1.0).abs() < 1e-12);
        assert!((e.at(5, 11).unwrap() - 0.1).abs() < 1e-12);
        assert!((e.at(10, 11).unwrap() - 0.01).abs() < 1e-12);
        assert!((e.at(99, 11).unwrap() - 0.01).abs() < 1e-12);
        let c = TemperatureSchedule::Cosine {
            start: 2.0,
            end: 0.5,
        };
        assert!((c.at(0, 3).unwrap() - 2.0).abs() < 1e-12);
        assert!((c.at(1, 3).unwrap() - 1.25).abs() < 1e-12);
        assert!(TemperatureSchedule::Constant { tau: 0.0 }.at(0, 1).is_err());
        assert!(TemperatureSchedule::Cosine {
            start: 1.0,
            end: -1.0
        }
        .validate()
        .is_err());
    }

    #[test]
    fn recipes_weigh_and_skip() {
        let one = || Ok(Tensor::ones([], (Kind::Float, Device::Cpu)));
        let two = || Ok(Tensor::ones([], (Kind::Float, Device::Cpu)) * 2.0);
        let fail = || Err(SmoothError::Config("not to be computed".into()));
        let seq = Recipe::Sequential { switch_epoch: 2 };
        let out = seq.combine(1, one, fail).unwrap();
        assert_eq!(out.loss.double_value(&[]), 1.0);
        assert_eq!(out.parts.len(), 1);
        let out = seq.combine(2, fail, two).unwrap();
        assert_eq!(out.loss.double_value(&[]), 2.0);
        let w = Recipe::Weighted { weight: 0.25 };
        let out = w.combine(0, one, two).unwrap();
        assert!((out.loss.double_value(&[]) - 1.25).abs() < 1e-6);
        assert_eq!(out.parts[1].0, "metric");
        assert!(Recipe::Weighted { weight: 1.5 }
            .combine(0, one, two)
            .is_err());
        assert_eq!(
            Recipe::CrossEntropy.weights(9),
            LossWeights {
                ce: 1.0,
                metric: 0.0
            }
        );
        let json = serde_json::to_string(&seq).unwrap();
        assert_eq!(serde_json::from_str::<Recipe>(&json).unwrap(), seq);
    }
}
