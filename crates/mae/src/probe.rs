//! Linear probing (official `main_linprobe.py`): the encoder is frozen, its features go
//! through `BatchNorm1d(affine=False, eps=1e-6)` and a linear head (weights N(0, 0.01)),
//! trained with LARS (train-kit's [`Lars`]: momentum 0.9, trust 0.001, no weight decay), `lr = blr * batch / 256`,
//! warmup + cosine per iteration. Features are computed once (no augmentation): the official
//! run augments each epoch through the frozen encoder; at CPU scale the cached features make
//! the probe cost seconds instead of an encoder pass per epoch.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use train_kit::{Lars, LarsConfig, Optimizer, ParamGroup, Schedule};
use vit_core::VisionTransformer;

use crate::augment::normalize;
use crate::config::MaeConfig;
use crate::error::{finite, MaeError, Result};
use crate::finetune::classifier_config;
use crate::weights::load_encoder_into;
use train_kit::scaled_lr;

/// The probe recipe. `Default` is `FINETUNE.md`'s ViT-B linear probe: 90 epochs, 10 warmup,
/// batch 16384, blr 0.1, weight decay 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Training epochs of the head.
    pub epochs: usize,
    /// Linear warmup of the lr, in epochs.
    pub warmup_epochs: f64,
    /// Features per step.
    pub batch_size: usize,
    /// Base lr; the lr is `blr * batch_size / 256` unless `lr` is set.
    pub blr: f64,
    /// An absolute lr that overrides `blr`.
    pub lr: Option<f64>,
    /// The floor of the half-cycle cosine.
    pub min_lr: f64,
    /// LARS weight decay (0 in the official probe).
    pub weight_decay: f64,
    /// LARS momentum.
    pub momentum: f64,
    /// LARS trust coefficient.
    pub trust_coefficient: f64,
    /// Seed of the head's init and the shuffling.
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 90,
            warmup_epochs: 10.0,
            batch_size: 16384,
            blr: 0.1,
            lr: None,
            min_lr: 0.0,
            weight_decay: 0.0,
            momentum: 0.9,
            trust_coefficient: 0.001,
            seed: 0,
        }
    }
}

/// Features `[N, D]` of `images` (`[N, C, H, W]` in [0, 1], normalised here) from a ViT
/// without head: `norm(x)[:, 0]` with the class token (official `--cls_token`), or the mean of
/// the patch tokens followed by `fc_norm` with average pooling (`--global_pool`).
pub fn extract_features(
    vit: &VisionTransformer,
    images: &Tensor,
    mean: &[f64],
    std: &[f64],
    batch: i64,
    device: Device,
) -> Result<Tensor> {
    if vit.config().num_classes != 0 {
        return Err(MaeError::Config(format!(
            "feature extraction needs a ViT without head, got num_classes {}",
            vit.config().num_classes
        )));
    }
    let e = &vit.config();
    let size = images.size();
    if size.len() != 4 || size[1] != e.in_chans || !images.is_floating_point() {
        return Err(MaeError::input(
            "feature extraction images",
            format!(
                "[N, {}, H, W] floating point in [0, 1] (got {:?})",
                e.in_chans,
                images.kind()
            ),
            size,
        ));
    }
    let n = size[0];
    let mut out = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for start in (0..n).step_by(batch.max(1) as usize) {
            let len = batch.min(n - start);
            let x = normalize(&images.narrow(0, start, len).to_device(device), mean, std)?;
            out.push(vit.forward_t(&x, false)?);
        }
        Ok(())
    })?;
    Ok(Tensor::cat(&out, 0))
}

/// What a probe run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// Test accuracy after each epoch.
    pub test_accuracy: Vec<f64>,
    /// Test accuracy after the last epoch.
    pub final_accuracy: f64,
    /// The lr after scaling by the batch.
    pub base_lr: f64,
}

/// The probe head: `head.0` = BatchNorm1d(affine=False, eps 1e-6), `head.1` = Linear.
pub struct ProbeHead {
    bn: nn::BatchNorm,
    fc: nn::Linear,
    dim: i64,
}

impl ProbeHead {
    /// A head for `dim`-wide features and `classes` classes (Linear init N(0, 0.01), as the
    /// official probe's `trunc_normal_(std=0.01)`).
    pub fn new(vs: &nn::Path, dim: i64, classes: i64) -> Self {
        let bn_cfg = nn::BatchNormConfig {
            affine: false,
            eps: 1e-6,
            momentum: 0.1,
            ..Default::default()
        };
        let bn = nn::batch_norm1d(vs / "head" / 0, dim, bn_cfg);
        let fc_cfg = nn::LinearConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let fc = nn::linear(vs / "head" / 1, dim, classes, fc_cfg);
        Self { bn, fc, dim }
    }

    /// Logits `[N, classes]` of features `[N, D]` (float, on the head's device; N >= 2 in
    /// training, as BatchNorm needs).
    pub fn forward_t(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        let size = features.size();
        let device = self.fc.ws.device();
        let least = if train { 2 } else { 0 };
        let ok = size.len() == 2
            && size[0] >= least
            && size[1] == self.dim
            && features.is_floating_point()
            && features.device() == device;
        if !ok {
            return Err(MaeError::input(
                "probe head features",
                format!(
                    "float [N >= {least}, {}] on {device:?} (got {:?} on {:?})",
                    self.dim,
                    features.kind(),
                    features.device()
                ),
                size,
            ));
        }
        Ok(self.bn.forward_t(features, train).apply(&self.fc))
    }
}

fn accuracy(head: &ProbeHead, feats: &Tensor, labels: &Tensor) -> Result<f64> {
    tch::no_grad(|| {
        let pred = head.forward_t(feats, false)?.argmax(-1, false);
        Ok(pred
            .eq_tensor(labels)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]))
    })
}

/// Trains the probe head on cached features and reports the test accuracy per epoch.
pub fn linear_probe(
    train: (&Tensor, &Tensor),
    test: (&Tensor, &Tensor),
    classes: i64,
    cfg: &ProbeConfig,
) -> Result<ProbeReport> {
    let (x, y) = train;
    let size = x.size();
    let test_size = test.0.size();
    let int64 = |t: &Tensor| t.kind() == Kind::Int64;
    let ok = size.len() == 2
        && size[0] >= 1
        && x.is_floating_point()
        && y.size() == [size[0]]
        && int64(y)
        && test_size.len() == 2
        && test_size[1] == size[1]
        && test.0.is_floating_point()
        && test.1.size() == [test_size[0]]
        && int64(test.1)
        && y.device() == x.device()
        && classes >= 1;
    if !ok {
        return Err(MaeError::input(
            "probe features",
            format!(
                "float train [N >= 1, D] with int64 labels [N] on its device, float test \
                 [M, D] with int64 labels [M], classes >= 1 (got test {test_size:?}, labels \
                 {:?} {:?} and {:?} {:?}, {classes} classes)",
                y.size(),
                y.kind(),
                test.1.size(),
                test.1.kind()
            ),
            size,
        ));
    }
    if cfg.epochs == 0 || cfg.batch_size == 0 || !(cfg.blr.is_finite() && cfg.blr > 0.0) {
        return Err(MaeError::Config(format!(
            "probe epochs and batch_size >= 1 and blr > 0, got {cfg:?}"
        )));
    }
    let (n, d) = (size[0], size[1]);
    let device = x.device();
    tch::manual_seed(cfg.seed as i64);
    let vs = nn::VarStore::new(device);
    let head = ProbeHead::new(&vs.root(), d, classes);
    let batch = (cfg.batch_size as i64).min(n);
    let ipe = (n / batch).max(1) as usize;
    let base_lr = scaled_lr(cfg.blr, cfg.lr, batch as usize);
    let schedule = Schedule::WarmupCosine {
        base_lr,
        min_lr: cfg.min_lr,
        warmup_steps: (cfg.warmup_epochs * ipe as f64).round() as usize,
        total_steps: cfg.epochs * ipe,
    };
    // The official LARS (`util/lars.py`), train-kit's.
    let lars_cfg = LarsConfig {
        lr: 0.0,
        momentum: cfg.momentum,
        trust_coefficient: cfg.trust_coefficient,
        weight_decay: cfg.weight_decay,
    };
    let mut lars = Lars::new(&vs, ParamGroup::single(&vs, cfg.weight_decay), lars_cfg)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<i64> = (0..n).collect();
    let (tx, ty) = (test.0.to_device(device), test.1.to_device(device));
    let mut report = ProbeReport {
        test_accuracy: Vec::with_capacity(cfg.epochs),
        final_accuracy: 0.0,
        base_lr,
    };
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let perm = Tensor::from_slice(&order).to_device(device);
        for i in 0..ipe {
            let step = epoch * ipe + i;
            let idx = perm.narrow(0, i as i64 * batch, batch);
            let logits = head.forward_t(&x.index_select(0, &idx), true)?;
            let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
            finite(&loss, step as u64, "linear probe")?;
            loss.f_backward()?;
            lars.set_lr(schedule.lr_at(step));
            lars.step()?;
            lars.zero_grad();
        }
        report.test_accuracy.push(accuracy(&head, &tx, &ty)?);
    }
    report.final_accuracy = *report.test_accuracy.last().unwrap_or(&0.0);
    Ok(report)
}

/// Labelled images (`[N, C, H, W]` in [0, 1]) for [`probe_checkpoint`], with the
/// normalisation the encoder was trained with.
pub struct ProbeData<'a> {
    /// Training images `[N, C, H, W]` in [0, 1].
    pub train_images: &'a Tensor,
    /// Their int64 labels `[N]`.
    pub train_labels: &'a Tensor,
    /// Test images `[M, C, H, W]` in [0, 1].
    pub test_images: &'a Tensor,
    /// Their int64 labels `[M]`.
    pub test_labels: &'a Tensor,
    /// Number of classes.
    pub classes: i64,
    /// Per-channel normalisation mean.
    pub mean: &'a [f64],
    /// Per-channel normalisation std.
    pub std: &'a [f64],
}

/// Linear probe of the encoder in the checkpoint `path` (full MAE or encoder only): a headless
/// ViT of `cfg`'s encoder with average pooling + `fc_norm` (`global_pool`, official
/// `--global_pool`) or the class token after `norm` (`--cls_token`), its features once, then
/// [`linear_probe`].
pub fn probe_checkpoint(
    path: &std::path::Path,
    cfg: &MaeConfig,
    global_pool: bool,
    data: &ProbeData,
    probe: &ProbeConfig,
    device: Device,
) -> Result<ProbeReport> {
    let vs = nn::VarStore::new(device);
    let vit = VisionTransformer::new(&vs.root(), &classifier_config(cfg, 0, global_pool, 0.0))?;
    load_encoder_into(&vit, &vs, path)?;
    let f = extract_features(&vit, data.train_images, data.mean, data.std, 500, device)?;
    let tf = extract_features(&vit, data.test_images, data.mean, data.std, 500, device)?;
    linear_probe(
        (&f, data.train_labels),
        (&tf, data.test_labels),
        data.classes,
        probe,
    )
}
