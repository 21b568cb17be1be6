//! The Rust half of the side-by-side ViT timing (`cargo xtask bench` runs it beside
//! `benches/python/vit_bench.py`, which does the same work in PyTorch eager).
//!
//! `vit_bench --model vit_small_patch16_224 --batch 8 --mode infer|train --device cpu|cuda
//! --dtype f32|bf16 --iters N --warmup W --threads T` prints one JSON line: per-iteration
//! wall times (device synchronised) and images/s. `infer` is a no-grad forward; `train` is
//! forward + cross-entropy + backward + AdamW step (train-kit's flat AdamW). bf16 means CUDA
//! autocast with bfloat16, as `torch.autocast("cuda", torch.bfloat16)`.

use anyhow::{bail, Context, Result};
use tch::{nn, Device, Kind, Tensor};
use vit_core::{ViTConfig, VisionTransformer};

struct Args {
    model: String,
    batch: i64,
    mode: String,
    device: Device,
    bf16: bool,
    iters: usize,
    warmup: usize,
    threads: Option<i32>,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        model: "vit_small_patch16_224".into(),
        batch: 8,
        mode: "infer".into(),
        device: Device::Cpu,
        bf16: false,
        iters: 20,
        warmup: 3,
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = value()?,
            "--batch" => a.batch = value()?.parse()?,
            "--mode" => a.mode = value()?,
            "--device" => a.device = benches::parse_device(&value()?)?,
            "--dtype" => a.bf16 = benches::parse_bf16(&value()?)?,
            "--iters" => a.iters = value()?.parse()?,
            "--warmup" => a.warmup = value()?.parse()?,
            "--threads" => a.threads = Some(value()?.parse()?),
            other => bail!("unknown argument {other}"),
        }
    }
    if !["infer", "train"].contains(&a.mode.as_str()) {
        bail!("--mode: expected infer or train, got {}", a.mode);
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = parse()?;
    if let Some(t) = a.threads {
        tch::set_num_threads(t);
    }
    if a.device != Device::Cpu && !tch::Cuda::is_available() {
        bail!("--device cuda but CUDA is not available to libtorch");
    }
    tch::manual_seed(0);
    let cfg = ViTConfig::by_name(&a.model)?;
    let vs = nn::VarStore::new(a.device);
    let model = VisionTransformer::new(&vs.root(), &cfg)?;
    let (h, w) = cfg.img_size;
    let x = Tensor::randn([a.batch, 3, h, w], (Kind::Float, a.device));
    let y = Tensor::randint(cfg.num_classes, [a.batch], (Kind::Int64, a.device));
    let mut opt = if a.mode == "train" {
        let groups = train_kit::ParamGroup::decay_no_decay(&vs, 0.05);
        Some(train_kit::AdamW::new(
            &vs,
            groups,
            train_kit::AdamWConfig::default(),
        )?)
    } else {
        None
    };
    let step = || -> Result<()> {
        match opt.as_mut() {
            None => {
                let out = tch::no_grad(|| {
                    train_kit::autocast_bf16(a.bf16, || model.forward_t(&x, false))
                })?;
                drop(out);
            }
            Some(opt) => {
                let loss = train_kit::autocast_bf16(a.bf16, || -> Result<Tensor> {
                    Ok(model.forward_t(&x, true)?.cross_entropy_for_logits(&y))
                })?;
                opt.zero_grad();
                loss.backward();
                opt.step()?;
            }
        }
        Ok(())
    };
    let times = benches::time_steps(a.device, a.warmup, a.iters, step)?;
    let median = benches::median(&times);
    println!(
        "{}",
        serde_json::json!({
            "impl": "rust", "model": a.model, "batch": a.batch, "mode": a.mode,
            "device": format!("{:?}", a.device), "bf16": a.bf16,
            "threads": tch::get_num_threads(), "times_s": times, "median_s": median,
            "images_per_s": a.batch as f64 / median,
        })
    );
    Ok(())
}
