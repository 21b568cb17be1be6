//! The paper's end-to-end ViT-B/16 recipe on ImageNet-1k folders (Table 3: 83.6 top-1):
//! 1600 epochs of norm-pix pre-training at 75% with `PretrainConfig::default()` (skipped when
//! the official `mae_pretrain_vit_base` checkpoint, converted to safetensors, is given), then 100
//! epochs of fine-tuning with `FinetuneConfig::default()` (`FINETUNE.md`). Both stages checkpoint
//! into `out_dir` and resume from there.
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
use crate::run::RunOptions;
use crate::weights::load_encoder_into;

/// Where and how the recipe runs.
#[derive(Debug, Clone)]
pub struct ImageNetRun {
    /// Holds `train/` and `val/` class folders.
    pub root: PathBuf,
    /// Checkpoints, logs and the pre-trained weights go here.
    pub out_dir: PathBuf,
    /// An encoder checkpoint to fine-tune instead of pre-training here.
    pub pretrained: Option<PathBuf>,
    pub device: Device,
    pub seed: u64,
}

/// What the recipe produced.
#[derive(Debug, Clone)]
pub struct ImageNetResult {
    pub finetune: FinetuneReport,
    pub pretrained: PathBuf,
}

/// Decoding threads per batch: every core (the GPU waits on JPEG decoding otherwise).
fn decode_workers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get())
}

/// Training images: the whole image stretched to 256x256, cropped on the device per step.
fn train_folder(root: &Path, batch: usize, seed: u64) -> Result<Loader> {
    let f = ImageFolder::open(root.join("train"), (256, 256))?;
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

/// Validation images as the official evaluation: `Resize(256, bicubic)` (aspect kept) and
/// `CenterCrop(224)`.
fn val_folder(root: &Path, batch: usize) -> Result<Loader> {
    let f = ImageFolder::open(root.join("val"), (224, 224))?
        .with_resize(Resize::ShorterThenCenterCrop(256))?
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

/// Runs (or resumes) the recipe; the top-1 is the last entry of `finetune.accuracy`.
pub fn imagenet_vit_b(run: &ImageNetRun) -> Result<ImageNetResult> {
    let cfg = MaeConfig {
        norm_pix_loss: true,
        ..MaeConfig::mae_vit_base_patch16()
    };
    let pretrained = match &run.pretrained {
        Some(path) => path.clone(),
        None => {
            let mut vs = nn::VarStore::new(run.device);
            let model = MaskedAutoencoder::new(&vs.root(), &cfg)?;
            let recipe = PretrainConfig {
                epochs: 1600,
                seed: run.seed,
                ..PretrainConfig::default()
            };
            let opts = RunOptions {
                dir: Some(run.out_dir.join("pretrain")),
                progress: true,
                label: "MAE ViT-B/16 pre-training".into(),
                stop_after: None,
            };
            let train = train_folder(&run.root, recipe.batch_size, run.seed)?;
            pretrain(&model, &mut vs, &train, &recipe, &opts)?;
            let path = run.out_dir.join("mae_vit_base_pretrained.safetensors");
            vit_core::save_safetensors(&vs, &path)?;
            path
        }
    };
    let mut vs = nn::VarStore::new(run.device);
    let vit = VisionTransformer::new(&vs.root(), &classifier_config(&cfg, 1000, true, 0.1))?;
    load_encoder_into(&vit, &vs, &pretrained)?;
    init_head(&vs, 2e-5);
    let fcfg = FinetuneConfig {
        seed: run.seed,
        eval_every: 10,
        ..FinetuneConfig::default()
    };
    let train = train_folder(&run.root, fcfg.batch_size, run.seed)?;
    let val = val_folder(&run.root, 250)?;
    let opts = RunOptions {
        dir: Some(run.out_dir.join("finetune")),
        progress: true,
        label: "MAE ViT-B/16 fine-tuning".into(),
        stop_after: None,
    };
    let finetune = finetune(&vit, &mut vs, &train, &EvalSet::Loader(&val), &fcfg, &opts)?;
    Ok(ImageNetResult {
        finetune,
        pretrained,
    })
}
