//! Learning-rate schedules, evaluated per optimiser step.
//!
//! [`Schedule::WarmupCosine`] is MAE's `util/lr_sched.adjust_learning_rate` (He et al.,
//! "Masked Autoencoders Are Scalable Vision Learners", 2022) applied per iteration: linear
//! warmup from 0, then a half-cycle cosine from `base_lr` down to `min_lr`.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule; `lr_at(step)` with `step` counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// `lr = base * t / w` for `t < w`, then
    /// `lr = min + (base - min) * 0.5 * (1 + cos(pi * (t - w) / (T - w)))`; `min_lr` from
    /// `t >= T` on (and right after warmup when `T <= w`).
    WarmupCosine {
        /// The lr at the end of warmup.
        base_lr: f64,
        /// The floor the cosine decays to.
        min_lr: f64,
        /// Steps of linear warmup from 0.
        warmup_steps: usize,
        /// Steps of the whole schedule (warmup included).
        total_steps: usize,
    },
    /// `lr = base * gamma^(t / step_size)` (integer division), torch's `StepLR`;
    /// `step_size == 0` keeps `base_lr`.
    Step {
        /// The lr of the first `step_size` steps.
        base_lr: f64,
        /// The factor applied every `step_size` steps.
        gamma: f64,
        /// Steps between decays.
        step_size: usize,
    },
    /// A fixed learning rate.
    Constant {
        /// The lr.
        lr: f64,
    },
}

/// The linear scaling rule `lr = blr * effective_batch / 256` (Goyal et al. 2017, as MAE's
/// `main_*.py`), unless an absolute `lr` is given.
pub fn scaled_lr(blr: f64, lr: Option<f64>, effective_batch: usize) -> f64 {
    lr.unwrap_or(blr * effective_batch as f64 / 256.0)
}

impl Schedule {
    /// [`Schedule::WarmupCosine`] in epochs, per micro-iteration as `engine_pretrain.py` /
    /// `engine_finetune.py` set it: `warmup_epochs` (fractional allowed) of linear warmup,
    /// then a half-cycle cosine to `min_lr` at the end of `epochs`.
    pub fn warmup_cosine_epochs(
        base_lr: f64,
        min_lr: f64,
        warmup_epochs: f64,
        epochs: usize,
        iters_per_epoch: u64,
    ) -> Schedule {
        Schedule::WarmupCosine {
            base_lr,
            min_lr,
            warmup_steps: (warmup_epochs * iters_per_epoch as f64).round() as usize,
            total_steps: epochs * iters_per_epoch as usize,
        }
    }

    /// The learning rate for optimiser step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        match *self {
            Schedule::WarmupCosine {
                base_lr,
                min_lr,
                warmup_steps,
                total_steps,
            } => {
                if step < warmup_steps {
                    return base_lr * step as f64 / warmup_steps as f64;
                }
                let progress = if total_steps > warmup_steps {
                    ((step - warmup_steps) as f64 / (total_steps - warmup_steps) as f64).min(1.0)
                } else {
                    1.0
                };
                min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Step {
                base_lr,
                gamma,
                step_size,
            } => match step.checked_div(step_size) {
                None => base_lr,
                Some(k) => base_lr * gamma.powi(k.min(i32::MAX as usize) as i32),
            },
            Schedule::Constant { lr } => lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }

    #[test]
    fn warmup_cosine_hand_values() {
        let s = Schedule::WarmupCosine {
            base_lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 10,
            total_steps: 110,
        };
        close(s.lr_at(0), 0.0);
        close(s.lr_at(1), 1e-4);
        close(s.lr_at(5), 5e-4);
        close(s.lr_at(10), 1e-3); // cos(0) = 1
                                  // t = 60: half way, cos(pi/2) = 0 -> min + (base - min) / 2 = 5.05e-4
        close(s.lr_at(60), 5.05e-4);
        // t = 35: cos(pi/4) = 0.70710678..., lr = 1e-5 + 9.9e-4 * 0.5 * 1.7071067811865475
        close(s.lr_at(35), 1e-5 + 9.9e-4 * 0.5 * 1.707_106_781_186_547_5);
        close(s.lr_at(110), 1e-5);
        close(s.lr_at(1000), 1e-5);
    }

    #[test]
    fn warmup_cosine_edge_cases() {
        let no_warmup = Schedule::WarmupCosine {
            base_lr: 2.0,
            min_lr: 0.0,
            warmup_steps: 0,
            total_steps: 4,
        };
        close(no_warmup.lr_at(0), 2.0);
        close(no_warmup.lr_at(2), 1.0);
        close(no_warmup.lr_at(4), 0.0);
        let degenerate = Schedule::WarmupCosine {
            base_lr: 2.0,
            min_lr: 0.5,
            warmup_steps: 4,
            total_steps: 4,
        };
        close(degenerate.lr_at(2), 1.0);
        close(degenerate.lr_at(4), 0.5);
    }

    #[test]
    fn step_and_constant() {
        let s = Schedule::Step {
            base_lr: 0.1,
            gamma: 0.5,
            step_size: 3,
        };
        close(s.lr_at(0), 0.1);
        close(s.lr_at(2), 0.1);
        close(s.lr_at(3), 0.05);
        close(s.lr_at(7), 0.025);
        close(
            Schedule::Step {
                base_lr: 0.1,
                gamma: 0.5,
                step_size: 0,
            }
            .lr_at(9),
            0.1,
        );
        close(Schedule::Constant { lr: 3e-4 }.lr_at(12345), 3e-4);
    }

    #[test]
    fn serde_round_trip() {
        let s = Schedule::WarmupCosine {
            base_lr: 1.5e-4,
            min_lr: 0.0,
            warmup_steps: 40,
            total_steps: 800,
        };
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"kind\":\"warmup_cosine\""), "{j}");
        assert_eq!(serde_json::from_str::<Schedule>(&j).unwrap(), s);
    }
}
