//! What the det-pyramid claims share: the detector variants (single-scale C5, FPN, TridentNet)
//! with the same RetinaNet head, training through train-kit's [`train_kit::Trainer`] on a
//! det-core [`DetLoader`], and COCO evaluation with det-core's helper (plain, image pyramid,
//! TridentNet-Fast).

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Result;
use det_core::data::{AugmentConfig, DetLoader, DetLoaderConfig, DetectionReport, DetectionSet};
use det_pyramid::anchors::AnchorConfig;
use det_pyramid::inference::{pyramid_detect, PyramidInferenceConfig};
use det_pyramid::trident::{TridentConfig, TridentNet};
use det_pyramid::{
    Depth, Detector, FpnConfig, ResNetConfig, ResNetFpn, RetinaNet, RetinaNetConfig, Targets,
    ValidRange,
};
use serde::Serialize;
use tch::{nn, Device};

use crate::claim::Ctx;

/// Which features the head sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Variant {
    /// One level on C5 (stride 32).
    C5,
    /// P3-P7 RetinaNet FPN.
    Fpn,
    /// TridentNet on `layer3` (three branches at stride 16).
    Trident,
}

impl Variant {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Variant::C5 => "C5 only",
            Variant::Fpn => "FPN",
            Variant::Trident => "Trident",
        }
    }
}

/// The model and training settings every variant shares (same head, same budget).
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// Trunk width (16: a reduced ResNet-18).
    pub width: i64,
    /// Head / neck channels.
    pub channels: i64,
    /// Convs per head subnet.
    pub head_convs: usize,
    /// Anchor base size of the finest level (2^(k/3) scales, ratios 0.5, 1, 2).
    pub anchor_base: f64,
    /// TridentNet branch ranges (sqrt(wh) in pixels), scaled to the data's object sizes.
    pub trident_ranges: Vec<(f64, f64)>,
    /// Optimiser steps (whole epochs: the fewest epochs reaching this many steps).
    pub steps: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// AdamW peak learning rate.
    pub lr: f64,
    /// Network input (square, pixels).
    pub size: u32,
    /// Training augmentation (flip + scale jitter) or none.
    pub augment: bool,
}

/// A trained detector with its variable store.
pub struct Trained {
    /// The variables (kept alive with the model).
    pub vs: nn::VarStore,
    /// The detector.
    pub model: RetinaNet,
    /// The TridentNet backbone's fast switch, when the variant has one.
    pub trident: Option<Rc<TridentNet>>,
    /// The training log.
    pub metrics: PathBuf,
    /// Seconds of training.
    pub seconds: f64,
}

struct SharedTrident(Rc<TridentNet>);

impl det_pyramid::Backbone for SharedTrident {
    fn features(&self, x: &tch::Tensor, train: bool) -> det_pyramid::Result<det_pyramid::Pyramid> {
        self.0.features(x, train)
    }
    fn out_channels(&self) -> i64 {
        self.0.out_channels()
    }
    fn num_levels(&self) -> usize {
        self.0.num_levels()
    }
}

/// Builds `variant` for `classes` classes.
pub fn build(variant: Variant, b: &Budget, classes: i64, device: Device) -> Result<Trained> {
    let vs = nn::VarStore::new(device);
    let trunk = ResNetConfig::small(Depth::R18, b.width);
    let c = trunk.channels();
    let base = b.anchor_base;
    let one_level = |n: usize| {
        let sizes = AnchorConfig::retinanet(&[base, 2.0 * base, 4.0 * base]).sizes;
        // A single level (or every branch) carries the sizes of three FPN levels, one scale
        // each, so the anchor count per location (9) is the FPN's.
        let s: Vec<f64> = sizes.iter().map(|v| v[0]).collect();
        AnchorConfig {
            sizes: vec![s; n],
            ratios: vec![vec![0.5, 1.0, 2.0]; n],
        }
    };
    let mut cfg = RetinaNetConfig {
        num_classes: classes,
        head_convs: b.head_convs,
        ..Default::default()
    };
    let mut trident = None;
    let backbone: Box<dyn det_pyramid::Backbone> = match variant {
        Variant::C5 => {
            cfg.anchors = one_level(1);
            Box::new(ResNetFpn::new(
                &(vs.root() / "backbone"),
                &trunk,
                &FpnConfig::c5_only(c, b.channels),
            )?)
        }
        Variant::Fpn => {
            cfg.anchors =
                AnchorConfig::retinanet(&[base, 2.0 * base, 4.0 * base, 8.0 * base, 16.0 * base]);
            Box::new(ResNetFpn::new(
                &(vs.root() / "backbone"),
                &trunk,
                &FpnConfig::retinanet(c, b.channels),
            )?)
        }
        Variant::Trident => {
            let mut tc = TridentConfig::new(trunk, b.channels);
            tc.ranges = b
                .trident_ranges
                .iter()
                .map(|&(lo, hi)| ValidRange::new(lo, hi))
                .collect::<det_pyramid::Result<_>>()?;
            cfg.anchors = one_level(3);
            cfg.level_ranges = tc.ranges.clone();
            let t = Rc::new(TridentNet::new(&(vs.root() / "backbone"), &tc)?);
            trident = Some(Rc::clone(&t));
            Box::new(SharedTrident(t))
        }
    };
    let model = RetinaNet::new(&vs.root(), backbone, &cfg)?;
    Ok(Trained {
        vs,
        model,
        trident,
        metrics: PathBuf::new(),
        seconds: 0.0,
    })
}

/// One detector trained with the shared budget and evaluated on a held-out set.
#[derive(Debug, Clone)]
pub struct Trial {
    /// COCO statistics and images/s on the test set.
    pub report: DetectionReport,
    /// Seconds of training.
    pub train_s: f64,
    /// The training log (`metrics.jsonl`).
    pub metrics: PathBuf,
}

/// What a detector's training run leaves: its log and how long it took.
pub struct Fitted {
    /// The training log (`metrics.jsonl`).
    pub metrics: PathBuf,
    /// Seconds of training.
    pub seconds: f64,
}

/// The one training set-up every detector of the detection claims shares, so their rows compare
/// like with like: a det-core loader at the budget's size (flip + scale jitter when
/// `b.augment`), whole epochs reaching `b.steps`, AdamW (weight decay 1e-4) with a 10 % warm-up
/// and a cosine to 5 % of `b.lr`, gradients clipped at 10, train-kit's [`train_kit::Trainer`].
/// `step` gives a batch's loss; the log goes to `ctx.out_dir/<dir>/metrics.jsonl`.
pub fn fit_detector(
    ctx: &Ctx,
    vs: &mut nn::VarStore,
    set: Arc<dyn DetectionSet>,
    b: &Budget,
    dir: &str,
    label: &str,
    step: impl FnMut(det_core::data::DetBatch, &train_kit::StepInfo) -> Result<train_kit::StepOutput>,
) -> Result<Fitted> {
    let augment = b.augment.then(|| AugmentConfig {
        scale: (0.75, 1.25),
        hsv: None,
        ..Default::default()
    });
    let lcfg = DetLoaderConfig {
        batch_size: b.batch_size,
        shuffle: true,
        drop_last: true,
        seed: ctx.seed,
        size: (b.size, b.size),
        augment,
        ..Default::default()
    };
    let loader = DetLoader::new(set, lcfg, ctx.device)?;
    let per_epoch = loader.batches_per_epoch().max(1);
    let epochs = b.steps.div_ceil(per_epoch).max(1);
    let total = per_epoch * epochs;
    let trainer_cfg = train_kit::TrainerConfig {
        epochs,
        schedule: train_kit::Schedule::WarmupCosine {
            base_lr: b.lr,
            min_lr: b.lr * 0.05,
            warmup_steps: (total / 10).max(1),
            total_steps: total,
        },
        clip_grad: Some(10.0),
        seeding: train_kit::Seeding::Caller,
        log_every: 5,
        eval_every: 0,
        ..Default::default()
    };
    let out = crate::experiments::fresh_dir(&ctx.out_dir.join(dir))?;
    let run = train_kit::RunOptions {
        dir: Some(out.clone()),
        progress: true,
        label: label.to_string(),
        stop_after: None,
    };
    let mut opt = train_kit::AdamW::with_single_group(
        vs,
        train_kit::AdamWConfig {
            lr: b.lr,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let report = train_kit::Trainer::new(&trainer_cfg, &run)?.fit(
        vs,
        &mut opt,
        &loader,
        step,
        train_kit::no_eval,
    )?;
    Ok(Fitted {
        metrics: out.join("metrics.jsonl"),
        seconds: report.seconds,
    })
}

/// Trains `t` on `set` with the budget ([`fit_detector`]).
pub fn fit(
    ctx: &Ctx,
    t: &mut Trained,
    set: Arc<dyn DetectionSet>,
    b: &Budget,
    dir: &str,
    label: &str,
) -> Result<()> {
    let model = &t.model;
    let step = |batch: det_core::data::DetBatch,
                _: &train_kit::StepInfo|
     -> Result<train_kit::StepOutput> {
        let out = model.forward_t(&batch.images, true)?;
        let l = model.loss(&out, &Targets::of(&batch))?;
        Ok(train_kit::StepOutput {
            loss: l.total,
            parts: vec![("cls".into(), l.cls), ("reg".into(), l.reg)],
        })
    };
    let f = fit_detector(ctx, &mut t.vs, set, b, dir, label, step)?;
    t.metrics = f.metrics;
    t.seconds = f.seconds;
    Ok(())
}

/// COCO evaluation of `det` on `set` at the budget's input size.
pub fn evaluate(
    det: &dyn Detector,
    set: Arc<dyn DetectionSet>,
    b: &Budget,
    device: Device,
) -> Result<DetectionReport> {
    let cfg = DetLoaderConfig::eval((b.size, b.size), b.batch_size);
    let (r, _) = det_core::data::evaluate_fn(set, &cfg, device, 1, |x| det.detect(x), None)?;
    Ok(r)
}

/// A detector run over an image pyramid.
pub struct PyramidDetector<'a> {
    /// The single-scale detector.
    pub inner: &'a dyn Detector,
    /// Scales, ranges, merge.
    pub cfg: PyramidInferenceConfig,
}

impl Detector for PyramidDetector<'_> {
    fn detect(
        &self,
        images: &tch::Tensor,
    ) -> det_pyramid::Result<Vec<det_core::data::ImageDetections>> {
        pyramid_detect(self.inner, images, &self.cfg)
    }
}
