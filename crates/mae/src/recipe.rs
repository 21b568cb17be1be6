//! The paper's end-to-end ViT-B/16 recipe on ImageNet-1k folders (Table 3: 83.6 top-1):
//! 1600 epochs of norm-pix pre-training at 75% with `PretrainConfig::default()` (skipped when
//! the official `mae_pretrain_vit_base` checkpoint, converted to safetensors, is given), then 100
//! epochs of fine-tuning with `FinetuneConfig::default()` (`FINETUNE.md`). Both stages checkpoint
//! into `out_dir` and resume from there. [`run_recipe`] runs the same path with any [`Recipe`]
//! (`tests/recipe.rs` runs a tiny one on a generated JPEG folder).
//!
//! Training images come from `datasets::ImageFolder` stretched to 256x256 (decoded by every core)
//! and get RandomResizedCrop to 224 + flip on the device; so the crop's aspect range applies to
//! the stretched image, not the original as in torchvision. Validation images go through the
//! official `Resize(256, bicubic)` + `CenterCrop(224)`, aspect kept.

use std::path::{Path, PathBuf};

use datasets::image_folder::Resize;
use datasets::{ImageFolder, Loader, LoaderConfig};
use image::imageops::FilterType;
use tch::{nn, Device};
use vit_core::VisionTransformer;

use crate::config::MaeConfig;
use crate::error::Result;
use crate::finetune::{
    classifier_config, finetune, init_head, EvalSet, FinetuneConfig, FinetuneReport,
};
use crate::model::MaskedAutoencoder;
use crate::pretrain::{pretrain, PretrainConfig};
use crate::weights::load_encoder_into;
use train_kit::RunOptions;

/// Where and how the recipe runs.
#[derive(Debug, Clone)]
pub struct ImageNetRun {
    /// Holds `train/` and `val/` class folders.
    pub root: PathBuf,
    /// Checkpoints, logs and the pre-trained weights go here.
    pub out_dir: PathBuf,
    /// An encoder checkpoint to fine-tune instead of pre-training here.
    pub pretrained: Option<PathBuf>,
    /// Where the model trains.
    pub device: Device,
    /// Seed of both stages.
    pub seed: u64,
}

/// The recipe's settings. [`Recipe::vit_b_paper`] is the paper's; smaller ones run the same
/// path (the tests run it end to end on a tiny folder).
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The MAE; fine-tuning builds its classifier from `model.encoder`.
    pub model: MaeConfig,
    /// The pre-training stage.
    pub pretrain: PretrainConfig,
    /// The fine-tuning stage.
    pub finetune: FinetuneConfig,
    /// Classes of the fine-tuned classifier.
    pub num_classes: i64,
    /// Drop-path rate of the fine-tuned classifier.
    pub drop_path: f64,
    /// Training images are stretched to this square before the crop on the device.
    pub train_decode: u32,
    /// Validation: `Resize(eval_resize)` (aspect kept) then `CenterCrop` to the model's size.
    pub eval_resize: u32,
    /// Images per evaluation batch.
    pub eval_batch: usize,
    /// File name of the pre-trained weights in `out_dir`.
    pub pretrained_name: String,
}

impl Recipe {
    /// ViT-B/16: norm-pix pre-training for 1600 epochs (`PretrainConfig::default()`, effective
    /// batch 4096), fine-tuning for 100 (`FinetuneConfig::default()`, evaluated every 10), drop
    /// path 0.1, 1000 classes, images decoded at 256, evaluation `Resize(256)` + `CenterCrop(224)`.
    pub fn vit_b_paper(seed: u64) -> Self {
        Self {
            model: MaeConfig {
                norm_pix_loss: true,
                ..MaeConfig::mae_vit_base_patch16()
            },
            pretrain: PretrainConfig {
                epochs: 1600,
                seed,
                ..PretrainConfig::default()
            },
            finetune: FinetuneConfig {
                seed,
                eval_every: 10,
                ..FinetuneConfig::default()
            },
            num_classes: 1000,
            drop_path: 0.1,
            train_decode: 256,
            eval_resize: 256,
            eval_batch: 250,
            pretrained_name: "mae_vit_base_pretrained.safetensors".into(),
        }
    }
}

/// What the recipe produced.
#[derive(Debug, Clone)]
pub struct ImageNetResult {
    /// The fine-tuning run.
    pub finetune: FinetuneReport,
    /// The pre-trained weights it started from.
    pub pretrained: PathBuf,
}

/// Decoding threads per batch: every core (the GPU waits on JPEG decoding otherwise).
fn decode_workers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get())
}

/// Training images: the whole image stretched to `size` x `size`, cropped on the device per step.
fn train_folder(root: &Path, size: u32, batch: usize, seed: u64) -> Result<Loader> {
    let f = ImageFolder::open(root.join("train"), (size, size))?;
    let cfg = LoaderConfig {
        batch_size: batch,
        shuffle: true,
        drop_last: true,
        seed,
        prefetch: 8,
        workers: decode_workers(),
    };
    Ok(f.into_loader(cfg)?)
}

/// Validation images as the official evaluation: `Resize(resize, bicubic)` (aspect kept) and
/// `CenterCrop(crop)`.
fn val_folder(root: &Path, crop: (i64, i64), resize: u32, batch: usize) -> Result<Loader> {
    let f = ImageFolder::open(root.join("val"), (crop.0 as u32, crop.1 as u32))?
        .with_resize(Resize::ShorterThenCenterCrop(resize))?
        .with_filter(FilterType::CatmullRom);
    let cfg = LoaderConfig {
        batch_size: batch,
        shuffle: false,
        drop_last: false,
        seed: 0,
        prefetch: 8,
        workers: decode_workers(),
    };
    Ok(f.into_loader(cfg)?)
}

/// Runs (or resumes) the paper's ViT-B/16 recipe; the top-1 is the last entry of
/// `finetune.accuracy`.
pub fn imagenet_vit_b(run: &ImageNetRun) -> Result<ImageNetResult> {
    run_recipe(run, &Recipe::vit_b_paper(run.seed))
}

/// Pre-trains (unless `run.pretrained` is given or the weights are already in `out_dir`), then
/// fine-tunes and evaluates; both stages resume from their checkpoints in `out_dir`.
pub fn run_recipe(run: &ImageNetRun, recipe: &Recipe) -> Result<ImageNetResult> {
    let cfg = &recipe.model;
    let pretrained = match &run.pretrained {
        Some(path) => path.clone(),
        None => {
            let path = run.out_dir.join(&recipe.pretrained_name);
            if !path.is_file() {
                let mut vs = nn::VarStore::new(run.device);
                let model = MaskedAutoencoder::new(&vs.root(), cfg)?;
                let opts = RunOptions {
                    dir: Some(run.out_dir.join("pretrain")),
                    progress: true,
                    label: "MAE pre-training".into(),
                    stop_after: None,
                };
                let p = &recipe.pretrain;
                let train = train_folder(&run.root, recipe.train_decode, p.batch_size, p.seed)?;
                pretrain(&model, &mut vs, &train, p, &opts)?;
                vit_core::save_safetensors(&vs, &path)?;
            }
            path
        }
    };
    let mut vs = nn::VarStore::new(run.device);
    let vcfg = classifier_config(cfg, recipe.num_classes, true, recipe.drop_path);
    let vit = VisionTransformer::new(&vs.root(), &vcfg)?;
    load_encoder_into(&vit, &vs, &pretrained)?;
    init_head(&vs, 2e-5);
    let f = &recipe.finetune;
    let train = train_folder(&run.root, recipe.train_decode, f.batch_size, f.seed)?;
    let val = val_folder(
        &run.root,
        cfg.encoder.img_size,
        recipe.eval_resize,
        recipe.eval_batch,
    )?;
    let opts = RunOptions {
        dir: Some(run.out_dir.join("finetune")),
        progress: true,
        label: "MAE fine-tuning".into(),
        stop_after: None,
    };
    let finetune = finetune(&vit, &mut vs, &train, &EvalSet::Loader(&val), f, &opts)?;
    Ok(ImageNetResult {
        finetune,
        pretrained,
    })
}
