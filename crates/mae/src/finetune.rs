//! End-to-end fine-tuning of a pre-trained MAE encoder (official `main_finetune.py`,
//! `engine_finetune.py`, `util/lr_decay.py`): layer-wise lr decay (BEiT, Bao et al. 2021),
//! drop path, timm's RandAugment, mixup / CutMix with label smoothing, random erasing, global
//! average pooling with `fc_norm`, AdamW, warmup + cosine per iteration, bf16 autocast on CUDA.

use datasets::Loader;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};
use train_kit::{
    scaled_lr, AdamW, AdamWConfig, EvalMetrics, GroupSpec, ParamGroup, RunOptions, Schedule,
    Seeding, StepInfo, Trainer, TrainerConfig,
};
use vit_core::{GlobalPool, PosEmbedKind, ViTConfig, VisionTransformer};

use crate::augment::{
    mixup_cutmix, normalize, random_erasing, random_resized_crop, soft_target_cross_entropy,
    CropConfig, MixupConfig, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::config::MaeConfig;
use crate::error::{MaeError, Result};
use crate::randaugment::{rand_augment, RandAugmentConfig};

/// timm `VisionTransformer.no_weight_decay()`: the names spared besides 1-D tensors.
pub const NO_WEIGHT_DECAY: [&str; 3] = ["pos_embed", "cls_token", "dist_token"];

/// `get_layer_id_for_vit`: 0 for `cls_token`, `pos_embed`, `patch_embed.*`; `i + 1` for
/// `blocks.i.*`; `num_layers` (= depth + 1) for everything else (norms, head).
pub fn layer_id_for_vit(name: &str, num_layers: usize) -> usize {
    if name == "cls_token" || name == "pos_embed" || name.starts_with("patch_embed") {
        return 0;
    }
    if let Some(rest) = name.strip_prefix("blocks.") {
        if let Some(i) = rest.split('.').next().and_then(|s| s.parse::<usize>().ok()) {
            return i + 1;
        }
    }
    num_layers
}

/// The group of one tensor under `param_groups_lrd`: lr scale `decay^(num_layers - layer_id)`,
/// no weight decay on 1-D tensors and [`NO_WEIGHT_DECAY`] names.
pub fn lrd_spec(
    name: &str,
    ndim: usize,
    weight_decay: f64,
    layer_decay: f64,
    depth: usize,
) -> GroupSpec {
    let num_layers = depth + 1;
    let id = layer_id_for_vit(name, num_layers);
    let scale = layer_decay.powi((num_layers - id) as i32);
    let no_decay = ndim == 1 || NO_WEIGHT_DECAY.contains(&name);
    GroupSpec::new(if no_decay { 0.0 } else { weight_decay }, scale)
}

/// `param_groups_lrd` over the trainable variables of a ViT of `depth` blocks.
pub fn param_groups_lrd(
    vs: &nn::VarStore,
    weight_decay: f64,
    layer_decay: f64,
    depth: usize,
) -> Vec<ParamGroup> {
    ParamGroup::by_rule(vs, |name, t| {
        lrd_spec(name, t.dim(), weight_decay, layer_decay, depth)
    })
}

/// The ViT classifier `main_finetune.py` builds from an MAE encoder: same trunk, learned
/// position embedding (loaded from the fixed one), global average pooling + `fc_norm`
/// (`global_pool = false` keeps the class token and `norm`), `drop_path`, a head.
pub fn classifier_config(
    mae: &MaeConfig,
    num_classes: i64,
    global_pool: bool,
    drop_path: f64,
) -> ViTConfig {
    ViTConfig {
        num_classes,
        pos_embed: PosEmbedKind::Learned,
        global_pool: if global_pool {
            GlobalPool::Avg
        } else {
            GlobalPool::Token
        },
        fc_norm: Some(global_pool),
        drop_path_rate: drop_path,
        ..mae.encoder.clone()
    }
}

/// timm `trunc_normal_(std)` with the default absolute cutoff of +-2: at these stds, plain
/// normal; the head bias is zero.
pub fn init_head(vs: &nn::VarStore, std: f64) {
    let _guard = tch::no_grad_guard();
    let vars = vs.variables();
    if let Some(w) = vars.get("head.weight") {
        let _ = w.shallow_clone().normal_(0.0, std).clamp_(-2.0, 2.0);
    }
    if let Some(b) = vars.get("head.bias") {
        let _ = b.shallow_clone().zero_();
    }
}

/// The fine-tuning recipe. `Default` is ViT-B (`FINETUNE.md`): 100 epochs, 5 warmup,
/// effective batch 1024, blr 5e-4, layer decay 0.65, weight decay 0.05, drop path 0.1 (set in
/// the model), RandAugment `rand-m9-mstd0.5-inc1`, mixup 0.8 / CutMix 1.0 / smoothing 0.1,
/// random erasing 0.25, crop (0.08, 1).
/// ViT-L: 50 epochs, blr 1e-3, layer decay 0.75, drop path 0.2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneConfig {
    /// Training epochs.
    pub epochs: usize,
    /// Linear warmup of the lr, in epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// Images per micro-batch; must equal the loader's batch size.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub accum_iter: usize,
    /// Base lr; the lr is `blr * batch_size * accum_iter / 256` unless `lr` is set.
    pub blr: f64,
    /// An absolute lr that overrides `blr`.
    pub lr: Option<f64>,
    /// The floor of the half-cycle cosine.
    pub min_lr: f64,
    /// AdamW weight decay (not on 1-D tensors, `pos_embed`, `cls_token`).
    pub weight_decay: f64,
    /// 1.0 = no layer decay (training from scratch).
    pub layer_decay: f64,
    /// Mixup / CutMix and label smoothing.
    pub mixup: MixupConfig,
    /// timm `RandomErasing` probability.
    pub reprob: f64,
    /// `RandomResizedCrop` + flip on the device.
    pub crop: CropConfig,
    /// timm's RandAugment on the [0, 1] crops, before normalisation; `None` = off.
    pub rand_augment: Option<RandAugmentConfig>,
    /// Per-channel normalisation mean after the crop.
    pub mean: Vec<f64>,
    /// Per-channel normalisation std after the crop.
    pub std: Vec<f64>,
    /// bf16 autocast (CUDA only).
    pub bf16: bool,
    /// Gradient-norm clipping.
    pub clip_grad: Option<f64>,
    /// Seed of the per-step generator seeding (exact resume).
    pub seed: u64,
    /// Evaluate every this many epochs (and after the last).
    pub eval_every: usize,
    /// Also checkpoint every this many optimiser steps (mid-epoch, for long epochs); 0 = epoch
    /// ends only.
    pub checkpoint_every: usize,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            warmup_epochs: 5.0,
            batch_size: 128,
            accum_iter: 8,
            blr: 5e-4,
            lr: None,
            min_lr: 1e-6,
            weight_decay: 0.05,
            layer_decay: 0.65,
            mixup: MixupConfig::default(),
            reprob: 0.25,
            crop: CropConfig {
                scale: (0.08, 1.0),
                ..CropConfig::default()
            },
            rand_augment: Some(RandAugmentConfig::default()),
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
            bf16: true,
            clip_grad: None,
            seed: 0,
            eval_every: 1,
            checkpoint_every: 0,
        }
    }
}

impl FinetuneConfig {
    /// Checks the recipe (crop, RandAugment, batch, accumulation, lr, decay, mixup ranges).
    pub fn validate(&self) -> Result<()> {
        self.crop.validate()?;
        if let Some(ra) = &self.rand_augment {
            ra.validate()?;
        }
        let ok = self.epochs > 0
            && self.batch_size > 0
            && self.accum_iter > 0
            && self.blr > 0.0
            && self.layer_decay > 0.0
            && self.layer_decay <= 1.0
            && (0.0..=1.0).contains(&self.reprob)
            && (0.0..1.0).contains(&self.mixup.label_smoothing)
            && self.mean.len() == self.std.len();
        if !ok {
            return Err(MaeError::Config(format!(
                "fine-tuning recipe out of range: epochs/batch/accum >= 1, blr > 0, \
                 0 < layer_decay <= 1, reprob in [0, 1], smoothing in [0, 1), as many means as \
                 stds; got {self:?}"
            )));
        }
        Ok(())
    }
}

/// What to evaluate on: tensors in memory (any device) or a loader (image folders).
pub enum EvalSet<'a> {
    /// Images and labels in memory.
    Tensors {
        /// `[N, C, H, W]` in [0, 1].
        images: &'a Tensor,
        /// int64 `[N]`.
        labels: &'a Tensor,
    },
    /// Batches of a loader.
    Loader(&'a Loader),
}

/// Top-1 accuracy of `vit` on `set` in batches (no augmentation; images larger than the model
/// are centre-cropped to its size, as `Resize + CenterCrop` does after the folder's resize).
pub fn evaluate(
    vit: &VisionTransformer,
    set: &EvalSet,
    mean: &[f64],
    std: &[f64],
    batch: i64,
    device: Device,
) -> Result<f64> {
    let (h, w) = vit.config().img_size;
    if batch < 1 {
        return Err(MaeError::Config(format!(
            "evaluation batch must be >= 1, got {batch}"
        )));
    }
    let (mut correct, mut total) = (0i64, 0i64);
    let mut score = |x: &Tensor, y: &Tensor| -> Result<()> {
        let size = x.size();
        let ok = size.len() == 4
            && x.is_floating_point()
            && y.size() == [size[0]]
            && y.kind() == Kind::Int64;
        if !ok {
            return Err(MaeError::input(
                "evaluation images",
                format!(
                    "float [N, C, H, W] with int64 labels [N] (got labels {:?} {:?})",
                    y.size(),
                    y.kind()
                ),
                size,
            ));
        }
        let x = x.to_device(device);
        let (xh, xw) = (size[2], size[3]);
        let x = if (xh, xw) != (h, w) && xh >= h && xw >= w {
            x.narrow(2, (xh - h) / 2, h).narrow(3, (xw - w) / 2, w)
        } else {
            x
        };
        let x = normalize(&x, mean, std)?;
        let logits = tch::no_grad(|| vit.forward_t(&x, false))?;
        let y = y.to_device(device);
        correct += logits
            .argmax(-1, false)
            .eq_tensor(&y)
            .sum(Kind::Int64)
            .int64_value(&[]);
        total += y.size()[0];
        Ok(())
    };
    match set {
        EvalSet::Tensors { images, labels } => {
            let n = images.size().first().copied().unwrap_or(0);
            if labels.size().first() != Some(&n) {
                return Err(MaeError::input(
                    "evaluation labels",
                    format!("[{n}], one per image"),
                    labels.size(),
                ));
            }
            for start in (0..n).step_by(batch.max(1) as usize) {
                let len = batch.min(n - start);
                score(&images.narrow(0, start, len), &labels.narrow(0, start, len))?;
            }
        }
        EvalSet::Loader(loader) => {
            for b in loader.epoch(0) {
                let b = b?;
                score(&b.images, &b.labels)?;
            }
        }
    }
    Ok(correct as f64 / total.max(1) as f64)
}

/// What a fine-tuning run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneReport {
    /// Mean loss per epoch run.
    pub epoch_loss: Vec<f64>,
    /// (epoch, top-1) after each evaluated epoch.
    pub accuracy: Vec<(usize, f64)>,
    /// The lr after scaling by the effective batch.
    pub base_lr: f64,
    /// Wall time of this call.
    pub seconds: f64,
    /// Micro-iteration a resumed run started at.
    #[serde(default)]
    pub resumed_at: Option<u64>,
    /// Whether `RunOptions::stop_after` ended the run early (a checkpoint holds its state).
    #[serde(default)]
    pub stopped_early: bool,
}

/// Fine-tunes `vit` (built in `vs`, weights already loaded) on `loader`, evaluating on `eval`,
/// on train-kit's [`Trainer`]. With `run.dir`, a checkpoint is written after each epoch (and
/// every `checkpoint_every` optimiser steps, and when `run.stop_after` stops the run) and an
/// existing one is resumed; with the per-step seeding, a resumed run gives the same weights as
/// an uninterrupted one.
pub fn finetune(
    vit: &VisionTransformer,
    vs: &mut nn::VarStore,
    loader: &Loader,
    eval: &EvalSet,
    cfg: &FinetuneConfig,
    run: &RunOptions,
) -> Result<FinetuneReport> {
    cfg.validate()?;
    let vcfg = vit.config();
    if loader.config().batch_size != cfg.batch_size || vcfg.num_classes < 2 {
        return Err(MaeError::Config(format!(
            "loader batch {} must equal FinetuneConfig.batch_size {}, and the model needs a head \
             (num_classes {})",
            loader.config().batch_size,
            cfg.batch_size,
            vcfg.num_classes
        )));
    }
    let ipe = loader.batches_per_epoch() as u64;
    let base_lr = scaled_lr(cfg.blr, cfg.lr, cfg.batch_size * cfg.accum_iter);
    let groups = param_groups_lrd(vs, cfg.weight_decay, cfg.layer_decay, vcfg.depth as usize);
    let opt_cfg = AdamWConfig {
        lr: base_lr,
        weight_decay: cfg.weight_decay,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(vs, groups, opt_cfg)?;
    let device = vs.device();
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
        log_every: 20,
        eval_every: cfg.eval_every,
        recipe: serde_json::to_value(cfg).unwrap_or_default(),
    };
    let step = |batch: datasets::Batch, info: &StepInfo| -> Result<Tensor> {
        let x = random_resized_crop(&batch.images.to_device(device), vcfg.img_size, &cfg.crop)?;
        let x = match &cfg.rand_augment {
            Some(ra) => rand_augment(&x, ra)?,
            None => x,
        };
        let x = normalize(&x, &cfg.mean, &cfg.std)?;
        let y = batch.labels.to_device(device);
        let (x, targets, _) = mixup_cutmix(&x, &y, vcfg.num_classes, &cfg.mixup)?;
        let x = random_erasing(&x, cfg.reprob)?;
        info.autocast(|| -> Result<Tensor> {
            soft_target_cross_entropy(&vit.forward_t(&x, true)?, &targets)
        })
    };
    let evaluate_epoch = |_epoch: u64| -> Result<EvalMetrics> {
        let acc = evaluate(vit, eval, &cfg.mean, &cfg.std, 500, device)?;
        Ok(vec![("test_accuracy".to_owned(), acc)])
    };
    let r = Trainer::new(&trainer_cfg, run)?
        .fit(vs, &mut opt, loader, step, evaluate_epoch)
        .map_err(|e| e.in_phase("fine-tuning"))?;
    Ok(FinetuneReport {
        epoch_loss: r.epoch_loss(),
        accuracy: r
            .eval_series("test_accuracy")
            .into_iter()
            .map(|(e, a)| (e as usize, a))
            .collect(),
        base_lr,
        seconds: r.seconds,
        resumed_at: r.resumed_at,
        stopped_early: r.stopped_early,
    })
}
