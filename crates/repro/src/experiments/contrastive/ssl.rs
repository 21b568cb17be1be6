//! SimCLR (Chen et al. 2020, arXiv 2002.05709) and MoCo (He et al. 2020, arXiv 1911.05722) on
//! MNIST, shared by `nce.simclr-mnist` and `nce.moco-queue`: one small CNN encoder with a
//! projection head, two augmented views per image, pre-training through `train_kit::Trainer`,
//! and a linear probe on the frozen encoder's features.
//!
//! - Encoder: three 3x3 conv + BatchNorm + ReLU blocks (16, 32, 64 channels; 2x2 max-pool
//!   after the first two), global average pool: the 64-d feature `h` that is probed. Head:
//!   linear 64 -> 64, ReLU, linear 64 -> 32: the `z` the loss sees (SimCLR Sec. 2.1: the
//!   representation before the head is the better one to probe).
//! - Views: `RandomResizedCrop` to 28x28 with scale (0.4, 1), ratio (3/4, 4/3), bilinear, no
//!   flip (digits are not mirror-symmetric), then a random brightness factor in [0.6, 1]:
//!   two independent draws per image (`mae::augment`, one `grid_sample` a batch).
//! - SimCLR: NT-Xent over the `2b` views (`contrastive_nce::losses::simclr_loss`), `2b - 2`
//!   negatives per anchor.
//! - MoCo: the key encoder is a copy of the query encoder under `key`, updated
//!   `theta_k <- m theta_k + (1 - m) theta_q` before each step's keys (Algorithm 1), never
//!   back-propagated; the keys come through shuffled BatchNorm on two sub-batches, the
//!   queries through the same two sub-batches unshuffled; InfoNCE of each query against its key
//!   and the `K` queued keys, then the batch's keys are enqueued. The key encoder and the queue
//!   are variables of the model's store, so a checkpoint resumes them exactly.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use contrastive_nce::losses::{normalize, simclr_loss};
use contrastive_nce::moco::{
    moco_loss, shuffled_split_forward, split_forward, MomentumPairs, Queue,
};
use contrastive_nce::NceError;
use mae::augment::{random_resized_crop, CropConfig};
use train_kit::{AdamW, AdamWConfig, RunOptions, Schedule, Seeding, Trainer, TrainerConfig};

use super::{linear_probe, Shuffled};
use crate::claim::Ctx;

/// Width of the probed feature `h` and of the projection `z`.
const FEATURE_DIM: i64 = 64;
const PROJ_DIM: i64 = 32;

/// The pre-training method of one arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) enum Method {
    /// SimCLR: the other views of the batch are the negatives.
    SimClr,
    /// MoCo: a queue of `queue` keys from a momentum encoder are the negatives.
    Moco {
        /// Queue length `K`.
        queue: i64,
        /// Momentum `m` of the key encoder.
        momentum: f64,
    },
}

/// One pre-training run.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Arm {
    pub label: String,
    pub method: Method,
    pub batch: i64,
    pub temperature: f64,
    pub epochs: usize,
    pub lr: f64,
}

impl Arm {
    /// Negatives each anchor is contrasted with.
    pub fn negatives(&self) -> i64 {
        match self.method {
            Method::SimClr => 2 * self.batch - 2,
            Method::Moco { queue, .. } => queue,
        }
    }
}

/// What an arm gave.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ArmResult {
    pub label: String,
    pub negatives: i64,
    pub probe_accuracy: f64,
    pub epoch_loss: Vec<f64>,
    pub seconds: f64,
}

/// The images the claims use, on the claim's device: pre-training (and probe training)
/// images with their labels, and the test split.
pub(super) struct Images {
    pub train_x: Tensor,
    pub train_y: Tensor,
    pub test_x: Tensor,
    pub test_y: Tensor,
}

impl Images {
    /// The first `train` training and `test` test images of MNIST.
    pub fn mnist(ctx: &Ctx, train: usize, test: usize) -> Result<Self> {
        let data = datasets::mnist::load("mnist", ctx.data_root.as_deref())
            .context("loading MNIST")?
            .subset_train(train)?
            .subset_test(test)?
            .f_to_device(ctx.device)?;
        Ok(Images {
            train_x: data.train_images,
            train_y: data.train_labels.to_device(Device::Cpu),
            test_x: data.test_images,
            test_y: data.test_labels.to_device(Device::Cpu),
        })
    }
}

/// The encoder `h` and the projection head `z = g(h)`.
pub(super) struct Encoder {
    trunk: nn::SequentialT,
    head: nn::Sequential,
}

fn block(p: &nn::Path, c_in: i64, c_out: i64, pool: bool) -> nn::SequentialT {
    let conv = nn::ConvConfig {
        padding: 1,
        bias: false,
        ..Default::default()
    };
    let s = nn::seq_t()
        .add(nn::conv2d(p / "conv", c_in, c_out, 3, conv))
        .add(nn::batch_norm2d(p / "bn", c_out, Default::default()))
        .add_fn(|x| x.relu());
    if pool {
        s.add_fn(|x| x.max_pool2d_default(2))
    } else {
        s
    }
}

impl Encoder {
    pub fn new(p: &nn::Path) -> Self {
        let trunk = nn::seq_t()
            .add(block(&(p / "b1"), 1, 16, true))
            .add(block(&(p / "b2"), 16, 32, true))
            .add(block(&(p / "b3"), 32, FEATURE_DIM, false))
            .add_fn(|x| x.mean_dim([2i64, 3].as_slice(), false, Kind::Float));
        let head = nn::seq()
            .add(nn::linear(
                p / "fc1",
                FEATURE_DIM,
                FEATURE_DIM,
                Default::default(),
            ))
            .add_fn(|x| x.relu())
            .add(nn::linear(
                p / "fc2",
                FEATURE_DIM,
                PROJ_DIM,
                Default::default(),
            ));
        Encoder { trunk, head }
    }

    /// `h [n, 64]`.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.trunk.forward_t(x, train)
    }

    /// `z [n, 32]`.
    pub fn project(&self, x: &Tensor, train: bool) -> Tensor {
        nn::Module::forward(&self.head, &self.features(x, train))
    }

    /// `h` of `x` in eval mode, in chunks, on the CPU.
    fn frozen_features(&self, x: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let parts: Vec<Tensor> = x
            .split(1024, 0)
            .iter()
            .map(|c| self.features(c, false).to_device(Device::Cpu))
            .collect();
        Tensor::cat(&parts, 0)
    }
}

/// One augmented view of each image of `x [n, 1, 28, 28]`.
pub(super) fn view(x: &Tensor) -> mae::Result<Tensor> {
    let crop = CropConfig {
        scale: (0.4, 1.0),
        ratio: (3.0 / 4.0, 4.0 / 3.0),
        hflip: false,
        bicubic: false,
    };
    let y = random_resized_crop(x, (28, 28), &crop)?;
    let n = x.size()[0];
    let bright = Tensor::rand([n, 1, 1, 1], (Kind::Float, x.device())) * 0.4 + 0.6;
    Ok(y * bright)
}

/// The linear-probe accuracy of a never-trained encoder from `seed`: the baseline.
pub(super) fn random_init_probe(images: &Images, seed: u64, device: Device) -> Result<f64> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let enc = Encoder::new(&(vs.root() / "query"));
    probe(&enc, images)
}

fn probe(enc: &Encoder, images: &Images) -> Result<f64> {
    let (ftr, fte) = (
        enc.frozen_features(&images.train_x),
        enc.frozen_features(&images.test_x),
    );
    linear_probe((&ftr, &images.train_y), (&fte, &images.test_y), 10, 0)
}

/// Pre-trains `arm` (of claim `claim`) from `ctx.seed` on the training images (labels unused) and probes it.
pub(super) fn run_arm(ctx: &Ctx, claim: &str, images: &Images, arm: &Arm) -> Result<ArmResult> {
    let started = Instant::now();
    tch::manual_seed(ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let enc = Encoder::new(&(vs.root() / "query"));
    // MoCo's key encoder and queue, in the same store (checkpointed with the model).
    let mut moco = match arm.method {
        Method::SimClr => None,
        Method::Moco { queue, momentum } => {
            let key = Encoder::new(&(vs.root() / "key"));
            let pairs = MomentumPairs::new(&vs, "query", "key")?;
            pairs.update(0.0)?; // theta_k = theta_q at the start
            pairs.freeze_targets();
            let q = Queue::in_store(&(vs.root() / "queue"), queue, PROJ_DIM)?;
            Some((key, pairs, q, momentum))
        }
    };
    let source = Shuffled {
        x: images.train_x.shallow_clone(),
        batch: arm.batch,
        seed: ctx.seed,
    };
    let steps = arm.epochs * source_batches(&source);
    let schedule = Schedule::WarmupCosine {
        base_lr: arm.lr,
        min_lr: arm.lr * 0.01,
        warmup_steps: steps / 20,
        total_steps: steps,
    };
    let tcfg = TrainerConfig {
        epochs: arm.epochs,
        schedule,
        seeding: Seeding::PerStep(ctx.seed),
        eval_every: 0,
        log_every: 50,
        recipe: json!({"claim": claim, "arm": arm, "augment": "crop (0.4, 1) + brightness [0.6, 1]"}),
        ..Default::default()
    };
    let dir = super::super::fresh_dir(&ctx.out_dir.join(slug(&arm.label)))?;
    let runo = RunOptions {
        dir: Some(dir),
        progress: true,
        label: format!("{} {}", claim, arm.label),
        stop_after: None,
    };
    let mut opt = AdamW::with_single_group(
        &vs,
        AdamWConfig {
            lr: arm.lr,
            weight_decay: 1e-5,
            ..Default::default()
        },
    )?;
    let tau = arm.temperature;
    let splits = if arm.batch % 2 == 0 { 2 } else { 1 };
    let report = Trainer::new(&tcfg, &runo)?.fit(
        &mut vs,
        &mut opt,
        &source,
        |x: Tensor, _info| -> Result<Tensor, NceError> {
            let (v1, v2) = (view(&x).map_err(cfg_err)?, view(&x).map_err(cfg_err)?);
            match moco.as_mut() {
                None => simclr_loss(&enc.project(&v1, true), &enc.project(&v2, true), tau),
                Some((key, pairs, queue, m)) => {
                    let q = split_forward(&v1, splits, &mut |t| enc.project(t, true))?;
                    let k = tch::no_grad(|| {
                        pairs.update(*m)?;
                        let k = shuffled_split_forward(&v2, splits, &mut |t| key.project(t, true))?;
                        Ok::<Tensor, NceError>(normalize(&k))
                    })?;
                    let loss = moco_loss(&q, &k, queue, tau)?;
                    queue.enqueue_dequeue(&k)?;
                    Ok(loss)
                }
            }
        },
        train_kit::trainer::no_eval,
    )?;
    Ok(ArmResult {
        label: arm.label.clone(),
        negatives: arm.negatives(),
        probe_accuracy: probe(&enc, images)?,
        epoch_loss: report.epoch_loss(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn source_batches(s: &Shuffled) -> usize {
    train_kit::DataSource::batches_per_epoch(s) as usize
}

fn cfg_err(e: mae::MaeError) -> NceError {
    NceError::Config(format!("augmenting a view: {e}"))
}

/// A folder name from a label: lowercase ASCII letters and digits, the rest `_`.
fn slug(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_keep_the_shape_and_range_and_differ() {
        let _g = test_support::rng_lock();
        tch::manual_seed(0);
        let x = Tensor::rand([4, 1, 28, 28], (Kind::Float, Device::Cpu));
        let (a, b) = (view(&x).unwrap(), view(&x).unwrap());
        assert_eq!(a.size(), [4, 1, 28, 28]);
        assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
        assert!(!a.allclose(&b, 1e-3, 1e-3, false));
    }

    #[test]
    fn encoder_shapes_and_negatives() {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = Encoder::new(&vs.root());
        let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
        assert_eq!(enc.features(&x, false).size(), [3, FEATURE_DIM]);
        assert_eq!(enc.project(&x, true).size(), [3, PROJ_DIM]);
        let arm = |method, batch| Arm {
            label: "a".into(),
            method,
            batch,
            temperature: 0.2,
            epochs: 1,
            lr: 1e-3,
        };
        assert_eq!(arm(Method::SimClr, 32).negatives(), 62);
        let moco = Method::Moco {
            queue: 4096,
            momentum: 0.99,
        };
        assert_eq!(arm(moco, 32).negatives(), 4096);
        assert_eq!(slug("MoCo b=32, K=4096"), "moco_b_32__k_4096");
    }
}
