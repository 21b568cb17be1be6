//! The paper's training recipe pieces that train-kit does not have (Redmon et al. 2016,
//! Sec. 2.2): the learning rate raised slowly at first, then held and stepped down by 10x
//! ("from 1e-3 to 1e-2 ... 1e-2 for 75 epochs, 1e-3 for 30, 1e-4 for 30"), as an
//! [`Optimizer`] wrapper under the [`train_kit::Trainer`]; and loading a trained model back
//! from a train-kit checkpoint folder (the model's [`YoloConfig`] travels in the checkpoint's
//! recipe, [`Recipe`]).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};
use train_kit::{Checkpoint, Optimizer};

use crate::error::{Result, YoloError};
use crate::net::{Yolo, YoloConfig};

/// Warm-up then stepped learning rate, as factors of the base learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WarmupSteps {
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Factor at step 0 (the paper: 1e-3 / 1e-2 = 0.1).
    pub warmup_from: f64,
    /// Steps at which the rate is multiplied by `gamma` (the paper: after 75 and 105 of 135
    /// epochs).
    pub milestones: [usize; 2],
    /// The step factor (0.1).
    pub gamma: f64,
}

impl WarmupSteps {
    /// The paper's shape over `total` steps: 10 % warm-up from 0.1x, steps at 75/135 and
    /// 105/135 of the run.
    pub fn paper(total: usize) -> Self {
        Self {
            warmup_steps: (total / 10).max(1),
            warmup_from: 0.1,
            milestones: [total * 75 / 135, total * 105 / 135],
            gamma: 0.1,
        }
    }

    /// The factor at optimiser step `t`.
    pub fn factor(&self, t: usize) -> f64 {
        if t < self.warmup_steps {
            let a = t as f64 / self.warmup_steps as f64;
            return self.warmup_from + (1.0 - self.warmup_from) * a;
        }
        let passed = self.milestones.iter().filter(|&&m| t >= m).count();
        self.gamma.powi(passed as i32)
    }
}

/// An optimiser whose base learning rate (what the trainer's schedule sets, a constant) is
/// multiplied by a [`WarmupSteps`] factor of its own step count.
#[derive(Debug)]
pub struct Scheduled<O> {
    /// The wrapped optimiser (its state is what checkpoints hold).
    pub inner: O,
    /// The factors.
    pub schedule: WarmupSteps,
    base: f64,
}

impl<O: Optimizer> Scheduled<O> {
    /// Wraps `inner`, taking its current learning rate as the base.
    pub fn new(inner: O, schedule: WarmupSteps) -> Self {
        let base = inner.lr();
        let mut s = Self {
            inner,
            schedule,
            base,
        };
        s.set_lr(base);
        s
    }
}

impl<O: Optimizer> Optimizer for Scheduled<O> {
    fn step(&mut self) -> train_kit::Result<()> {
        self.inner.step()?;
        let base = self.base;
        self.set_lr(base);
        Ok(())
    }
    fn zero_grad(&mut self) {
        self.inner.zero_grad();
    }
    fn set_lr(&mut self, lr: f64) {
        self.base = lr;
        let t = self.inner.step_count().max(0) as usize;
        self.inner.set_lr(lr * self.schedule.factor(t));
    }
    fn lr(&self) -> f64 {
        self.inner.lr()
    }
    fn step_count(&self) -> i64 {
        self.inner.step_count()
    }
    fn params(&self) -> Vec<(String, Tensor)> {
        self.inner.params()
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.inner.state_tensors()
    }
    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> train_kit::Result<()> {
        self.inner.load_state_tensors(state)
    }
}

/// What a training run stores in its checkpoints' `config` (train-kit's
/// `TrainerConfig::recipe`), enough to rebuild the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// The network.
    pub model: YoloConfig,
    /// Class names, in index order.
    pub classes: Vec<String>,
    /// Free-form training settings.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// The SGD of the recipe (momentum 0.9, weight decay 5e-4, Sec. 2.2).
pub fn paper_sgd(vs: &nn::VarStore, lr: f64) -> Result<train_kit::Sgd> {
    Ok(train_kit::Sgd::with_single_group(
        vs,
        train_kit::SgdConfig {
            lr,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..Default::default()
        },
    )?)
}

/// A trained model loaded from the train-kit checkpoint folder `dir` (its `latest.json`).
pub fn load_trained(dir: &Path, device: Device) -> Result<(nn::VarStore, Yolo, Recipe)> {
    let no_ckpt = || YoloError::Io {
        path: dir.to_path_buf(),
        message: "no train-kit checkpoint (latest.json) in this folder".into(),
    };
    let meta = Checkpoint::read_meta(dir)?.ok_or_else(no_ckpt)?;
    let recipe: Recipe =
        serde_json::from_value(meta.config.clone()).map_err(|e| YoloError::Io {
            path: dir.join("latest.json"),
            message: format!("the checkpoint's recipe is not a yolo Recipe: {e}"),
        })?;
    let mut vs = nn::VarStore::new(device);
    let model = Yolo::new(&vs.root(), &recipe.model)?;
    let mut opt = paper_sgd(&vs, 0.0)?;
    Checkpoint::load_latest(dir, &mut vs, &mut opt)?.ok_or_else(no_ckpt)?;
    Ok((vs, model, recipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_two_steps() {
        let s = WarmupSteps::paper(135);
        assert_eq!(s.milestones, [75, 105]);
        assert!((s.factor(0) - 0.1).abs() < 1e-12);
        assert!(s.factor(6) > 0.1 && s.factor(6) < 1.0);
        assert_eq!(s.factor(13), 1.0);
        assert!((s.factor(75) - 0.1).abs() < 1e-12);
        assert!((s.factor(134) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn wrapper_sets_the_scheduled_rate_and_checkpoints_round_trip() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = YoloConfig::small(4, 64, 3);
        let _m = Yolo::new(&vs.root(), &cfg).unwrap();
        let mut opt = Scheduled::new(paper_sgd(&vs, 0.01).unwrap(), WarmupSteps::paper(100));
        assert!((opt.lr() - 0.001).abs() < 1e-12);
        opt.set_lr(0.01);
        assert!((opt.lr() - 0.001).abs() < 1e-12);
        let dir = tempfile::tempdir().unwrap();
        let recipe = Recipe {
            model: cfg,
            classes: vec!["a".into(), "b".into(), "c".into()],
            training: serde_json::Value::Null,
        };
        let meta = train_kit::CheckpointMeta {
            step: 0,
            epoch: 0,
            seed: 0,
            rng_state: serde_json::Value::Null,
            config: serde_json::to_value(&recipe).unwrap(),
            metrics: serde_json::Value::Null,
        };
        Checkpoint::save(dir.path(), &vs, &opt, &meta).unwrap();
        let (vs2, m2, r2) = load_trained(dir.path(), Device::Cpu).unwrap();
        assert_eq!(r2, recipe);
        assert_eq!(m2.config(), &cfg);
        let a = vs.variables();
        for (k, v) in vs2.variables() {
            assert!(v.equal(&a[&k]), "{k}");
        }
        let e = load_trained(tempfile::tempdir().unwrap().path(), Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("latest.json"), "{e}");
    }
}
