//! `pyramid.full`: detectron2's `retinanet_R_50_FPN_1x` recipe on COCO 2017 (36.5 box AP in
//! its model zoo), through train-kit's [`Trainer`] and scored by det-core's COCO evaluation on
//! val2017.
//!
//! The recipe (`configs/Base-RetinaNet.yaml`, `COCO-Detection/retinanet_R_50_FPN_1x.yaml`):
//! R50 from ImageNet weights with frozen BatchNorm and the stem + `res2` frozen
//! (`FREEZE_AT: 2`), P3-P7 FPN (P6 from C5), 256 channels, four-conv subnets, anchors
//! `x * 2^{0, 1/3, 2/3}` for x = 32 .. 512 (not rounded) with ratios 0.5, 1, 2, IoU 0.4 / 0.5,
//! focal loss 0.25 / 2, L1 box loss (`SMOOTH_L1_LOSS_BETA: 0.0`); SGD momentum 0.9, weight
//! decay 1e-4, lr 0.01 for 16 images a step, 90k steps, x0.1 at 60k and 80k after a linear
//! warm-up of 1000 steps from 0.001 x ([`Schedule::WarmupMultiStep`]); training images
//! resized to a shorter side drawn from 640 .. 800 (step 32, max side 1333) and flipped with
//! probability 0.5, batches grouped by orientation (landscape / portrait), images without a
//! non-crowd box left out and crowd boxes dropped, as detectron2's data path does; test
//! images at shorter side 800 (max 1333). Batches are padded bottom-right to a multiple of
//! 32 with the mean pixel (zero after normalisation).
//!
//! A card that holds fewer images a step runs [`Recipe::scaled_to`]: detectron2's linear
//! rule (`DefaultTrainer.auto_scale_workers`): lr times `n / 16`, steps, milestones and
//! warm-up times `16 / n`.
//!
//! Differences from detectron2: torchvision's ImageNet ResNet-50 (RGB, ImageNet mean / std)
//! instead of the MSRA caffe weights (BGR, mean subtraction only); the losses normalised by
//! the positives of the batch instead of detectron2's moving average of that count;
//! libtorch's antialiased bilinear resize instead of PIL's.
//!
//! `--full` with CUDA and the data under `--data-root` runs it; `--smoke` with a COCO-layout
//! folder under `--data-root` runs [`Recipe::tiny`] on it (the tests write one); otherwise the
//! claim reports what it needs and the command.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use det_core::coco::CocoDetection;
use det_core::data::{
    augment, CocoFolder, CocoFolderConfig, DetBatch, DetectionReport, DetectionSet, Sample,
};
use det_core::DetError;
use det_pyramid::anchors::AnchorConfig;
use det_pyramid::{
    BoxLoss, Depth, Detector, FpnConfig, LoadOptions, ResNetConfig, ResNetFpn, RetinaNet,
    RetinaNetConfig, Targets,
};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};
use train_kit::{DataSource, RunOptions, Schedule, Seeding, Sgd, SgdConfig, StepOutput, Trainer};

use crate::claim::{Ctx, Measured, Outcome};
use crate::report::{Mode, Verdict};

/// The ImageNet ResNet-50 weights the full run starts from, under `--data-root`.
pub(crate) const WEIGHTS_FILE: &str = "resnet50_imagenet.safetensors";

/// The command that runs the claim at paper scale.
pub(crate) const FULL_COMMAND: &str = "python crates/det-pyramid/tools/torchvision_resnet50.py \
     DIR/resnet50_imagenet.safetensors && cargo xtask reproduce pyramid.full --full --device \
     cuda --data-root DIR (DIR/train2017, DIR/val2017, \
     DIR/annotations/instances_{train,val}2017.json)";

/// The ImageNet mean the model subtracts: the padding value (zero once normalised).
const MEAN: [f64; 3] = [0.485, 0.456, 0.406];

/// The training recipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    /// Images per optimiser step (`SOLVER.IMS_PER_BATCH`).
    pub images_per_step: usize,
    /// Peak lr (`SOLVER.BASE_LR`).
    pub base_lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay on every trained tensor (detectron2 decays biases too; frozen BatchNorm
    /// has no trained tensor).
    pub weight_decay: f64,
    /// Optimiser steps (`SOLVER.MAX_ITER`).
    pub iterations: usize,
    /// Steps where the lr drops (`SOLVER.STEPS`).
    pub milestones: Vec<usize>,
    /// The drop factor (`SOLVER.GAMMA`).
    pub gamma: f64,
    /// Warm-up steps (`SOLVER.WARMUP_ITERS`).
    pub warmup_iters: usize,
    /// Warm-up factor at step 0 (`SOLVER.WARMUP_FACTOR`).
    pub warmup_factor: f64,
    /// Shorter sides drawn from per training image (`INPUT.MIN_SIZE_TRAIN`, "choice").
    pub train_short_sides: Vec<u32>,
    /// Longest side in training (`INPUT.MAX_SIZE_TRAIN`).
    pub train_max_side: u32,
    /// Shorter side at test time (`INPUT.MIN_SIZE_TEST`).
    pub test_short_side: u32,
    /// Longest side at test time (`INPUT.MAX_SIZE_TEST`).
    pub test_max_side: u32,
    /// Batches are padded to a multiple of this (`SIZE_DIVISIBILITY` of the FPN).
    pub size_divisibility: u32,
    /// Horizontal flip with probability 0.5.
    pub flip: bool,
    /// The trunk: detectron2's R50 (frozen BatchNorm, stem + `res2` frozen); the tiny recipe
    /// trains from scratch, so its BatchNorm after `res2` trains.
    pub trunk: ResNetConfig,
    /// FPN and head channels.
    pub channels: i64,
    /// Convs per head subnet.
    pub head_convs: usize,
    /// The run is cut into this many Trainer epochs (log, checkpoint and progress units).
    pub rounds: usize,
    /// Also checkpoint every this many steps (0: at round ends only).
    pub checkpoint_every: usize,
    /// Images per evaluation forward.
    pub eval_batch: usize,
    /// Test scores at or below are dropped (`SCORE_THRESH_TEST` 0.05; the tiny recipe keeps
    /// every candidate so its boxes go through decoding and the map back).
    pub score_thresh: f64,
    /// Start from torchvision's ImageNet weights (`--data-root`/[`WEIGHTS_FILE`]).
    pub pretrained: bool,
}

impl Recipe {
    /// detectron2's `retinanet_R_50_FPN_1x` on 16 images a step.
    pub fn detectron2_1x() -> Self {
        Recipe {
            images_per_step: 16,
            base_lr: 0.01,
            momentum: 0.9,
            weight_decay: 1e-4,
            iterations: 90_000,
            milestones: vec![60_000, 80_000],
            gamma: 0.1,
            warmup_iters: 1000,
            warmup_factor: 0.001,
            train_short_sides: (640..=800).step_by(32).collect(),
            train_max_side: 1333,
            test_short_side: 800,
            test_max_side: 1333,
            size_divisibility: 32,
            flip: true,
            trunk: ResNetConfig::detectron2(Depth::R50),
            channels: 256,
            head_convs: 4,
            rounds: 18,
            checkpoint_every: 1000,
            eval_batch: 4,
            score_thresh: 0.05,
            pretrained: true,
        }
    }

    /// The 1x recipe scaled to 2 images a step ([`Recipe::scaled_to`]), cut to 4 steps on
    /// small images with a reduced R50 (width 8) from scratch: the code path of the full run
    /// on a CPU (tests, `--smoke` with data).
    pub fn tiny() -> Result<Self> {
        Ok(Recipe {
            iterations: 4,
            milestones: vec![2, 3],
            warmup_iters: 1,
            train_short_sides: vec![48, 64],
            train_max_side: 80,
            test_short_side: 64,
            test_max_side: 80,
            trunk: ResNetConfig {
                frozen_stages: 2,
                ..ResNetConfig::small(Depth::R50, 8)
            },
            channels: 16,
            head_convs: 1,
            rounds: 2,
            checkpoint_every: 0,
            eval_batch: 2,
            score_thresh: 0.0,
            pretrained: false,
            ..Self::detectron2_1x().scaled_to(2)?
        })
    }

    /// The recipe on `images` a step by the linear scaling rule: lr times
    /// `images / images_per_step`, steps, milestones and warm-up divided by it (rounded).
    pub fn scaled_to(&self, images: usize) -> Result<Self> {
        ensure!(images >= 1, "images per step: expected at least 1, got 0");
        let s = images as f64 / self.images_per_step as f64;
        let steps = |n: usize| ((n as f64 / s).round() as usize).max(1);
        Ok(Recipe {
            images_per_step: images,
            base_lr: self.base_lr * s,
            iterations: steps(self.iterations),
            milestones: self.milestones.iter().map(|&m| steps(m)).collect(),
            warmup_iters: (self.warmup_iters as f64 / s).round() as usize,
            checkpoint_every: (self.checkpoint_every as f64 / s).round() as usize,
            ..self.clone()
        })
    }

    /// Steps per Trainer epoch (the last round may run past `iterations` by less than one
    /// round; with 90k and 18 rounds it is exact).
    pub fn iters_per_round(&self) -> usize {
        self.iterations.div_ceil(self.rounds.max(1)).max(1)
    }

    /// The lr schedule.
    pub fn schedule(&self) -> Result<Schedule> {
        Ok(Schedule::warmup_multi_step(
            self.base_lr,
            self.gamma,
            self.milestones.clone(),
            self.warmup_iters,
            self.warmup_factor,
        )?)
    }
}

/// detectron2's `ResizeShortestEdge.get_output_shape`: the `(width, height)` of a `w x h`
/// image resized to shorter side `short`, scaled down further when the longer side passes
/// `max`, each side rounded half up.
pub fn shortest_edge_size(w: u32, h: u32, short: u32, max: u32) -> (u32, u32) {
    let (wf, hf) = (w as f64, h as f64);
    let scale = short as f64 / wf.min(hf);
    let (mut nw, mut nh) = (wf * scale, hf * scale);
    let long = nw.max(nh);
    if long > max as f64 {
        let s = max as f64 / long;
        nw *= s;
        nh *= s;
    }
    ((nw + 0.5) as u32, (nh + 0.5) as u32)
}

/// detectron2's RetinaNet anchors: `x * 2^{0, 1/3, 2/3}` (unrounded) for x = 32 .. 512,
/// ratios 0.5, 1, 2.
pub fn detectron2_anchors() -> AnchorConfig {
    let sizes: Vec<Vec<f64>> = [32.0f64, 64.0, 128.0, 256.0, 512.0]
        .iter()
        .map(|&x| {
            [0.0, 1.0, 2.0]
                .map(|k: f64| x * 2f64.powf(k / 3.0))
                .to_vec()
        })
        .collect();
    AnchorConfig {
        ratios: vec![vec![0.5, 1.0, 2.0]; sizes.len()],
        sizes,
    }
}

/// The RetinaNet R50-FPN of the recipe with its variables; ImageNet weights loaded into the
/// trunk from `weights` when given (a missing trunk tensor is an error).
pub fn build(
    r: &Recipe,
    classes: i64,
    weights: Option<&Path>,
    device: Device,
) -> Result<(nn::VarStore, RetinaNet, String)> {
    let vs = nn::VarStore::new(device);
    let trunk = &r.trunk;
    let backbone = ResNetFpn::new(
        &(vs.root() / "backbone"),
        trunk,
        &FpnConfig::retinanet(trunk.channels(), r.channels),
    )?;
    let loaded = match weights {
        Some(path) => {
            let rep = backbone
                .trunk
                .load_safetensors(&vs, path, &LoadOptions::default())?;
            ensure!(
                rep.missing.is_empty(),
                "{}: the ImageNet ResNet-50 lacks trunk tensors: {rep}",
                path.display()
            );
            format!("{}: {rep}", path.display())
        }
        None => "none (trained from scratch)".to_string(),
    };
    let cfg = RetinaNetConfig {
        num_classes: classes,
        anchors: detectron2_anchors(),
        box_loss: BoxLoss::SmoothL1 { beta: 0.0 },
        head_convs: r.head_convs,
        score_thresh: r.score_thresh,
        ..Default::default()
    };
    let model = RetinaNet::new(&vs.root(), Box::new(backbone), &cfg)?;
    Ok((vs, model, loaded))
}

/// Image `i` of `set` resized to shorter side `short` (max `max`), mirrored when `flip`,
/// without its crowd boxes when `drop_crowd`.
fn prepare(
    set: &dyn DetectionSet,
    i: usize,
    (short, max): (u32, u32),
    flip: bool,
    drop_crowd: bool,
) -> Result<Sample, DetError> {
    let mut s = Sample::from_set(set, i, Device::Cpu)?;
    if drop_crowd {
        let (mut boxes, mut classes) = (Vec::new(), Vec::new());
        for ((b, c), crowd) in s.boxes.iter().zip(&s.classes).zip(&s.ignore) {
            if !crowd {
                boxes.push(*b);
                classes.push(*c);
            }
        }
        s.ignore = vec![false; boxes.len()];
        (s.boxes, s.classes) = (boxes, classes);
    }
    let (w, h) = s.size();
    let (nw, nh) = shortest_edge_size(w, h, short, max);
    let s = augment::resize(s, nw, nh)?;
    if flip {
        augment::hflip(s)
    } else {
        Ok(s)
    }
}

fn torch_err(what: &'static str) -> impl Fn(tch::TchError) -> DetError {
    move |e| DetError::Tensor {
        context: what.to_string(),
        message: e.to_string(),
    }
}

/// Pads `samples` bottom-right onto one canvas of the mean pixel, `div`-aligned, on `device`
/// (detectron2's `ImageList.from_tensors`); boxes keep their coordinates.
fn collate(samples: Vec<Sample>, div: u32, device: Device) -> Result<DetBatch, DetError> {
    let align = |v: u32| v.div_ceil(div.max(1)) * div.max(1);
    let h = align(samples.iter().map(|s| s.size().1).max().unwrap_or(1));
    let w = align(samples.iter().map(|s| s.size().0).max().unwrap_or(1));
    let (b, m) = (
        samples.len() as i64,
        samples.iter().map(|s| s.boxes.len()).max().unwrap_or(0) as i64,
    );
    let err = torch_err("padding a batch");
    let mean = Tensor::f_from_slice(&MEAN.map(|v| v as f32)).map_err(&err)?;
    let images = mean
        .f_view([1, 3, 1, 1])
        .and_then(|t| t.f_repeat([b, 1, h as i64, w as i64]))
        .map_err(&err)?;
    let mut boxes = vec![0f32; (b * m * 4) as usize];
    let mut classes = vec![-1i64; (b * m) as usize];
    for (i, s) in samples.iter().enumerate() {
        let (sw, sh) = s.size();
        images
            .get(i as i64)
            .f_narrow(1, 0, sh as i64)
            .and_then(|t| t.f_narrow(2, 0, sw as i64))
            .and_then(|mut t| t.f_copy_(&s.image))
            .map_err(&err)?;
        for (k, (bx, &c)) in s.boxes.iter().zip(&s.classes).enumerate() {
            let at = i * m as usize + k;
            for (j, v) in bx.iter().enumerate() {
                boxes[at * 4 + j] = *v as f32;
            }
            classes[at] = c;
        }
    }
    let counts: Vec<i64> = samples.iter().map(|s| s.boxes.len() as i64).collect();
    let dev = |t: Tensor| t.f_to_device(device).map_err(&err);
    Ok(DetBatch {
        images: dev(images)?,
        boxes: dev(Tensor::f_from_slice(&boxes)
            .and_then(|t| t.f_view([b, m, 4]))
            .map_err(&err)?)?,
        classes: dev(Tensor::f_from_slice(&classes)
            .and_then(|t| t.f_view([b, m]))
            .map_err(&err)?)?,
        ignore: dev(Tensor::f_zeros([b, m], (Kind::Bool, Device::Cpu)).map_err(&err)?)?,
        counts: dev(Tensor::f_from_slice(&counts).map_err(&err)?)?,
        image_ids: samples.iter().map(|s| s.image_id).collect(),
        indices: samples.iter().map(|s| s.index).collect(),
        maps: samples.iter().map(|s| s.map).collect(),
    })
}

/// The training stream: detectron2's infinite sampler over the images with a non-crowd box
/// (a fresh seeded permutation per pass), grouped into batches of one orientation; batch `g`
/// of the run is a pure function of `(seed, g)`, so a resumed run sees the same batches.
pub struct CocoTrain {
    set: Arc<dyn DetectionSet>,
    usable: Vec<usize>,
    landscape: Vec<bool>,
    recipe: Recipe,
    seed: u64,
    device: Device,
    per_pass: u64,
    pass: RefCell<Option<(u64, Vec<Vec<usize>>)>>,
}

impl CocoTrain {
    /// The stream over `set` for `recipe`.
    pub fn new(
        set: Arc<dyn DetectionSet>,
        recipe: &Recipe,
        seed: u64,
        device: Device,
    ) -> Result<Self> {
        let usable: Vec<usize> = (0..set.len())
            .filter(|&i| set.records()[i].crowd.iter().any(|&c| !c))
            .collect();
        let landscape: Vec<bool> = usable
            .iter()
            .map(|&i| set.records()[i].width >= set.records()[i].height)
            .collect();
        let b = recipe.images_per_step;
        ensure!(b >= 1, "images per step: expected at least 1, got 0");
        let wide = landscape.iter().filter(|&&l| l).count();
        let per_pass = (wide / b + (usable.len() - wide) / b) as u64;
        ensure!(
            per_pass > 0,
            "{}: {} images with a non-crowd box ({wide} landscape, {} portrait): expected at \
             least {b} of one orientation for a batch of {b}",
            set.name(),
            usable.len(),
            usable.len() - wide
        );
        ensure!(
            !recipe.train_short_sides.is_empty(),
            "train_short_sides: expected at least one size, got none"
        );
        Ok(CocoTrain {
            set,
            usable,
            landscape,
            recipe: recipe.clone(),
            seed,
            device,
            per_pass,
            pass: RefCell::new(None),
        })
    }

    /// Batches per pass over the usable images.
    pub fn batches_per_pass(&self) -> u64 {
        self.per_pass
    }

    fn rng(&self, a: u64, b: u64) -> rand_chacha::ChaCha8Rng {
        let key = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ a.rotate_left(21) ^ b;
        rand_chacha::ChaCha8Rng::seed_from_u64(key)
    }

    /// The set indices of run batch `g`.
    pub fn batch_indices(&self, g: u64) -> Vec<usize> {
        let (pass, k) = (g / self.per_pass, (g % self.per_pass) as usize);
        let mut cache = self.pass.borrow_mut();
        if cache.as_ref().map(|c| c.0) != Some(pass) {
            let mut rng = self.rng(pass, 0x5A17);
            let mut order: Vec<usize> = (0..self.usable.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.gen_range(0..=i));
            }
            let b = self.recipe.images_per_step;
            let (mut groups, mut buckets) = (Vec::new(), [Vec::new(), Vec::new()]);
            for j in order {
                let bucket = &mut buckets[usize::from(self.landscape[j])];
                bucket.push(self.usable[j]);
                if bucket.len() == b {
                    groups.push(std::mem::take(bucket));
                }
            }
            *cache = Some((pass, groups));
        }
        cache
            .as_ref()
            .and_then(|c| c.1.get(k).cloned())
            .unwrap_or_default()
    }

    /// Run batch `g`, transformed and padded.
    pub fn batch(&self, g: u64) -> Result<DetBatch, DetError> {
        let r = &self.recipe;
        let mut samples = Vec::new();
        for (slot, i) in self.batch_indices(g).into_iter().enumerate() {
            let mut rng = self.rng(g, 0xF11B ^ ((slot as u64) << 40));
            let short = r.train_short_sides[rng.gen_range(0..r.train_short_sides.len())];
            let flip = r.flip && rng.gen_bool(0.5);
            let s = prepare(self.set.as_ref(), i, (short, r.train_max_side), flip, true)?;
            samples.push(s);
        }
        collate(samples, r.size_divisibility, self.device)
    }
}

impl DataSource for CocoTrain {
    type Batch = DetBatch;
    type Error = DetError;

    fn batches_per_epoch(&self) -> u64 {
        self.recipe.iters_per_round() as u64
    }

    fn epoch_from(
        &self,
        epoch: u64,
        skip: u64,
    ) -> impl Iterator<Item = Result<DetBatch, DetError>> + '_ {
        let per = self.batches_per_epoch();
        (skip..per).map(move |k| self.batch(epoch * per + k))
    }
}

/// COCO statistics of `model` on `set` at the recipe's test size, in order, `eval_batch`
/// images a forward; boxes mapped back to the original images.
pub fn evaluate(
    model: &RetinaNet,
    set: Arc<dyn DetectionSet>,
    r: &Recipe,
    device: Device,
) -> Result<DetectionReport> {
    let cats = set.categories().to_vec();
    let mut dets = Vec::new();
    let (mut seconds, t_all) = (0.0, Instant::now());
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut bar = train_kit::Progress::new(true, "pyramid.full evaluation", set.len() as u64, 0);
    for chunk in indices.chunks(r.eval_batch.max(1)) {
        let samples = chunk
            .iter()
            .map(|&i| {
                prepare(
                    set.as_ref(),
                    i,
                    (r.test_short_side, r.test_max_side),
                    false,
                    false,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = collate(samples, r.size_divisibility, device)?;
        let t0 = Instant::now();
        let found = model.detect(&batch.images)?;
        seconds += t0.elapsed().as_secs_f64();
        for (b, d) in found.iter().enumerate() {
            for (bx, score, class) in d.to_vecs()? {
                let cat = usize::try_from(class)
                    .ok()
                    .and_then(|c| cats.get(c))
                    .with_context(|| format!("class {class} of {} categories", cats.len()))?;
                let o = batch.maps[b].inverse(bx);
                dets.push(CocoDetection {
                    image_id: batch.image_ids[b],
                    category_id: cat.id,
                    bbox: [o[0], o[1], o[2] - o[0], o[3] - o[1]],
                    score,
                });
            }
        }
        let done = (chunk[0] + chunk.len()) as u64;
        bar.update(done, || format!("{} detections", dets.len()));
    }
    bar.finish();
    let mut rep = DetectionReport::score(set.as_ref(), &dets)?;
    rep.forward_s = seconds;
    rep.timed_images = set.len();
    rep.images_per_s_forward = if seconds > 0.0 {
        set.len() as f64 / seconds
    } else {
        0.0
    };
    let all = t_all.elapsed().as_secs_f64();
    rep.images_per_s_with_decode = if all > 0.0 {
        set.len() as f64 / all
    } else {
        0.0
    };
    rep.device = format!("{device:?}");
    Ok(rep)
}

/// What a run left.
pub struct FullRun {
    /// COCO statistics on the validation set.
    pub report: DetectionReport,
    /// The training log.
    pub metrics: PathBuf,
    /// Seconds of training (this call).
    pub train_s: f64,
    /// Passes over the training images the steps make.
    pub epochs: f64,
    /// What the weight load did.
    pub weights: String,
}

/// Trains the recipe on `train` and scores it on `val`, checkpointing under `dir` (a run
/// finding a checkpoint there resumes).
pub fn train_and_evaluate(
    r: &Recipe,
    train: Arc<dyn DetectionSet>,
    val: Arc<dyn DetectionSet>,
    weights: Option<&Path>,
    dir: &Path,
    seed: u64,
    device: Device,
) -> Result<FullRun> {
    ensure!(
        train.categories() == val.categories(),
        "train and val categories differ ({} vs {})",
        train.categories().len(),
        val.categories().len()
    );
    tch::manual_seed(seed as i64);
    let classes = train.categories().len() as i64;
    let (mut vs, model, loaded) = build(r, classes, weights, device)?;
    let source = CocoTrain::new(train, r, seed, device)?;
    let epochs = (r.rounds * r.iters_per_round()) as f64 / source.batches_per_pass() as f64;
    let cfg = train_kit::TrainerConfig {
        epochs: r.rounds.max(1),
        schedule: r.schedule()?,
        clip_grad: None,
        seeding: Seeding::PerStep(seed),
        checkpoint_every: r.checkpoint_every,
        log_every: 20.min(r.iterations).max(1),
        eval_every: 0,
        recipe: json!({"claim": "pyramid.full", "recipe": r}),
        ..Default::default()
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let run = RunOptions {
        dir: Some(dir.to_path_buf()),
        progress: true,
        label: "pyramid.full RetinaNet R50-FPN".into(),
        stop_after: None,
    };
    let mut opt = Sgd::with_single_group(
        &vs,
        SgdConfig {
            lr: r.base_lr,
            momentum: r.momentum,
            weight_decay: r.weight_decay,
            ..Default::default()
        },
    )?;
    let step = |batch: DetBatch, _: &train_kit::StepInfo| -> Result<StepOutput> {
        let out = model.forward_t(&batch.images, true)?;
        let t = Targets {
            ignore: None,
            ..Targets::of(&batch)
        };
        let l = model.loss(&out, &t)?;
        Ok(StepOutput {
            loss: l.total,
            parts: vec![("cls".into(), l.cls), ("reg".into(), l.reg)],
        })
    };
    let rep =
        Trainer::new(&cfg, &run)?.fit(&mut vs, &mut opt, &source, step, train_kit::no_eval)?;
    let report = evaluate(&model, val, r, device)?;
    Ok(FullRun {
        report,
        metrics: dir.join("metrics.jsonl"),
        train_s: rep.seconds,
        epochs,
        weights: loaded,
    })
}

/// The COCO folders under `root`, when the layout is there.
fn coco_paths(root: Option<&Path>) -> Option<[(PathBuf, PathBuf); 2]> {
    let r = root?;
    let split = |s: &str| {
        (
            r.join(format!("{s}2017")),
            r.join(format!("annotations/instances_{s}2017.json")),
        )
    };
    let (train, val) = (split("train"), split("val"));
    [&train, &val]
        .iter()
        .all(|(d, j)| d.is_dir() && j.is_file())
        .then_some([train, val])
}

fn needs(ctx: &Ctx, have: bool, weights: bool) -> Outcome {
    let gpu = matches!(ctx.device, Device::Cuda(_));
    Outcome {
        value: f64::NAN,
        value_text: format!(
            "needs: COCO 2017 under --data-root, torchvision's ImageNet ResNet-50 as \
             DIR/{WEIGHTS_FILE} and a GPU (COCO found: {have}, weights found: {weights}, GPU: \
             {gpu}); run: {FULL_COMMAND}"
        ),
        measured: Measured::new(),
        skipped: Some(Verdict::NeedsData),
        plots: vec![],
        details: json!({"paper_box_ap": 36.5, "command": FULL_COMMAND,
                        "recipe": Recipe::detectron2_1x()}),
    }
}

/// The claim's experiment.
pub(crate) fn run(ctx: &Ctx, ap_name: &'static str, valid_name: &'static str) -> Result<Outcome> {
    let paths = coco_paths(ctx.data_root.as_deref());
    let weights = ctx.data_root.as_ref().map(|r| r.join(WEIGHTS_FILE));
    let have_weights = weights.as_ref().is_some_and(|w| w.is_file());
    let recipe = match (ctx.mode, ctx.device, &paths) {
        (Mode::Full, Device::Cuda(_), Some(_)) if have_weights => Recipe::detectron2_1x(),
        (Mode::Smoke, _, Some(_)) => Recipe::tiny()?,
        _ => return Ok(needs(ctx, paths.is_some(), have_weights)),
    };
    let Some([(train_dir, train_json), (val_dir, val_json)]) = paths else {
        bail!("the COCO folders went missing");
    };
    let open = |d: &Path, j: &Path| -> Result<Arc<dyn DetectionSet>> {
        let cfg = CocoFolderConfig {
            check_files: false,
            ..Default::default()
        };
        Ok(Arc::new(CocoFolder::open(d, j, &cfg)?))
    };
    let (train, val) = (open(&train_dir, &train_json)?, open(&val_dir, &val_json)?);
    let dir = ctx.out_dir.join("train");
    if recipe.pretrained {
        std::fs::create_dir_all(&dir)?;
    } else {
        crate::experiments::fresh_dir(&dir)?;
    }
    let w = weights.filter(|_| recipe.pretrained);
    let f = train_and_evaluate(
        &recipe,
        Arc::clone(&train),
        Arc::clone(&val),
        w.as_deref(),
        &dir,
        ctx.seed,
        ctx.device,
    )?;
    let rep = &f.report;
    let ap = 100.0 * rep.ap;
    let valid = [rep.ap, rep.ap50, rep.ap_small, rep.ap_medium, rep.ap_large]
        .iter()
        .all(|v| (-1.0..=1.0).contains(v))
        && (0.0..=100.0).contains(&ap);
    train_kit::training_curves_png(
        &[("RetinaNet R50-FPN", f.metrics.as_path())],
        &ctx.out_dir.join("training.png"),
        "pyramid.full: RetinaNet R50-FPN on COCO (loss and the warm-up multi-step lr)",
    )?;
    let tiny = ctx.mode == Mode::Smoke;
    Ok(Outcome {
        value: ap,
        value_text: format!(
            "{ap:.1} box AP (AP50 {:.1}, AP_s {:.1}, AP_m {:.1}, AP_l {:.1}) on {} val images \
             after {} steps of {} images{}",
            100.0 * rep.ap50,
            100.0 * rep.ap_small,
            100.0 * rep.ap_medium,
            100.0 * rep.ap_large,
            rep.images,
            recipe.rounds * recipe.iters_per_round(),
            recipe.images_per_step,
            if tiny {
                " (the tiny recipe: a code-path check, not the claim)"
            } else {
                "; detectron2 36.5"
            }
        ),
        measured: Measured::new().number(ap_name, ap).flag(valid_name, valid),
        skipped: None,
        plots: vec!["training.png".into()],
        details: json!({"report": rep, "recipe": recipe, "weights": f.weights,
                        "train_s": f.train_s, "train_images": train.len(),
                        "epochs": f.epochs,
                        "paper_box_ap": 36.5, "command": FULL_COMMAND}),
    })
}

#[cfg(test)]
mod tests;
