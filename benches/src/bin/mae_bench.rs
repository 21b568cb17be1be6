//! The Rust half of the side-by-side MAE timing (`cargo xtask bench` runs it beside
//! `benches/python/mae_bench.py`, which does the same work in PyTorch eager).
//!
//! `mae_bench --model mae_vit_mini_patch4_32 --batch 64 --device cpu|cuda --dtype f32|bf16
//! --iters N --warmup W --threads T --mask-ratio 0.75` prints one JSON line: per-step wall
//! times (device synchronised) and images/s. A step is one MAE pre-training step: random
//! masking, encoder on the visible patches, decoder, loss on the removed patches, backward and
//! AdamW (0.9, 0.95) on train-kit's flat buffers, weight decay 0.05 on weights only. bf16 means
//! CUDA autocast with bfloat16, as `torch.autocast("cuda", torch.bfloat16)`.
//! `--mask-tokens` times the encoder-with-mask-tokens design (paper Table 1c) instead;
//! `--phases` adds the medians of forward, backward and optimiser step, each synchronised.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use mae::{MaeConfig, MaskedAutoencoder};
use tch::{nn, Device, Kind, Tensor};

struct Args {
    model: String,
    batch: i64,
    device: Device,
    bf16: bool,
    iters: usize,
    warmup: usize,
    threads: Option<i32>,
    mask_ratio: f64,
    mask_tokens: bool,
    phases: bool,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        model: "mae_vit_mini_patch4_32".into(),
        batch: 64,
        device: Device::Cpu,
        bf16: false,
        iters: 20,
        warmup: 3,
        threads: None,
        mask_ratio: 0.75,
        mask_tokens: false,
        phases: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--mask-tokens" => {
                a.mask_tokens = true;
                continue;
            }
            "--phases" => {
                a.phases = true;
                continue;
            }
            _ => {}
        }
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = value()?,
            "--batch" => a.batch = value()?.parse()?,
            "--device" => a.device = benches::parse_device(&value()?)?,
            "--dtype" => a.bf16 = benches::parse_bf16(&value()?)?,
            "--iters" => a.iters = value()?.parse()?,
            "--warmup" => a.warmup = value()?.parse()?,
            "--threads" => a.threads = Some(value()?.parse()?),
            "--mask-ratio" => a.mask_ratio = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    if a.iters == 0 {
        bail!("--iters must be >= 1");
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
    let mut cfg = MaeConfig::by_name(&a.model)?;
    cfg.mask_ratio = a.mask_ratio;
    cfg.encoder_mask_tokens = a.mask_tokens;
    let vs = nn::VarStore::new(a.device);
    let model = MaskedAutoencoder::new(&vs.root(), &cfg)?;
    let e = &cfg.encoder;
    let x = Tensor::randn(
        [a.batch, e.in_chans, e.img_size.0, e.img_size.1],
        (Kind::Float, a.device),
    );
    let groups = mae::pretrain::pretrain_param_groups(&vs, 0.05, false);
    let mut opt = train_kit::AdamW::new(&vs, groups, train_kit::AdamWConfig::mae_pretrain())?;
    let bf16 = a.bf16 && a.device != Device::Cpu;
    let mut phases: [Vec<f64>; 3] = Default::default();
    let timed = std::cell::Cell::new(false); // warm-up steps are not recorded
    let mut step = || -> Result<()> {
        let mut mark = |i: usize, t: &mut Instant| {
            if a.phases && timed.get() {
                benches::sync(a.device);
                phases[i].push(t.elapsed().as_secs_f64());
                *t = Instant::now();
            }
        };
        let mut t = Instant::now();
        let out = train_kit::autocast_bf16(bf16, || model.forward_t(&x, true))?;
        mark(0, &mut t);
        opt.zero_grad();
        out.loss.backward();
        mark(1, &mut t);
        opt.step()?;
        mark(2, &mut t);
        Ok(())
    };
    benches::time_steps(a.device, a.warmup, 0, &mut step)?;
    timed.set(true); // warm-up steps are not recorded in the phases
    let times = benches::time_steps(a.device, 0, a.iters, &mut step)?;
    let phases_s = a.phases.then(|| {
        let names = ["forward", "backward", "optimizer"];
        let map: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&phases)
            .map(|(n, v)| (n.to_string(), benches::median(v).into()))
            .collect();
        map
    });
    let median = benches::median(&times);
    let mut line = serde_json::json!({
            "impl": "rust", "model": a.model, "batch": a.batch, "mask_ratio": a.mask_ratio,
            "mask_tokens": a.mask_tokens, "mode": "train", "device": format!("{:?}", a.device),
            "bf16": bf16, "threads": tch::get_num_threads(), "times_s": times, "median_s": median,
            "images_per_s": a.batch as f64 / median,
    });
    if let Some(p) = phases_s {
        line["phases_s"] = p.into();
    }
    println!("{line}");
    Ok(())
}
