//! The MI benchmark of Poole et al. 2019 (Sec. 4, Fig. 2; vbmi notebook `train_estimator`):
//! a critic (and, for TUBA and the interpolated bound, a baseline) trained by Adam at
//! 5e-4 to maximise one bound on fresh correlated-Gaussian batches of 64, the true MI stepped
//! 2, 4, 6, 8, 10 nats every 4,000 steps; the estimate of each step is recorded.
//!
//! The loop draws a new batch from the distribution at every step: there is no data set and
//! no epoch, so it runs its own steps with train-kit's AdamW (weight decay 0, i.e. Adam)
//! rather than through `train_kit::Trainer`, whose unit is an epoch over a finite source.

use serde::{Deserialize, Serialize};
use tch::{nn, Device};
use train_kit::{AdamW, AdamWConfig};

use crate::critic::{Baseline, Critic, CriticConfig};
use crate::error::{NceError, Result};
use crate::gaussian::{mi_schedule, mi_to_rho, sample};
use crate::mi::{self, Estimator, Extras, MovingAverage};

/// The benchmark's settings. `Default` is the paper's (vbmi `data_params`, `critic_params`,
/// `opt_params`): d = 20, batch 64, MI 2..10 nats in steps of 2, 4,000 steps each, Adam 5e-4,
/// the concat critic with two hidden layers of 256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// Batch size `n` (InfoNCE's ceiling is `log n`).
    pub batch_size: i64,
    /// The true MI of each level, nats.
    pub levels: Vec<f64>,
    /// Steps spent at each level.
    pub steps_per_level: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// The critic (its `dim_x = dim_y` is the Gaussian's dimension).
    pub critic: CriticConfig,
}

impl Default for BenchmarkConfig {
    fn default() -> Self {
        BenchmarkConfig {
            batch_size: 64,
            levels: vec![2.0, 4.0, 6.0, 8.0, 10.0],
            steps_per_level: 4000,
            lr: 5e-4,
            critic: CriticConfig::default(),
        }
    }
}

/// One run: the true MI and the estimate at every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The estimator's name ([`Estimator::name`]).
    pub estimator: String,
    /// The true MI of each step.
    pub true_mi: Vec<f64>,
    /// The estimate of each step (the bound's value on that step's batch, before the update);
    /// NaN or infinite where the bound overflowed.
    pub estimates: Vec<f64>,
    /// Steps whose estimate was not finite: their update was not applied (an infinite
    /// partition term, `e^f` past float32's range, would turn the critic into NaN for good).
    pub skipped: usize,
}

/// Bias and variance of the estimates at one MI level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelStats {
    /// The true MI, nats.
    pub true_mi: f64,
    /// Mean estimate over the steps counted.
    pub mean: f64,
    /// `mean - true_mi`.
    pub bias: f64,
    /// Variance of the estimates over the steps counted.
    pub variance: f64,
    /// Steps counted (the level's last ones).
    pub steps: usize,
}

/// Runs the benchmark for `estimator` on `device` from `seed`; `on_step(step)` is called after
/// each step (progress). A non-finite critic output stops the run with an error naming it.
pub fn run(
    cfg: &BenchmarkConfig,
    estimator: Estimator,
    device: Device,
    seed: i64,
    on_step: &mut dyn FnMut(usize),
) -> Result<Trace> {
    if cfg.levels.is_empty() || cfg.steps_per_level == 0 || cfg.lr <= 0.0 {
        return Err(NceError::Config(format!(
            "benchmark needs MI levels, steps and a positive lr; got {} levels, {} steps, lr {}",
            cfg.levels.len(),
            cfg.steps_per_level,
            cfg.lr
        )));
    }
    if cfg.critic.dim_x != cfg.critic.dim_y {
        return Err(NceError::Config(format!(
            "the correlated Gaussian has dim_x = dim_y, got {} and {}",
            cfg.critic.dim_x, cfg.critic.dim_y
        )));
    }
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(device);
    let critic = Critic::new(&(vs.root() / "critic"), &cfg.critic)?;
    let baseline = estimator
        .needs_baseline()
        .then(|| Baseline::new(&(vs.root() / "baseline"), cfg.critic.dim_y));
    let mut opt = AdamW::with_single_group(
        &vs,
        AdamWConfig {
            lr: cfg.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let schedule = mi_schedule(&cfg.levels, cfg.steps_per_level);
    let dim = cfg.critic.dim_x;
    let mut average = MovingAverage::default();
    let mut estimates = Vec::with_capacity(schedule.len());
    let mut skipped = 0;
    for (step, &true_mi) in schedule.iter().enumerate() {
        let (x, y) = sample(dim, mi_to_rho(dim, true_mi), cfg.batch_size, device)?;
        let scores = critic.scores(&x, &y)?;
        let log_baseline = baseline.as_ref().map(|b| b.log_baseline(&y)).transpose()?;
        let est = mi::estimate(
            estimator,
            &scores,
            Extras {
                log_baseline: log_baseline.as_ref(),
                mine_average: Some(&mut average),
            },
        )?;
        let value = est.double_value(&[]);
        opt.zero_grad();
        if value.is_finite() {
            (-&est).backward();
            opt.step()?;
        } else {
            skipped += 1;
        }
        estimates.push(value);
        on_step(step);
    }
    Ok(Trace {
        estimator: estimator.name(),
        true_mi: schedule,
        estimates,
        skipped,
    })
}

impl Trace {
    /// Bias and variance per level over the finite estimates among the last `tail` fraction
    /// of its steps (the critic adapts after each jump of the MI; the paper reads its plot the
    /// same way). A level with no finite estimate has a NaN mean.
    pub fn levels(&self, steps_per_level: usize, tail: f64) -> Vec<LevelStats> {
        let keep = ((steps_per_level as f64 * tail).round() as usize).clamp(1, steps_per_level);
        self.estimates
            .chunks(steps_per_level)
            .zip(self.true_mi.chunks(steps_per_level))
            .map(|(est, truth)| {
                let tail: Vec<f64> = est[est.len().saturating_sub(keep)..]
                    .iter()
                    .copied()
                    .filter(|e| e.is_finite())
                    .collect();
                let n = tail.len() as f64;
                let mean = tail.iter().sum::<f64>() / n;
                let variance = tail.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n;
                LevelStats {
                    true_mi: truth[0],
                    mean,
                    bias: mean - truth[0],
                    variance,
                    steps: tail.len(),
                }
            })
            .collect()
    }

    /// The estimates smoothed by an exponential moving average of span `span` (pandas'
    /// `ewm(span).mean()` with `adjust=True`, as the paper's plot: span 200); non-finite
    /// estimates are skipped (pandas' `ignore_na=False` decays over them).
    pub fn ema(&self, span: f64) -> Vec<f64> {
        let decay = 1.0 - 2.0 / (span + 1.0);
        let (mut num, mut den) = (0.0, 0.0);
        self.estimates
            .iter()
            .map(|&e| {
                num *= decay;
                den *= decay;
                if e.is_finite() {
                    num += e;
                    den += 1.0;
                }
                if den > 0.0 {
                    num / den
                } else {
                    f64::NAN
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::critic::CriticKind;

    #[test]
    fn a_short_run_learns_and_infonce_stays_under_log_n() {
        // Small kernels: one thread is faster than two contending ones on a shared machine.
        tch::set_num_threads(1);
        let _g = test_support::rng_lock();
        let cfg = BenchmarkConfig {
            batch_size: 32,
            levels: vec![2.0, 4.0],
            steps_per_level: 150,
            lr: 5e-3,
            critic: CriticConfig {
                kind: CriticKind::Separable,
                hidden_dim: 64,
                embed_dim: 16,
                ..Default::default()
            },
        };
        let mut steps = 0;
        let t = run(&cfg, Estimator::InfoNce, Device::Cpu, 0, &mut |_| {
            steps += 1
        })
        .unwrap();
        assert_eq!(steps, 300);
        assert_eq!(t.estimates.len(), 300);
        assert!(t.estimates.iter().all(|&e| e <= 32f64.ln() + 1e-6));
        let lv = t.levels(150, 0.5);
        assert_eq!(lv.len(), 2);
        // It learns: the estimate starts near 0 and climbs over both levels.
        let start = t.estimates[..10].iter().sum::<f64>() / 10.0;
        assert!(lv[0].mean > start + 0.15, "{start} {lv:?}");
        assert!(lv[1].mean > lv[0].mean + 0.3, "{lv:?}");
        assert_eq!(lv[1].true_mi, 4.0);
        let ema = t.ema(200.0);
        assert_eq!(ema[0], t.estimates[0]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let cfg = BenchmarkConfig {
            levels: vec![],
            ..Default::default()
        };
        assert!(run(&cfg, Estimator::Nwj, Device::Cpu, 0, &mut |_| {}).is_err());
    }
}
