//! Masked-autoencoder claims (He et al. 2022, arXiv 2111.06377; crate `mae`).
//!
//! - `mae.speedup`: a training step of the asymmetric design (encoder on the visible 25%) against
//!   the encoder fed mask tokens (Table 1c), same device and batch, plus the analytic FLOP ratio.
//! - `mae.fashion`: a small MAE pre-trained on the 60k Fashion-MNIST training images without
//!   labels, then linear-probed and fine-tuned against a random-init encoder / training from
//!   scratch with the same budget; the reconstruction figure.
//! - `mae.mask-ratio`: probe accuracy for mask ratios 0.25 / 0.5 / 0.75 / 0.9 (Fig. 5); the 0.75
//!   model is `mae.fashion`'s when it was made with the same recipe.
//! - `mae.full`: the ViT-B ImageNet recipe (Table 3, 83.6), which needs the data and a GPU.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use datasets::mnist::Mnist;
use datasets::{Loader, LoaderConfig};
use mae::augment::{CropConfig, MixupConfig};
use mae::{
    classifier_config, mask_token_flop_ratio, FinetuneConfig, MaeConfig, MaskedAutoencoder,
    PretrainConfig, ProbeConfig, RunOptions,
};
use serde_json::{json, Value};
use tch::{nn, Device, Tensor};
use train_kit::Series;
use vit_core::VisionTransformer;

use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::{Mode, Verdict};

// The measurements the tolerances below check.
const STEP_SPEEDUP: &str = "measured step speed-up at 75% (same device and batch)";
const VIT_L_FLOPS: &str = "analytic ViT-L FLOP ratio";
const PROBE_GAIN: &str = "probe: MAE - random init";
const FINETUNE_GAIN: &str = "fine-tune: MAE - scratch";
const PROBE_MAE: &str = "probe accuracy of the MAE encoder";
const GAP_TO_BEST: &str = "best ratio's probe - 0.75's probe";
const OVER_QUARTER: &str = "0.75's probe - 0.25's probe";
const LOWEST_PROBE: &str = "lowest probe accuracy over the ratios";
const TOP1: &str = "fine-tuned top-1 (%)";

/// The claims of this module, in report order.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "mae.speedup",
            claim: "Encoding only the visible patches makes a pre-training step several times \
                    faster than feeding the encoder mask tokens, close to the FLOP ratio",
            source: "He et al. 2022, arXiv 2111.06377, Table 2 (ViT-L, decoder depth 8: 2.8x \
                     wall-clock) and Table 1c (3.3x FLOPs)",
            paper_value: "2.8x wall-clock, 3.3x FLOPs (ViT-L, 75% masked)",
            tolerance: Tolerance::new([
                Bound::at_least(STEP_SPEEDUP, 2.0).unit("x"),
                Bound::within(VIT_L_FLOPS, 3.3, 0.15),
            ]),
            smoke_tolerance: Some(
                Tolerance::new([
                    Bound::at_least(STEP_SPEEDUP, 1.0).unit("x"),
                    Bound::within(VIT_L_FLOPS, 3.3, 0.15),
                ])
                .note("a 2-block model, 2 timed steps: the asymmetric step must only be the faster one"),
            ),
            full_needs: None,
            run: run_speedup,
        },
        Claim {
            id: "mae.fashion",
            claim:
                "MAE pre-training without labels on the 60k Fashion-MNIST training images gives \
                 an encoder whose linear probe beats a random-init encoder's by a wide margin, and \
                 fine-tuning it on 5,000 labelled images beats training from scratch with the \
                 same budget",
            source: "He et al. 2022, arXiv 2111.06377, Sec. 4 and Table 3 (scratch 82.3 vs MAE \
                     83.6 for ViT-B), scaled down to Fashion-MNIST on a CPU",
            paper_value: "pre-trained > random init (probe), MAE > scratch (fine-tune)",
            tolerance: Tolerance::new([
                Bound::at_least(PROBE_GAIN, 3.0).unit(" points"),
                Bound::at_least(FINETUNE_GAIN, 1.0).unit(" point"),
            ])
            .note("same epochs, images and recipe"),
            smoke_tolerance: Some(
                Tolerance::new([Bound::above(PROBE_MAE, 15.0).unit("%")])
                    .note("one epoch on 2k images: the probe must only beat chance (10%) clearly"),
            ),
            full_needs: None,
            run: run_fashion,
        },
        Claim {
            id: "mae.mask-ratio",
            claim: "A high mask ratio works best: 75% gives the best linear probe among 25 / 50 / \
                    75 / 90%",
            source: "He et al. 2022, arXiv 2111.06377, Fig. 5 (linear probing peaks at 75%)",
            paper_value: "0.75 best",
            tolerance: Tolerance::new([
                Bound::at_most(GAP_TO_BEST, 0.5).unit(" points"),
                Bound::above(OVER_QUARTER, 0.0).unit(" points"),
            ]),
            smoke_tolerance: Some(
                Tolerance::new([Bound::above(LOWEST_PROBE, 15.0).unit("%")])
                    .note("every ratio's probe must only beat chance (10%) clearly"),
            ),
            full_needs: None,
            run: run_mask_ratio,
        },
        Claim {
            id: "mae.full",
            claim: "MAE ViT-B/16 pre-trained on ImageNet-1k and fine-tuned reaches 83.6% top-1",
            source: "He et al. 2022, arXiv 2111.06377, Table 3; official FINETUNE.md (83.664)",
            paper_value: "83.6% top-1",
            tolerance: Tolerance::new([Bound::within(TOP1, 83.6, 0.3)]),
            smoke_tolerance: None,
            full_needs: Some("GPU + ImageNet-1k folders DIR/train, DIR/val"),
            run: run_full,
        },
    ]
}

// ------------------------------------------------------------------ mae.speedup

/// ViT-Ti/16 at 224 (196 patches, as the paper) with an 8 x 64 decoder: the decoder costs ~8% of
/// the encoder per token, like ViT-L's 8 x 512 (paper Sec. 3).
fn speed_config_cpu() -> MaeConfig {
    let mut c = MaeConfig::preset(vit_core::Size::Tiny, 16);
    c.decoder_embed_dim = 64;
    c.decoder_num_heads = 4;
    c
}

fn run_speedup(ctx: &Ctx) -> Result<Outcome> {
    let (mut cfg, batch, iters, ratios) = match (ctx.device, ctx.mode) {
        (Device::Cpu, Mode::Smoke) => {
            let mut c = MaeConfig::mae_vit_mini_patch4_32();
            c.encoder.depth = 2;
            (c, 4, 2, vec![0.75])
        }
        (Device::Cpu, _) => (speed_config_cpu(), 32, 5, vec![0.5, 0.75, 0.9]),
        (_, Mode::Smoke) => (MaeConfig::mae_vit_base_patch16(), 16, 3, vec![0.75]),
        _ => (
            MaeConfig::mae_vit_large_patch16(),
            128,
            10,
            vec![0.5, 0.75, 0.9],
        ),
    };
    let bar = train_kit::progress_bar(2 * ratios.len() as u64, "mae.speedup: timing steps");
    let mut rows = Vec::new();
    for &ratio in &ratios {
        cfg.encoder_mask_tokens = false;
        cfg.mask_ratio = ratio;
        let asym = mae::time_train_step(&cfg, ctx.device, batch, iters, true)?;
        bar.inc(1);
        cfg.encoder_mask_tokens = true;
        let with_tokens = mae::time_train_step(&cfg, ctx.device, batch, iters, true)?;
        bar.inc(1);
        rows.push((
            ratio,
            asym,
            with_tokens,
            mask_token_flop_ratio(&cfg, ratio)?,
        ));
    }
    bar.finish_and_clear();
    let vit_l = mask_token_flop_ratio(&MaeConfig::mae_vit_large_patch16(), 0.75)?;
    let at75 = rows.iter().find(|r| r.0 == 0.75).context("no 0.75 row")?;
    let speedup = at75.2 / at75.1;
    let plot = "speedup.png";
    train_kit::line_plot(
        &ctx.out_dir.join(plot),
        "MAE step: encoder with mask tokens / asymmetric encoder",
        "mask ratio",
        "speed-up (x)",
        &[
            Series::new(
                "measured step time ratio",
                rows.iter().map(|r| (r.0, r.2 / r.1)).collect(),
            ),
            Series::new(
                "analytic FLOP ratio (this model)",
                rows.iter().map(|r| (r.0, r.3)).collect(),
            ),
            Series::new(
                "paper, ViT-L wall-clock (2.8x at 0.75)",
                vec![(0.73, 2.8), (0.77, 2.8)],
            ),
        ],
    )?;
    let name = if ctx.device == Device::Cpu && ctx.mode != Mode::Smoke {
        "ViT-Ti/16 encoder, decoder 8 x 64, 224x224".to_owned()
    } else {
        format!(
            "encoder {} x {}, decoder {} x {}, {}x{}",
            cfg.encoder.depth,
            cfg.encoder.embed_dim,
            cfg.decoder_depth,
            cfg.decoder_embed_dim,
            cfg.encoder.img_size.0,
            cfg.encoder.img_size.1
        )
    };
    Ok(Outcome {
        value: speedup,
        value_text: format!(
            "{speedup:.2}x step speed-up at 75% ({name}, batch {batch}, {}; FLOP ratio {:.2}x); \
             ViT-L FLOP ratio {vit_l:.2}x",
            train_kit::device_description(ctx.device),
            at75.3
        ),
        measured: Measured::new()
            .number(STEP_SPEEDUP, speedup)
            .number(VIT_L_FLOPS, vit_l),
        skipped: None,
        plots: vec![plot.into()],
        details: json!({
            "model": name, "config": cfg, "batch": batch, "timed_steps": iters,
            "bf16": ctx.device != Device::Cpu,
            "rows": rows.iter().map(|r| json!({"mask_ratio": r.0, "asymmetric_s": r.1,
                "mask_tokens_s": r.2, "speedup": r.2 / r.1, "flop_ratio": r.3})).collect::<Vec<_>>(),
            "vit_l_flop_ratio_at_0.75": vit_l,
            "step": "forward + loss + backward + AdamW (flat buffers); median of timed steps",
        }),
    })
}

// ------------------------------------------------------------------ Fashion-MNIST setup

/// Fashion-MNIST training-set mean and std of the [0, 1] pixels.
const MEAN: [f64; 1] = [0.2860];
const STD: [f64; 1] = [0.3530];

/// How much of the recipe a mode runs.
struct Budget {
    pretrain_images: i64,
    pretrain_epochs: usize,
    pretrain_batch: usize,
    probe_train: i64,
    test: i64,
    /// Labelled images for fine-tuning (the first ones of the training set).
    finetune_images: i64,
    finetune_epochs: usize,
}

fn budget(mode: Mode) -> Budget {
    match mode {
        Mode::Smoke => Budget {
            pretrain_images: 2048,
            pretrain_epochs: 1,
            pretrain_batch: 64,
            probe_train: 1000,
            test: 500,
            finetune_images: 512,
            finetune_epochs: 1,
        },
        Mode::Quick => Budget {
            pretrain_images: 60_000,
            pretrain_epochs: 3,
            pretrain_batch: 64,
            probe_train: 30_000,
            test: 10_000,
            finetune_images: 5_000,
            finetune_epochs: 6,
        },
        Mode::Full => Budget {
            pretrain_images: 60_000,
            pretrain_epochs: 100,
            pretrain_batch: 256,
            probe_train: 60_000,
            test: 10_000,
            finetune_images: 5_000,
            finetune_epochs: 50,
        },
    }
}

/// The small MAE of these claims: `mae_vit_mini_patch4_28` with norm-pix targets.
fn fashion_config(ratio: f64) -> MaeConfig {
    MaeConfig {
        mask_ratio: ratio,
        norm_pix_loss: true,
        ..MaeConfig::mae_vit_mini_patch4_28()
    }
}

/// The pre-training recipe scaled to a few epochs: blr 4e-3 (lr 1e-3 at batch 64; the paper's
/// 1.5e-4 is for 800 epochs at batch 4096), warmup a quarter epoch, crops of 50-100% of the
/// 28x28 image.
fn pretrain_recipe(b: &Budget, seed: u64) -> PretrainConfig {
    PretrainConfig {
        epochs: b.pretrain_epochs,
        warmup_epochs: 0.25,
        batch_size: b.pretrain_batch,
        accum_iter: 1,
        blr: 4e-3,
        crop: CropConfig {
            scale: (0.5, 1.0),
            ..CropConfig::default()
        },
        mean: MEAN.to_vec(),
        std: STD.to_vec(),
        seed,
        log_every: 10,
        ..PretrainConfig::default()
    }
}

fn fashion(ctx: &Ctx) -> Result<Mnist> {
    let data = datasets::mnist::load("fashion-mnist", ctx.data_root.as_deref())
        .context("loading Fashion-MNIST")?;
    let b = budget(ctx.mode);
    let data = data
        .subset_train(b.pretrain_images.max(b.finetune_images) as usize)?
        .subset_test(b.test as usize)?;
    Ok(data.f_to_device(ctx.device)?)
}

fn loader(images: &Tensor, labels: &Tensor, batch: usize, seed: u64) -> Result<Loader> {
    let cfg = LoaderConfig {
        batch_size: batch,
        drop_last: true,
        seed,
        prefetch: 0,
        ..Default::default()
    };
    Ok(Loader::new(images, labels, cfg)?)
}

fn model_file(ratio: f64) -> String {
    format!("mae_r{ratio}.safetensors")
}

/// What a saved model was made with; a reuse must match it exactly.
fn provenance(cfg: &MaeConfig, recipe: &PretrainConfig, b: &Budget) -> Value {
    json!({"config": cfg, "recipe": recipe, "pretrain_images": b.pretrain_images,
           "mae_version": env!("CARGO_PKG_VERSION")})
}

/// Pre-trains a `ratio` model into `ctx.out_dir` (fresh: an old checkpoint is removed).
fn pretrain_fashion(ctx: &Ctx, data: &Mnist, ratio: f64) -> Result<(PathBuf, Value)> {
    let b = budget(ctx.mode);
    let cfg = fashion_config(ratio);
    let recipe = pretrain_recipe(&b, ctx.seed);
    tch::manual_seed(ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let model = MaskedAutoencoder::new(&vs.root(), &cfg)?;
    let n = b.pretrain_images;
    let images = data.train_images.narrow(0, 0, n);
    let labels = data.train_labels.narrow(0, 0, n); // carried by the loader, never read
    let dir = ctx.out_dir.join(format!("pretrain_r{ratio}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let run = RunOptions {
        dir: Some(dir.clone()),
        progress: true,
        label: format!(
            "{}: pre-training r={ratio}",
            ctx.out_dir
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or("mae")
        ),
        stop_after: None,
    };
    let report = mae::pretrain(
        &model,
        &mut vs,
        &loader(&images, &labels, b.pretrain_batch, ctx.seed)?,
        &recipe,
        &run,
    )?;
    let path = ctx.out_dir.join(model_file(ratio));
    vit_core::save_safetensors(&vs, &path)?;
    let mut meta = provenance(&cfg, &recipe, &b);
    meta["report"] = serde_json::to_value(&report)?;
    let meta_path = path.with_extension("json");
    cvlab_util::write_atomic(&meta_path, serde_json::to_string_pretty(&meta)?.as_bytes())
        .with_context(|| format!("writing {}", meta_path.display()))?;
    Ok((path, meta))
}

/// `mae.fashion`'s model for `ratio` when it was made by the same recipe, else a fresh run.
fn shared_or_pretrain(
    ctx: &Ctx,
    data: &Mnist,
    ratio: f64,
) -> Result<(PathBuf, Value, &'static str)> {
    let b = budget(ctx.mode);
    let want = provenance(&fashion_config(ratio), &pretrain_recipe(&b, ctx.seed), &b);
    if let Some(dir) = ctx.out_dir.parent().map(|p| p.join("mae.fashion")) {
        let path = dir.join(model_file(ratio));
        let meta: Option<Value> = std::fs::read_to_string(path.with_extension("json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        if let Some(meta) = meta {
            let same = ["config", "recipe", "pretrain_images", "mae_version"]
                .iter()
                .all(|k| meta[k] == want[k]);
            if same && path.is_file() {
                return Ok((path, meta, "shared with mae.fashion"));
            }
        }
    }
    let (path, meta) = pretrain_fashion(ctx, data, ratio)?;
    Ok((path, meta, "pre-trained here"))
}

/// The probe at this scale: average pooling + fc_norm features (official `--global_pool`), the
/// official BatchNorm + linear head with LARS; lr 10 at batch 256 (LARS steps are lr x 0.001
/// relative; the official lr is 6.4), 90 epochs (10 warmup) on cached features.
fn probe(ctx: &Ctx, path: &Path, cfg: &MaeConfig, data: &Mnist) -> Result<mae::ProbeReport> {
    let n = budget(ctx.mode).probe_train;
    let smoke = ctx.mode == Mode::Smoke;
    let pcfg = ProbeConfig {
        epochs: if smoke { 10 } else { 90 },
        warmup_epochs: if smoke { 1.0 } else { 10.0 },
        batch_size: 256,
        lr: Some(10.0),
        seed: ctx.seed,
        ..ProbeConfig::default()
    };
    let pd = mae::ProbeData {
        train_images: &data.train_images.narrow(0, 0, n),
        train_labels: &data.train_labels.narrow(0, 0, n),
        test_images: &data.test_images,
        test_labels: &data.test_labels,
        classes: 10,
        mean: &MEAN,
        std: &STD,
    };
    Ok(mae::probe_checkpoint(
        path, cfg, true, &pd, &pcfg, ctx.device,
    )?)
}

/// The random-init encoder: the official initialisation, no training.
fn random_init(ctx: &Ctx, cfg: &MaeConfig) -> Result<PathBuf> {
    tch::manual_seed(ctx.seed as i64);
    let vs = nn::VarStore::new(ctx.device);
    MaskedAutoencoder::new(&vs.root(), cfg)?;
    let path = ctx.out_dir.join("random_init.safetensors");
    vit_core::save_safetensors(&vs, &path)?;
    Ok(path)
}

/// Fine-tuning on the first `finetune_images` labelled images, same budget for both starts:
/// AdamW, lr 2e-3 at batch 128 (blr 4e-3), layer decay 0.75 from MAE and 1.0 from scratch,
/// drop path 0.1, label smoothing 0.1, crops + flip. Mixup / CutMix and random erasing are off:
/// they regularise 100-epoch runs and only slow a 6-epoch one down (both starts alike).
fn finetune(ctx: &Ctx, data: &Mnist, init: Option<&Path>) -> Result<mae::FinetuneReport> {
    let b = budget(ctx.mode);
    let cfg = fashion_config(0.75);
    tch::manual_seed(ctx.seed as i64 + 1);
    let mut vs = nn::VarStore::new(ctx.device);
    let vit = VisionTransformer::new(&vs.root(), &classifier_config(&cfg, 10, true, 0.1))?;
    if let Some(path) = init {
        mae::load_encoder_into(&vit, &vs, path)?;
    } else {
        // Scratch: MAE's initialisation for the trunk, not vit-core's timm default.
        let path = random_init(ctx, &cfg)?;
        mae::load_encoder_into(&vit, &vs, &path)?;
    }
    mae::finetune::init_head(&vs, 2e-5);
    let fcfg = FinetuneConfig {
        epochs: b.finetune_epochs,
        warmup_epochs: 0.25,
        batch_size: 128,
        accum_iter: 1,
        blr: 4e-3,
        layer_decay: if init.is_some() { 0.75 } else { 1.0 },
        mixup: MixupConfig {
            prob: 0.0,
            ..MixupConfig::default()
        },
        reprob: 0.0,
        rand_augment: None,
        crop: CropConfig {
            scale: (0.5, 1.0),
            ..CropConfig::default()
        },
        mean: MEAN.to_vec(),
        std: STD.to_vec(),
        seed: ctx.seed,
        ..FinetuneConfig::default()
    };
    let n = b.finetune_images;
    let train = loader(
        &data.train_images.narrow(0, 0, n),
        &data.train_labels.narrow(0, 0, n),
        128,
        ctx.seed,
    )?;
    let eval = mae::EvalSet::Tensors {
        images: &data.test_images,
        labels: &data.test_labels,
    };
    let label = if init.is_some() {
        "mae.fashion: fine-tuning MAE"
    } else {
        "mae.fashion: training from scratch"
    };
    let run = RunOptions {
        dir: Some(crate::experiments::fresh_dir(
            &ctx.out_dir.join(finetune_dir(init.is_some())),
        )?),
        progress: true,
        label: label.into(),
        ..Default::default()
    };
    Ok(mae::finetune(&vit, &mut vs, &train, &eval, &fcfg, &run)?)
}

/// Where a `mae.fashion` fine-tuning run keeps its checkpoints and `metrics.jsonl`.
fn finetune_dir(from_mae: bool) -> &'static str {
    if from_mae {
        "finetune_mae"
    } else {
        "finetune_scratch"
    }
}

fn reconstruction_figure(ctx: &Ctx, path: &Path, data: &Mnist, file: &str) -> Result<f64> {
    let cfg = fashion_config(0.75);
    let mut vs = nn::VarStore::new(ctx.device);
    let model = MaskedAutoencoder::new(&vs.root(), &cfg)?;
    model.load_safetensors(&vs, path)?;
    vs.freeze();
    tch::manual_seed(ctx.seed as i64);
    let x = mae::augment::normalize(&data.test_images.narrow(0, 0, 8), &MEAN, &STD)?;
    let r = mae::reconstruct(&model, &x, 0.75, None, &MEAN, &STD)?;
    mae::save_grid(&r, &ctx.out_dir.join(file), 4)?;
    Ok(r.loss)
}

// ------------------------------------------------------------------ mae.fashion

fn run_fashion(ctx: &Ctx) -> Result<Outcome> {
    let data = fashion(ctx)?;
    let cfg = fashion_config(0.75);
    let (path, meta) = pretrain_fashion(ctx, &data, 0.75)?;
    let rand_path = random_init(ctx, &cfg)?;
    let probe_mae = probe(ctx, &path, &cfg, &data)?;
    let probe_rand = probe(ctx, &rand_path, &cfg, &data)?;
    let ft_mae = finetune(ctx, &data, Some(&path))?;
    let ft_scratch = finetune(ctx, &data, None)?;
    let recon = reconstruction_figure(ctx, &path, &data, "reconstructions.png")?;
    let dir = ctx.out_dir.join("pretrain_r0.75");
    train_kit::training_curves_png(
        &[("pre-training r=0.75", &dir.join("metrics.jsonl"))],
        &ctx.out_dir.join("pretrain_loss.png"),
        "mae.fashion: pre-training",
    )?;
    let curves = |from_mae| {
        ctx.out_dir
            .join(finetune_dir(from_mae))
            .join("metrics.jsonl")
    };
    train_kit::training_curves_png(
        &[
            ("from MAE", &curves(true)),
            ("from scratch", &curves(false)),
        ],
        &ctx.out_dir.join("finetune_curves.png"),
        "mae.fashion: fine-tuning",
    )?;
    let epochs = |r: &mae::ProbeReport| -> Vec<(f64, f64)> {
        r.test_accuracy
            .iter()
            .enumerate()
            .map(|(i, a)| ((i + 1) as f64, 100.0 * a))
            .collect()
    };
    train_kit::line_plot(
        &ctx.out_dir.join("probe.png"),
        "Linear probe on Fashion-MNIST (BatchNorm + linear, LARS)",
        "probe epoch",
        "test accuracy (%)",
        &[
            Series::new("MAE encoder", epochs(&probe_mae)),
            Series::new("random-init encoder", epochs(&probe_rand)),
        ],
    )?;
    let ft = |r: &mae::FinetuneReport| -> Vec<(f64, f64)> {
        std::iter::once((0.0, 10.0))
            .chain(r.accuracy.iter().map(|&(e, a)| (e as f64, 100.0 * a)))
            .collect()
    };
    train_kit::line_plot(
        &ctx.out_dir.join("finetune.png"),
        "Fine-tuning on Fashion-MNIST, same budget",
        "epoch",
        "test accuracy (%)",
        &[
            Series::new("from MAE", ft(&ft_mae)),
            Series::new("from scratch", ft(&ft_scratch)),
        ],
    )?;
    let (pm, pr) = (
        100.0 * probe_mae.final_accuracy,
        100.0 * probe_rand.final_accuracy,
    );
    let last = |r: &mae::FinetuneReport| 100.0 * r.accuracy.last().map(|a| a.1).unwrap_or(0.0);
    let (fm, fs) = (last(&ft_mae), last(&ft_scratch));
    let b = budget(ctx.mode);
    Ok(Outcome {
        value: pm - pr,
        value_text: format!(
            "probe {pm:.2}% vs random init {pr:.2}% ({:+.2}); fine-tune on {} labels {fm:.2}% vs \
             scratch {fs:.2}% ({:+.2}); {} pre-training epochs",
            pm - pr,
            b.finetune_images,
            fm - fs,
            b.pretrain_epochs
        ),
        measured: Measured::new()
            .number(PROBE_GAIN, pm - pr)
            .number(FINETUNE_GAIN, fm - fs)
            .number(PROBE_MAE, pm),
        skipped: None,
        plots: vec![
            "probe.png".into(),
            "finetune.png".into(),
            "reconstructions.png".into(),
            "pretrain_loss.png".into(),
            "finetune_curves.png".into(),
        ],
        details: json!({
            "device": train_kit::device_description(ctx.device),
            "pretraining": meta,
            "probe": {"mae": probe_mae, "random_init": probe_rand, "train_images": b.probe_train,
                      "test_images": b.test, "features": "fc_norm(mean of patch tokens), 64-d"},
            "finetune": {"mae": ft_mae, "scratch": ft_scratch, "labelled_images": b.finetune_images,
                         "epochs": b.finetune_epochs,
                         "recipe": "AdamW, lr 2e-3 at batch 128, layer decay 0.75 (MAE) / 1.0 \
                                    (scratch), drop path 0.1, label smoothing 0.1, crops 50-100% \
                                    + flip, no mixup / CutMix / erasing"},
            "reconstruction_loss_on_8_test_images": recon,
            "model_file": model_file(0.75),
        }),
    })
}

// ------------------------------------------------------------------ mae.mask-ratio

fn run_mask_ratio(ctx: &Ctx) -> Result<Outcome> {
    let data = fashion(ctx)?;
    let ratios = [0.25, 0.5, 0.75, 0.9];
    let mut rows = Vec::new();
    for &ratio in &ratios {
        let (path, meta, source) = if ratio == 0.75 {
            shared_or_pretrain(ctx, &data, ratio)?
        } else {
            let (p, m) = pretrain_fashion(ctx, &data, ratio)?;
            (p, m, "pre-trained here")
        };
        let r = probe(ctx, &path, &fashion_config(ratio), &data)?;
        let loss = meta["report"]["epoch_loss"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(Value::as_f64);
        rows.push((ratio, 100.0 * r.final_accuracy, loss, source));
    }
    train_kit::line_plot(
        &ctx.out_dir.join("mask_ratio.png"),
        "Linear probe vs mask ratio (Fashion-MNIST, equal pre-training epochs)",
        "mask ratio",
        "probe test accuracy (%)",
        &[Series::new(
            "MAE encoder probe",
            rows.iter().map(|r| (r.0, r.1)).collect(),
        )],
    )?;
    // The pre-training curves of the ratios trained here (0.75 may come from mae.fashion).
    let logs: Vec<(String, PathBuf)> = ratios
        .iter()
        .map(|r| {
            let log = ctx
                .out_dir
                .join(format!("pretrain_r{r}"))
                .join("metrics.jsonl");
            (format!("ratio {r}"), log)
        })
        .filter(|(_, log)| log.is_file())
        .collect();
    let logs: Vec<(&str, &Path)> = logs
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    train_kit::training_curves_png(
        &logs,
        &ctx.out_dir.join("pretrain_curves.png"),
        "mae.mask-ratio: pre-training at each ratio (norm-pix losses differ by ratio)",
    )?;
    let best = rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
    let best_ratio = rows
        .iter()
        .find(|r| r.1 == best)
        .map(|r| r.0)
        .unwrap_or(f64::NAN);
    let acc = |ratio: f64| {
        rows.iter()
            .find(|r| r.0 == ratio)
            .map(|r| r.1)
            .unwrap_or(f64::NAN)
    };
    // The lowest probe, NaN when any is (so that `> 15` fails as `all(> 15)` would).
    let lowest =
        rows.iter().map(|r| r.1).fold(
            f64::INFINITY,
            |lo, a| {
                if a.is_nan() || a < lo {
                    a
                } else {
                    lo
                }
            },
        );
    let list: Vec<String> = rows
        .iter()
        .map(|r| format!("{}: {:.2}%", r.0, r.1))
        .collect();
    Ok(Outcome {
        value: best_ratio,
        value_text: format!("best ratio {best_ratio} ({})", list.join(", ")),
        measured: Measured::new()
            .number(GAP_TO_BEST, best - acc(0.75))
            .number(OVER_QUARTER, acc(0.75) - acc(0.25))
            .number(LOWEST_PROBE, lowest),
        skipped: None,
        plots: vec!["mask_ratio.png".into(), "pretrain_curves.png".into()],
        details: json!({
            "rows": rows.iter().map(|r| json!({"mask_ratio": r.0, "probe_accuracy": r.1,
                "final_pretrain_loss": r.2, "model": r.3})).collect::<Vec<_>>(),
            "pretrain_epochs": budget(ctx.mode).pretrain_epochs,
            "note": "norm-pix losses are not comparable across ratios (different removed sets)",
        }),
    })
}

// ------------------------------------------------------------------ mae.full

const FULL_COMMAND: &str = "cargo xtask reproduce mae.full --full --device cuda --data-root DIR";

fn run_full(ctx: &Ctx) -> Result<Outcome> {
    let root = ctx
        .data_root
        .clone()
        .filter(|r| r.join("train").is_dir() && r.join("val").is_dir());
    let (Mode::Full, Device::Cuda(_), Some(root)) = (ctx.mode, ctx.device, root) else {
        return Ok(Outcome {
            value: f64::NAN,
            value_text: format!(
                "needs: ImageNet-1k (DIR/train, DIR/val in class folders) + a GPU: {FULL_COMMAND} \
                 (optional DIR/mae_pretrain_vit_base.safetensors, the official checkpoint \
                 converted with tools/convert_timm.py --pth, skips pre-training)"
            ),
            measured: Measured::new(),
            skipped: Some(Verdict::NeedsData),
            plots: vec![],
            details: json!({"paper_top1": 83.6, "official_finetuned_checkpoint": 83.664,
                            "command": FULL_COMMAND}),
        });
    };
    run_full_imagenet(ctx, &root)
}

/// `mae::recipe::imagenet_vit_b`: 1600 pre-training epochs (skipped with the official
/// checkpoint), 100 fine-tuning epochs; both resume from `ctx.out_dir`.
fn run_full_imagenet(ctx: &Ctx, root: &Path) -> Result<Outcome> {
    let official = root.join("mae_pretrain_vit_base.safetensors");
    let run = mae::recipe::ImageNetRun {
        root: root.to_path_buf(),
        out_dir: ctx.out_dir.clone(),
        pretrained: official.is_file().then_some(official),
        device: ctx.device,
        seed: ctx.seed,
    };
    let r = mae::recipe::imagenet_vit_b(&run)?;
    let acc = &r.finetune.accuracy;
    let top1 = 100.0 * acc.last().map(|a| a.1).unwrap_or(0.0);
    let curve = acc.iter().map(|&(e, a)| (e as f64, 100.0 * a)).collect();
    train_kit::line_plot(
        &ctx.out_dir.join("finetune.png"),
        "MAE ViT-B/16 fine-tuning on ImageNet-1k",
        "epoch",
        "top-1 (%)",
        &[Series::new("val top-1", curve)],
    )?;
    Ok(Outcome {
        value: top1,
        value_text: format!("{top1:.2}% top-1 (paper 83.6)"),
        measured: Measured::new().number(TOP1, top1),
        skipped: None,
        plots: vec!["finetune.png".into()],
        details: json!({"finetune": r.finetune, "pretrained": r.pretrained.display().to_string()}),
    })
}
