//! The Rust half of the side-by-side det-pyramid timing (`benches/python/det_pyramid_bench.py`
//! does the same work with torchvision in PyTorch eager).
//!
//! `det_pyramid_bench --model r50|r18 --mode fpn|train --batch 2 --size 512 [--width 64]
//! --device cpu --iters N --warmup W --threads T` prints one JSON line. `fpn`: a no-grad ResNet + FPN
//! (P2-P6, max-pool P6, 256 channels) forward on `[B, 3, size, size]`. `train`: one RetinaNet
//! step (P3-P7 with P6 from P5 as torchvision's `retinanet_resnet50_fpn`, 91 classes, four
//! 3x3 convs per subnet, focal loss + L1 box loss on 5 fixed boxes per image, backward, SGD
//! 0.01 / momentum 0.9 / weight decay 1e-4), BatchNorm trainable as torchvision without
//! pre-trained weights.
//!
//! `--dtype bf16` runs the step's forward under CUDA bf16 autocast (the loss in float32 on the
//! head outputs, as autocast keeps `binary_cross_entropy_with_logits` in float32) for the
//! GPU comparison; it needs `--device cuda` and is refused on the CPU (no CPU autocast here).

use anyhow::{bail, Result};
use det_pyramid::{
    BoxLoss, Depth, Fpn, FpnConfig, ResNet, ResNetConfig, ResNetFpn, RetinaNet, RetinaNetConfig,
    Targets, TopLevels, ValidRange,
};
use tch::{nn, Kind, Tensor};
use train_kit::Optimizer;

/// One side-by-side det-pyramid timing: a ResNet + FPN forward or a RetinaNet training step.
#[derive(clap::Parser, Debug)]
#[command(
    about = "ResNet + FPN forward or RetinaNet training step, the Rust half of \
             benches/python/det_pyramid_bench.py"
)]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
    /// fpn: a no-grad ResNet + FPN forward; train: one RetinaNet step.
    #[arg(long, default_value = "fpn", value_parser = ["fpn", "train"])]
    mode: String,
    /// Square input side.
    #[arg(long, default_value_t = 512)]
    size: i64,
    /// Trunk width (64 = torchvision's); the FPN and head keep 4x that width.
    #[arg(long, default_value_t = 64)]
    width: i64,
}

fn main() -> Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let (mode, size, width) = (cli.mode, cli.size, cli.width);
    let a = cli.step.resolve("r50", 2)?;
    let depth = match a.model.as_str() {
        "r50" => Depth::R50,
        "r18" => Depth::R18,
        other => bail!("--model: expected r50 or r18, got {other}"),
    };
    if a.bf16 && !a.device.is_cuda() {
        bail!(
            "--dtype bf16: expected --device cuda (CUDA bf16 autocast), got {:?}; \
             run the CPU comparison with --dtype f32",
            a.device
        );
    }
    tch::manual_seed(0);
    let vs = nn::VarStore::new(a.device);
    // `--width`: a reduced trunk (64 = torchvision's); the FPN and head keep 4x that width.
    let trunk_cfg = ResNetConfig::small(depth, width);
    let d = 4 * width;
    let c = trunk_cfg.channels();
    let x = Tensor::rand([a.batch, 3, size, size], (Kind::Float, a.device));
    let times = if mode == "fpn" {
        let trunk = ResNet::new(&(vs.root() / "body"), &trunk_cfg)?;
        let fpn = Fpn::new(&(vs.root() / "fpn"), &FpnConfig::p2_p6(c, d))?;
        benches::time_steps(a.device, a.warmup, a.iters, || -> Result<()> {
            let p = tch::no_grad(|| {
                train_kit::autocast_bf16(a.bf16, || -> Result<_> {
                    Ok(fpn.forward_features(&trunk.forward_t(&x, false)?)?)
                })
            })?;
            drop(p);
            Ok(())
        })?
    } else {
        let fpn_cfg = FpnConfig {
            top: TopLevels::P6P7 { from_p5: true },
            ..FpnConfig::retinanet(c, d)
        };
        let bb = ResNetFpn::new(&(vs.root() / "backbone"), &trunk_cfg, &fpn_cfg)?;
        let cfg = RetinaNetConfig {
            num_classes: 91,
            box_loss: BoxLoss::SmoothL1 { beta: 0.0 },
            ..Default::default()
        };
        let model = RetinaNet::new(&vs.root(), Box::new(bb), &cfg)?;
        let s = size as f32;
        let one: Vec<f32> = [
            [0.1f32, 0.1, 0.3, 0.4],
            [0.5, 0.5, 0.9, 0.8],
            [0.2, 0.6, 0.3, 0.7],
            [0.6, 0.1, 0.95, 0.3],
            [0.4, 0.4, 0.45, 0.47],
        ]
        .iter()
        .flatten()
        .map(|v| v * s)
        .collect();
        let boxes = Tensor::from_slice(&one)
            .view([1, 5, 4])
            .repeat([a.batch, 1, 1])
            .to_device(a.device);
        let classes = Tensor::from_slice(&[1i64, 7, 3, 20, 55])
            .view([1, 5])
            .repeat([a.batch, 1])
            .to_device(a.device);
        let targets = Targets {
            boxes: &boxes,
            classes: &classes,
            ignore: None,
            size_scale: 1.0,
            range: ValidRange::ALL,
        };
        let mut opt = train_kit::Sgd::with_single_group(
            &vs,
            train_kit::SgdConfig {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 1e-4,
                ..Default::default()
            },
        )?;
        benches::time_steps(a.device, a.warmup, a.iters, || -> Result<()> {
            let mut out = train_kit::autocast_bf16(a.bf16, || model.forward_t(&x, true))?;
            for t in out.cls.iter_mut().chain(out.reg.iter_mut()) {
                *t = t.to_kind(Kind::Float);
            }
            let loss = model.loss(&out, &targets)?;
            opt.zero_grad();
            loss.total.backward();
            opt.step()?;
            Ok(())
        })?
    };
    let median = benches::median(&times);
    println!(
        "{}",
        serde_json::json!({
            "impl": "rust", "model": a.model, "batch": a.batch, "mode": mode, "size": size,
            "device": format!("{:?}", a.device), "bf16": a.bf16,
            "threads": tch::get_num_threads(), "times_s": times, "median_s": median,
            "images_per_s": a.batch as f64 / median,
        })
    );
    Ok(())
}
