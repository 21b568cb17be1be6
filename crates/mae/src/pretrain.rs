//! MAE pre-training (official `main_pretrain.py` + `engine_pretrain.py`): AdamW (0.9, 0.95),
//! weight decay 0.05 on weights only, `lr = blr * effective_batch / 256`, linear warmup then
//! half-cycle cosine set per iteration, gradient accumulation, bf16 autocast on CUDA,
//! `RandomResizedCrop(0.2-1)` + flip, a NaN guard, atomic checkpoints with exact resume.

use std::time::Instant;

use datasets::Loader;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};
use train_kit::{
    no_eval, scaled_lr, AdamW, AdamWConfig, GroupSpec, ParamGroup, RunOptions, Schedule, Seeding,
    StepInfo, Trainer, TrainerConfig,
};

use crate::augment::{normalize, random_resized_crop, CropConfig, IMAGENET_MEAN, IMAGENET_STD};
use crate::config::MaeConfig;
use crate::error::{MaeError, Result};
use crate::model::MaskedAutoencoder;

/// The pre-training recipe. `Default` is the paper's (and `PRETRAIN.md`'s) ImageNet recipe:
/// 800 epochs, 40 warmup, effective batch 4096 (256 x 16 accumulation), blr 1.5e-4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Pre-training epochs.
    pub epochs: usize,
    /// Fractional epochs are allowed (short runs); the official value is an integer.
    pub warmup_epochs: f64,
    /// Images per micro-batch; must equal the loader's batch size.
    pub batch_size: usize,
    /// Micro-batches per optimiser step (`accum_iter`).
    pub accum_iter: usize,
    /// Base lr; the lr is `blr * batch_size * accum_iter / 256` unless `lr` is set.
    pub blr: f64,
    /// An absolute lr that overrides `blr`.
    pub lr: Option<f64>,
    /// The floor of the half-cycle cosine.
    pub min_lr: f64,
    /// AdamW weight decay (0.05 in the paper).
    pub weight_decay: f64,
    /// AdamW betas ((0.9, 0.95) in the paper).
    pub betas: (f64, f64),
    /// Decay `cls_token` / `mask_token` too. The official code does (timm `add_weight_decay`
    /// without a skip list only spares 1-D tensors and biases); `false` spares them (timm's
    /// `no_weight_decay` rule, which the issue asks for).
    pub decay_tokens: bool,
    /// `RandomResizedCrop` + flip on the device.
    pub crop: CropConfig,
    /// Per-channel normalisation after the crop (the loss sees normalised pixels too).
    pub mean: Vec<f64>,
    /// Per-channel normalisation std.
    pub std: Vec<f64>,
    /// bf16 autocast (CUDA only; the CPU stays float32).
    pub bf16: bool,
    /// Gradient-norm clipping (the official pre-training has none).
    pub clip_grad: Option<f64>,
    /// Seed of the per-step generator seeding (exact resume).
    pub seed: u64,
    /// Checkpoint every this many optimiser steps (and at each epoch end); 0 = epoch ends only.
    pub checkpoint_every: usize,
    /// Metrics line every this many micro-iterations.
    pub log_every: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            epochs: 800,
            warmup_epochs: 40.0,
            batch_size: 256,
            accum_iter: 16,
            blr: 1.5e-4,
            lr: None,
            min_lr: 0.0,
            weight_decay: 0.05,
            betas: (0.9, 0.95),
            decay_tokens: false,
            crop: CropConfig::default(),
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
            bf16: true,
            clip_grad: None,
            seed: 0,
            checkpoint_every: 0,
            log_every: 20,
        }
    }
}

impl PretrainConfig {
    /// Images per optimiser step, `batch_size * accum_iter`.
    pub fn effective_batch(&self) -> usize {
        self.batch_size * self.accum_iter
    }

    /// Checks the recipe (crop, batch, accumulation, lr, warmup, normalisation).
    pub fn validate(&self) -> Result<()> {
        self.crop.validate()?;
        let bad = |m: String| Err(MaeError::Config(m));
        if self.epochs == 0 || self.batch_size == 0 || self.accum_iter == 0 {
            return bad(format!(
                "epochs, batch_size and accum_iter must be >= 1, got {}, {}, {}",
                self.epochs, self.batch_size, self.accum_iter
            ));
        }
        let lr_ok = self.blr.is_finite()
            && self.blr > 0.0
            && self.lr.is_none_or(|l| l.is_finite() && l > 0.0);
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !lr_ok || !nonneg(self.min_lr) || !nonneg(self.warmup_epochs) {
            return bad(format!(
                "blr {} / lr {:?} must be positive, min_lr {} and warmup_epochs {} >= 0",
                self.blr, self.lr, self.min_lr, self.warmup_epochs
            ));
        }
        if self.mean.len() != self.std.len() {
            return bad(format!(
                "{} means for {} stds",
                self.mean.len(),
                self.std.len()
            ));
        }
        Ok(())
    }
}

/// What a pre-training run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PretrainReport {
    /// Mean loss per epoch run (a resumed epoch counts from its start).
    pub epoch_loss: Vec<f64>,
    /// Micro-iterations run in this call.
    pub iters: u64,
    /// Micro-iteration a resumed run started at.
    pub resumed_at: Option<u64>,
    /// Optimiser steps taken in this call.
    pub optimizer_steps: i64,
    /// The lr after scaling by the effective batch.
    pub base_lr: f64,
    /// Wall time of this call.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Whether `stop_after` ended the run early.
    pub stopped_early: bool,
}

/// The MAE weight-decay groups: none on 1-D tensors, biases and (unless `decay_tokens`) the
/// learned tokens; the fixed position embeddings are not trainable at all.
pub fn pretrain_param_groups(
    vs: &nn::VarStore,
    weight_decay: f64,
    decay_tokens: bool,
) -> Vec<ParamGroup> {
    ParamGroup::by_rule(vs, |name, t| {
        let spared =
            t.dim() <= 1 || name.ends_with("bias") || (!decay_tokens && name.contains("token"));
        GroupSpec::new(if spared { 0.0 } else { weight_decay }, 1.0)
    })
}

/// The crop + normalisation the model sees, drawn from torch's generator.
pub fn pretrain_view(images: &Tensor, size: (i64, i64), cfg: &PretrainConfig) -> Result<Tensor> {
    let x = random_resized_crop(images, size, &cfg.crop)?;
    normalize(&x, &cfg.mean, &cfg.std)
}

/// Pre-trains `model` (built in `vs`) on the images of `loader` (labels unused) as the
/// official recipe does, on train-kit's [`Trainer`]. With `run.dir`, checkpoints go there and
/// an existing one is resumed; with the per-step seeding, a resumed run gives the same weights
/// as an uninterrupted one.
pub fn pretrain(
    model: &MaskedAutoencoder,
    vs: &mut nn::VarStore,
    loader: &Loader,
    cfg: &PretrainConfig,
    run: &RunOptions,
) -> Result<PretrainReport> {
    cfg.validate()?;
    if loader.config().batch_size != cfg.batch_size {
        return Err(MaeError::Config(format!(
            "loader batch size {} differs from PretrainConfig.batch_size {}",
            loader.config().batch_size,
            cfg.batch_size
        )));
    }
    let ipe = loader.batches_per_epoch() as u64;
    if ipe == 0 {
        return Err(MaeError::Config("the loader yields no batch".into()));
    }
    let base_lr = scaled_lr(cfg.blr, cfg.lr, cfg.effective_batch());
    let groups = pretrain_param_groups(vs, cfg.weight_decay, cfg.decay_tokens);
    let opt_cfg = AdamWConfig {
        lr: base_lr,
        beta1: cfg.betas.0,
        beta2: cfg.betas.1,
        eps: 1e-8,
        weight_decay: cfg.weight_decay,
    };
    let mut opt = AdamW::new(vs, groups, opt_cfg)?;
    let trainer_cfg = TrainerConfig {
        epochs: cfg.epochs,
        schedule: Schedule::warmup_cosine_epochs(
            base_lr,
            cfg.min_lr,
            cfg.warmup_epochs,
            cfg.epochs,
            ipe,
        ),
        accum_iter: cfg.accum_iter,
        clip_grad: cfg.clip_grad,
        bf16: cfg.bf16,
        seeding: Seeding::PerStep(cfg.seed),
        checkpoint_every: cfg.checkpoint_every,
        log_every: cfg.log_every.max(1),
        eval_every: 0,
        recipe: serde_json::to_value(cfg).unwrap_or_default(),
    };
    let device = vs.device();
    let size = model.config().encoder.img_size;
    let step = |batch: datasets::Batch, info: &StepInfo| -> Result<Tensor> {
        let x = pretrain_view(&batch.images.to_device(device), size, cfg)?;
        let out = info.autocast(|| model.forward_t(&x, true))?;
        Ok(out.loss)
    };
    let r = Trainer::new(&trainer_cfg, run)?
        .fit(vs, &mut opt, loader, step, no_eval)
        .map_err(|e| e.in_phase("pre-training"))?;
    let epochs_run = r.epochs.iter().filter(|e| e.epoch >= r.first_epoch);
    Ok(PretrainReport {
        epoch_loss: epochs_run.map(|e| e.loss).collect(),
        iters: r.iters,
        resumed_at: r.resumed_at,
        optimizer_steps: r.optimizer_steps,
        base_lr,
        seconds: r.seconds,
        images_per_s: (r.iters * cfg.batch_size as u64) as f64 / r.seconds.max(1e-9),
        stopped_early: r.stopped_early,
    })
}

/// One pre-training step of a fresh `cfg` model on a fixed random batch at `cfg.mask_ratio`:
/// masking, forward, loss, backward, AdamW (0.9, 0.95) on flat buffers with weight decay 0.05
/// on weights only. What `mae.speedup`, the criterion benches and `mae_bench` time. bf16
/// autocast applies on CUDA only.
pub struct SyntheticStep {
    // Holds the variables `model` and `opt` refer to.
    _vs: nn::VarStore,
    model: MaskedAutoencoder,
    opt: AdamW,
    x: Tensor,
    bf16: bool,
}

impl SyntheticStep {
    /// A model of `cfg` on `device` and a fixed batch of `batch` random images.
    pub fn new(cfg: &MaeConfig, device: Device, batch: i64, bf16: bool) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let model = MaskedAutoencoder::new(&vs.root(), cfg)?;
        let groups = pretrain_param_groups(&vs, 0.05, false);
        let opt = AdamW::new(&vs, groups, AdamWConfig::mae_pretrain())?;
        let e = &cfg.encoder;
        let x = Tensor::randn(
            [batch, e.in_chans, e.img_size.0, e.img_size.1],
            (tch::Kind::Float, device),
        );
        Ok(Self {
            _vs: vs,
            model,
            opt,
            x,
            bf16: bf16 && device != Device::Cpu,
        })
    }

    /// Whether the step runs under bf16 autocast.
    pub fn bf16(&self) -> bool {
        self.bf16
    }

    /// Masking, encoder, decoder and loss.
    pub fn forward(&self) -> Result<crate::model::MaeOutput> {
        train_kit::autocast_bf16(self.bf16, || self.model.forward_t(&self.x, true))
    }

    /// Zeroes the gradients and back-propagates `out.loss`.
    pub fn backward(&mut self, out: &crate::model::MaeOutput) -> Result<()> {
        self.opt.zero_grad();
        Ok(out.loss.f_backward()?)
    }

    /// The AdamW update.
    pub fn optimizer_step(&mut self) -> Result<()> {
        Ok(self.opt.step()?)
    }

    /// The whole step.
    pub fn run(&mut self) -> Result<()> {
        let out = self.forward()?;
        self.backward(&out)?;
        self.optimizer_step()
    }
}

/// Median seconds of a [`SyntheticStep`] after two warm-up steps, the device synchronised
/// around each step.
pub fn time_train_step(
    cfg: &MaeConfig,
    device: Device,
    batch: i64,
    iters: usize,
    bf16: bool,
) -> Result<f64> {
    let mut step = SyntheticStep::new(cfg, device, batch, bf16)?;
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..2 {
        step.run()?;
    }
    sync();
    let mut times = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let t0 = Instant::now();
        step.run()?;
        sync();
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
