//! CUDA correctness checks for a lent GPU, run by `benches/gpu/gpu_check.sh` before its timings.
//!
//! The CPU parity tests show the models equal timm and the official MAE; these show the same
//! models give the same numbers on the device, so the parity carries over:
//! - `vit-cross-device`: ViT logits on the device against the CPU, same weights and input;
//! - `mae-cross-device`: the MAE loss and predictions with the same masking noise, device vs CPU;
//! - `vit-bf16-autocast`: logits under bf16 autocast are bfloat16 (autocast really ran) and close
//!   to float32 ones;
//! - `sdpa-backend`: the attention kernel libtorch picks for the ViT shapes in bf16 (flash
//!   attention expected on an H100 / H200);
//! - `vit-train-finite`: a few bf16 training steps on one batch: every loss finite, the last below
//!   the first.
//!
//! One JSON line per check (`check`, `value`, `bound`, `pass`, `note`). With `--device cpu` the
//! same code runs CPU against CPU, at the sizes given, so the script is known to work before a
//! device is lent.

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

/// CUDA correctness checks of the ViT and MAE models against the CPU.
#[derive(Parser, Debug)]
#[command(about = "CUDA correctness checks (device against CPU, bf16 autocast, attention kernel)")]
struct Cli {
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "cuda", value_parser = benches::parse_device)]
    device: Device,
    /// The ViT preset checked.
    #[arg(long, default_value = "vit_base_patch16_224")]
    vit: String,
    /// The MAE preset checked.
    #[arg(long, default_value = "mae_vit_base_patch16")]
    mae: String,
    /// Images per check.
    #[arg(long, default_value_t = 4)]
    batch: i64,
    /// Training steps of `vit-train-finite`.
    #[arg(long, default_value_t = 5)]
    steps: usize,
}

/// One check's result line.
fn report(check: &str, value: f64, bound: &str, pass: bool, note: &str) {
    println!(
        "{}",
        json!({"check": check, "value": value, "bound": bound, "pass": pass, "note": note})
    );
}

/// max |a - b| / max |b| (0 when both are zero).
fn rel_max(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Double);
    let diff = f64::try_from((&a - &b).abs().max())?;
    let scale = f64::try_from(b.abs().max())?;
    Ok(if scale == 0.0 { diff } else { diff / scale })
}

/// ||a - b|| / ||b||.
fn rel_l2(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Double);
    let num = f64::try_from((&a - &b).norm())?;
    let den = f64::try_from(b.norm())?;
    Ok(if den == 0.0 { num } else { num / den })
}

fn sdpa_name(choice: i64) -> &'static str {
    // at::sdp::SDPBackend in libtorch 2.11.
    match choice {
        0 => "math",
        1 => "flash_attention",
        2 => "efficient_attention",
        3 => "cudnn_attention",
        4 => "overrideable",
        _ => "error",
    }
}

fn vit_checks(cli: &Cli) -> Result<()> {
    use vit_core::{ViTConfig, VisionTransformer};
    let cfg = ViTConfig::by_name(&cli.vit)?;
    tch::manual_seed(0);
    let cpu_vs = nn::VarStore::new(Device::Cpu);
    let cpu = VisionTransformer::new(&cpu_vs.root(), &cfg)?;
    let mut dev_vs = nn::VarStore::new(cli.device);
    let dev = VisionTransformer::new(&dev_vs.root(), &cfg)?;
    dev_vs.copy(&cpu_vs)?;
    let (h, w) = cfg.img_size;
    let x = Tensor::randn([cli.batch, 3, h, w], (Kind::Float, Device::Cpu));
    let xd = x.to_device(cli.device);
    let want = tch::no_grad(|| cpu.forward_t(&x, false))?;
    let got = tch::no_grad(|| dev.forward_t(&xd, false))?;
    // TF32 convolutions (cuDNN's default) and other reduction orders: 1e-2 of the largest logit.
    let d = rel_max(&got, &want)?;
    report(
        "vit-cross-device",
        d,
        "max|diff| / max|logit| <= 1e-2",
        d <= 1e-2,
        &format!("{} f32, {:?} vs CPU", cli.vit, cli.device),
    );

    let on_cuda = matches!(cli.device, Device::Cuda(_));
    let bf = tch::no_grad(|| train_kit::autocast_bf16(on_cuda, || dev.forward_t(&xd, false)))?;
    let kind_ok = if on_cuda {
        bf.kind() == Kind::BFloat16
    } else {
        bf.kind() == Kind::Float
    };
    let e = rel_l2(&bf, &got)?;
    report(
        "vit-bf16-autocast",
        e,
        "||bf16 - f32|| / ||f32|| <= 5e-2 and logits in bf16 (CUDA) / f32 (CPU, no autocast)",
        kind_ok && e <= 5e-2,
        &format!("logits {:?}", bf.kind()),
    );

    let heads = cfg.num_heads;
    let n = (h / cfg.patch_size) * (w / cfg.patch_size) + 1;
    let kind = if on_cuda { Kind::BFloat16 } else { Kind::Float };
    let q = Tensor::randn(
        [cli.batch, heads, n, cfg.embed_dim / heads],
        (kind, cli.device),
    );
    let choice =
        Tensor::internal_fused_sdp_choice(&q, &q, &q, None::<Tensor>, 0.0, false, None, false);
    let name = sdpa_name(choice);
    let fused = choice > 0 && name != "error";
    report(
        "sdpa-backend",
        choice as f64,
        "a fused kernel (flash expected on H100 / H200); CPU: any",
        if on_cuda { fused } else { choice >= 0 },
        &format!(
            "{name} for [{}, {heads}, {n}, {}] {kind:?}",
            cli.batch,
            cfg.embed_dim / heads
        ),
    );

    let y = Tensor::randint(cfg.num_classes, [cli.batch], (Kind::Int64, cli.device));
    let mut opt = train_kit::AdamW::new(
        &dev_vs,
        train_kit::ParamGroup::decay_no_decay(&dev_vs, 0.05),
        train_kit::AdamWConfig {
            lr: 1e-4,
            ..Default::default()
        },
    )?;
    let mut losses = Vec::with_capacity(cli.steps);
    for _ in 0..cli.steps {
        let loss = train_kit::autocast_bf16(on_cuda, || -> Result<Tensor> {
            Ok(dev.forward_t(&xd, true)?.cross_entropy_for_logits(&y))
        })?;
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        losses.push(f64::try_from(&loss)?);
    }
    let first = *losses.first().context("--steps must be >= 1")?;
    let last = *losses.last().context("--steps must be >= 1")?;
    report(
        "vit-train-finite",
        last,
        "every loss finite and the last below the first",
        losses.iter().all(|l| l.is_finite()) && last < first,
        &format!("losses {losses:.4?}"),
    );
    Ok(())
}

fn mae_checks(cli: &Cli) -> Result<()> {
    use mae::{MaeConfig, MaskedAutoencoder};
    let cfg = MaeConfig::by_name(&cli.mae)?;
    tch::manual_seed(0);
    let cpu_vs = nn::VarStore::new(Device::Cpu);
    let cpu = MaskedAutoencoder::new(&cpu_vs.root(), &cfg)?;
    let mut dev_vs = nn::VarStore::new(cli.device);
    let dev = MaskedAutoencoder::new(&dev_vs.root(), &cfg)?;
    dev_vs.copy(&cpu_vs)?;
    let enc = &cfg.encoder;
    let (h, w) = enc.img_size;
    let l = (h / enc.patch_size) * (w / enc.patch_size);
    let x = Tensor::randn([cli.batch, enc.in_chans, h, w], (Kind::Float, Device::Cpu));
    let noise = Tensor::rand([cli.batch, l], (Kind::Float, Device::Cpu));
    let want = tch::no_grad(|| cpu.forward_masked(&x, cfg.mask_ratio, Some(&noise), false))?;
    let got = tch::no_grad(|| {
        dev.forward_masked(
            &x.to_device(cli.device),
            cfg.mask_ratio,
            Some(&noise.to_device(cli.device)),
            false,
        )
    })?;
    let same_mask = got.mask.to_device(Device::Cpu).equal(&want.mask);
    let d_loss = rel_max(&got.loss, &want.loss)?;
    let d_pred = rel_max(&got.pred, &want.pred)?;
    report(
        "mae-cross-device",
        d_loss.max(d_pred),
        "same mask; loss and predictions within 1e-2 (relative)",
        same_mask && d_loss <= 1e-2 && d_pred <= 1e-2,
        &format!(
            "{} f32, loss {d_loss:.2e}, pred {d_pred:.2e}, mask equal {same_mask}",
            cli.mae
        ),
    );
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.device != Device::Cpu && !tch::Cuda::is_available() {
        anyhow::bail!(
            "--device {:?} but CUDA is not available to libtorch",
            cli.device
        );
    }
    if cli.batch < 1 {
        anyhow::bail!("--batch must be >= 1, got {}", cli.batch);
    }
    vit_checks(&cli)?;
    mae_checks(&cli)?;
    Ok(())
}
