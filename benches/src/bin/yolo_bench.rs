//! The Rust half of the side-by-side YOLO timing (`benches/python/yolo_bench.py` does the
//! same work in PyTorch eager).
//!
//! `yolo_bench --model fast|paper --mode train|infer --batch 8 --size 448 --device cpu
//! --iters N --warmup W --threads T [--dtype bf16]` prints one JSON line. `train`: one step of
//! the network (S = 7, B = 2, C = 20) with the paper's loss on five fixed boxes per image
//! (targets placed on the grid inside the step), backward, SGD 1e-3 / momentum 0.9 / weight
//! decay 5e-4. `infer`: a no-grad forward (`--dtype bf16`: under CUDA bf16 autocast, needs
//! `--device cuda`).

use anyhow::{bail, Result};
use tch::{nn, Kind, Tensor};
use train_kit::Optimizer;
use yolo::{grid_targets, yolo_loss, LossConfig, Yolo, YoloConfig};

/// One side-by-side YOLO timing: a training step (loss included) or an inference forward.
#[derive(clap::Parser, Debug)]
#[command(
    about = "YOLO v1 training step or inference, the Rust half of benches/python/yolo_bench.py"
)]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
    /// train: forward + loss + backward + SGD; infer: a no-grad forward.
    #[arg(long, default_value = "train", value_parser = ["train", "infer"])]
    mode: String,
    /// Square input side (448 in the paper).
    #[arg(long, default_value_t = 448)]
    size: i64,
}

fn main() -> Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let (mode, size) = (cli.mode, cli.size);
    let a = cli.step.resolve("fast", 8)?;
    let mut cfg = match a.model.as_str() {
        "fast" => YoloConfig::fast(),
        "paper" => YoloConfig::paper(),
        other => bail!("--model: expected fast or paper, got {other}"),
    };
    cfg.input = size;
    if a.bf16 && (!a.device.is_cuda() || mode != "infer") {
        bail!(
            "--dtype bf16: expected --device cuda and --mode infer, got {:?} / {mode}; run the \
             CPU comparison with --dtype f32",
            a.device
        );
    }
    tch::manual_seed(0);
    let vs = nn::VarStore::new(a.device);
    let model = Yolo::new(&vs.root(), &cfg)?;
    let x = Tensor::rand([a.batch, 3, size, size], (Kind::Float, a.device));
    let times = if mode == "infer" {
        benches::time_steps(a.device, a.warmup, a.iters, || -> Result<()> {
            let y =
                tch::no_grad(|| train_kit::autocast_bf16(a.bf16, || model.forward_t(&x, false)))?;
            drop(y);
            Ok(())
        })?
    } else {
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
        let classes = Tensor::from_slice(&[1i64, 7, 3, 19, 5])
            .view([1, 5])
            .repeat([a.batch, 1])
            .to_device(a.device);
        let loss_cfg = LossConfig::paper();
        let mut opt = train_kit::Sgd::with_single_group(
            &vs,
            train_kit::SgdConfig {
                lr: 1e-3,
                momentum: 0.9,
                weight_decay: 5e-4,
                ..Default::default()
            },
        )?;
        benches::time_steps(a.device, a.warmup, a.iters, || -> Result<()> {
            let pred = model.forward_t(&x, true)?;
            let t = grid_targets(
                &boxes,
                &classes,
                (size, size),
                cfg.grid,
                cfg.classes,
                0.0,
                pred.kind(),
            )?;
            let l = yolo_loss(&pred, &t, cfg.boxes, &loss_cfg)?;
            opt.zero_grad();
            l.total.backward();
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
