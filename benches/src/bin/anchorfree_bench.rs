//! The Rust half of the side-by-side CenterNet timing (`benches/python/anchorfree_bench.py`
//! does the same work in PyTorch eager, and the targets with the official numpy code).
//!
//! `anchorfree_bench --mode train|infer|targets --batch 8 --size 512 [--width 64] [--classes 80]
//! --device cpu|cuda --dtype f32|bf16 --iters N --warmup W --threads T` prints one JSON line.
//! `train`: one CenterNet ResNet-18 step (trunk, three 4x4 deconvolutions to stride 4, heads of
//! 64; penalty-reduced focal loss + 0.1 size L1 + offset L1 on targets made once from 20 fixed
//! boxes per image, backward, Adam lr 5e-4 as the official recipe; BatchNorm in training mode).
//! `infer`: a no-grad forward + sigmoid + 3x3 peaks + top-100 decode. `targets`: the stride-4
//! targets (heatmap, size, offset, index, mask; 128 slots) of the batch's boxes, on the CPU.
//! `--phases` (train) adds the medians of forward, loss, backward and optimiser step, each
//! synchronised, beside the twin's same split.

use anyhow::{bail, Result};
use clap::Parser;
use det_anchorfree::centernet::{CenterNet, CenterNetConfig, CenterNetTargets};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// One side-by-side CenterNet timing.
#[derive(Parser, Debug)]
#[command(
    about = "CenterNet training step, inference or targets, the Rust half of \
                   benches/python/anchorfree_bench.py"
)]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
    /// train: forward + loss + backward + Adam; infer: forward + decode; targets: the
    /// stride-4 targets of the batch.
    #[arg(long, default_value = "train", value_parser = ["train", "infer", "targets"])]
    mode: String,
    /// Square input side (a multiple of 32).
    #[arg(long, default_value_t = 512)]
    size: i64,
    /// Trunk width (64 = ResNet-18; the deconvolutions and heads scale with it).
    #[arg(long, default_value_t = 64)]
    width: i64,
    /// Heatmap classes (80 = COCO).
    #[arg(long, default_value_t = 80)]
    classes: i64,
    /// train: also the medians of forward, loss, backward and optimiser step, each
    /// synchronised (`phases_s`), to see where the two halves differ.
    #[arg(long)]
    phases: bool,
}

/// 20 boxes per image, as fractions of the side: a fixed spread of sizes and places.
fn boxes(batch: i64, size: i64, device: Device) -> Tensor {
    let mut v = Vec::new();
    for i in 0..20 {
        let f = i as f32 / 20.0;
        let (x, y) = ((f * 7.3) % 0.8, (f * 3.1 + 0.05) % 0.8);
        let (w, h) = (
            0.03 + 0.15 * ((f * 5.0) % 1.0),
            0.03 + 0.12 * ((f * 9.0) % 1.0),
        );
        v.extend([x, y, x + w, y + h].map(|c| c * size as f32));
    }
    Tensor::from_slice(&v)
        .view([1, 20, 4])
        .repeat([batch, 1, 1])
        .to_device(device)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let a = cli.step.resolve("resnet18", 8)?;
    if cli.size % 32 != 0 || cli.size < 32 {
        bail!("--size: expected a multiple of 32, got {}", cli.size);
    }
    tch::manual_seed(0);
    let cfg = CenterNetConfig::small(cli.classes, cli.width);
    let b = boxes(a.batch, cli.size, a.device);
    let classes = (Tensor::arange(20, (Kind::Int64, a.device)) * 7)
        .remainder(cli.classes)
        .view([1, 20])
        .repeat([a.batch, 1]);
    let tcfg = cfg.targets();
    let mut phases: [Vec<f64>; 4] = Default::default();
    let times = if cli.mode == "targets" {
        let (bc, cc) = (b.to_device(Device::Cpu), classes.to_device(Device::Cpu));
        benches::time_steps(Device::Cpu, a.warmup, a.iters, || -> Result<()> {
            let t =
                CenterNetTargets::from_padded(&bc, &cc, (cli.size, cli.size), &tcfg, Device::Cpu)?;
            drop(t);
            Ok(())
        })?
    } else {
        let vs = nn::VarStore::new(a.device);
        let model = CenterNet::new(&vs.root(), &cfg)?;
        let x = Tensor::rand([a.batch, 3, cli.size, cli.size], (Kind::Float, a.device));
        if cli.mode == "infer" {
            benches::time_steps(a.device, a.warmup, a.iters, || -> Result<()> {
                let d = train_kit::autocast_bf16(a.bf16, || model.predict(&x))?;
                drop(d);
                Ok(())
            })?
        } else {
            let t_targets =
                CenterNetTargets::from_padded(&b, &classes, (cli.size, cli.size), &tcfg, a.device)?;
            let mut opt = train_kit::AdamW::with_single_group(
                &vs,
                train_kit::AdamWConfig {
                    lr: 5e-4,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            )?;
            let timed = std::cell::Cell::new(false); // warm-up steps are not recorded
            let mut step = || -> Result<()> {
                let mut mark = |i: usize, t: &mut Instant| {
                    if cli.phases && timed.get() {
                        benches::sync(a.device);
                        phases[i].push(t.elapsed().as_secs_f64());
                        *t = Instant::now();
                    }
                };
                let mut t = Instant::now();
                // The forward under autocast, the loss in float32 outside it, as the twin.
                let o = train_kit::autocast_bf16(a.bf16, || model.forward_t(&x, true))?;
                mark(0, &mut t);
                let o = det_anchorfree::centernet::CenterNetOutput {
                    hm: o.hm.to_kind(Kind::Float),
                    wh: o.wh.to_kind(Kind::Float),
                    reg: o.reg.to_kind(Kind::Float),
                };
                let l = model.loss(&o, &t_targets)?;
                mark(1, &mut t);
                opt.zero_grad();
                l.total.backward();
                mark(2, &mut t);
                opt.step()?;
                mark(3, &mut t);
                Ok(())
            };
            benches::time_steps(a.device, a.warmup, 0, &mut step)?;
            timed.set(true);
            benches::time_steps(a.device, 0, a.iters, &mut step)?
        }
    };
    let median = benches::median(&times);
    let mut line = serde_json::json!({
        "impl": "rust", "model": a.model, "batch": a.batch, "mode": cli.mode,
        "size": cli.size, "width": cli.width, "classes": cli.classes,
        "device": format!("{:?}", a.device), "bf16": a.bf16,
        "threads": tch::get_num_threads(), "times_s": times, "median_s": median,
        "images_per_s": a.batch as f64 / median,
    });
    if cli.phases && cli.mode == "train" {
        line["phases_s"] =
            benches::phase_medians(&["forward", "loss", "backward", "optimizer"], &phases);
    }
    println!("{line}");
    Ok(())
}
