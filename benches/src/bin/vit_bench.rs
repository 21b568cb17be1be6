//! The Rust half of the side-by-side ViT timing (`cargo xtask bench` runs it beside
//! `benches/python/vit_bench.py`, which does the same work in PyTorch eager).
//!
//! `vit_bench --model vit_small_patch16_224 --batch 8 --mode infer|train --device cpu|cuda
//! --dtype f32|bf16 --iters N --warmup W --threads T` prints one JSON line: per-iteration
//! wall times (device synchronised) and images/s. `infer` is a no-grad forward; `train` is
//! forward + cross-entropy + backward + AdamW step (train-kit's flat AdamW). bf16 means CUDA
//! autocast with bfloat16, as `torch.autocast("cuda", torch.bfloat16)`. `--ddp` (train) adds
//! data parallel's gradient step at world size 1: the gradients averaged in 25 MB buckets
//! (train-kit's `GradBuckets`) over a process group of one rank (NCCL on CUDA, Gloo on the CPU)
//! before the optimiser step, to compare with the plain step.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use tch::{nn, Device, Kind, Tensor};
use vit_core::{ViTConfig, VisionTransformer};

/// One side-by-side ViT timing: a no-grad forward (`infer`) or a training step (`train`).
#[derive(Parser, Debug)]
#[command(
    about = "ViT forward or training step timing, the Rust half of benches/python/vit_bench.py"
)]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
    /// infer: no-grad forward; train: forward + cross-entropy + backward + AdamW.
    #[arg(long, default_value = "infer", value_parser = ["infer", "train"])]
    mode: String,
    /// ToMe: tokens merged per block (infer only; 0 = none), as the twin's `--tome`.
    #[arg(long, default_value_t = 0)]
    tome: i64,
    /// train only: average the gradients over a process group of one rank before the optimiser
    /// step (NCCL on CUDA, Gloo on the CPU), as data-parallel training does.
    #[arg(long)]
    ddp: bool,
}

/// A process group of this process alone (it still rendezvous through a TCPStore).
fn world_of_one(device: Device) -> Result<dist::ProcessGroup> {
    let rv = dist::Rendezvous {
        master_addr: "127.0.0.1".into(),
        master_port: cvlab_util::launch::free_port()?,
        rank: 0,
        world_size: 1,
        local_rank: 0,
        local_world_size: 1,
    };
    let backend = if device.is_cuda() {
        dist::Backend::Nccl
    } else {
        dist::Backend::Gloo
    };
    Ok(dist::ProcessGroup::new(
        &rv,
        backend,
        Duration::from_secs(300),
    )?)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (mode, tome) = (cli.mode, cli.tome);
    if tome < 0 || (tome > 0 && mode != "infer") {
        anyhow::bail!("--tome: expected r >= 0 with --mode infer, got {tome} with --mode {mode}");
    }
    if cli.ddp && mode != "train" {
        anyhow::bail!("--ddp: expected --mode train, got --mode {mode}");
    }
    let a = cli.step.resolve("vit_small_patch16_224", 8)?;
    tch::manual_seed(0);
    let cfg = ViTConfig::by_name(&a.model)?;
    let vs = nn::VarStore::new(a.device);
    let model = VisionTransformer::new(&vs.root(), &cfg)?;
    let (h, w) = cfg.img_size;
    let x = Tensor::randn([a.batch, 3, h, w], (Kind::Float, a.device));
    let y = Tensor::randint(cfg.num_classes, [a.batch], (Kind::Int64, a.device));
    let mut opt = if mode == "train" {
        let groups = train_kit::ParamGroup::decay_no_decay(&vs, 0.05);
        Some(train_kit::AdamW::new(
            &vs,
            groups,
            train_kit::AdamWConfig::default(),
        )?)
    } else {
        None
    };
    let ddp = match (&opt, cli.ddp) {
        (Some(o), true) => {
            let params = o.params().into_iter().map(|(_, t)| t).collect();
            Some((world_of_one(a.device)?, train_kit::GradBuckets::new(params)))
        }
        _ => None,
    };
    let step = || -> Result<()> {
        match opt.as_mut() {
            None => {
                let out = tch::no_grad(|| {
                    train_kit::autocast_bf16(a.bf16, || {
                        if tome > 0 {
                            model.forward_tome(&x, vit_core::ToMe::new(tome))
                        } else {
                            model.forward_t(&x, false)
                        }
                    })
                })?;
                drop(out);
            }
            Some(opt) => {
                let loss = train_kit::autocast_bf16(a.bf16, || -> Result<Tensor> {
                    Ok(model.forward_t(&x, true)?.cross_entropy_for_logits(&y))
                })?;
                opt.zero_grad();
                loss.backward();
                if let Some((group, grads)) = &ddp {
                    grads.all_reduce_mean(group, 0.0, a.device)?;
                }
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
            "impl": "rust", "model": a.model, "batch": a.batch, "mode": mode,
            "device": format!("{:?}", a.device), "bf16": a.bf16,
            "threads": tch::get_num_threads(), "tome_r": tome, "ddp": cli.ddp, "times_s": times, "median_s": median,
            "images_per_s": a.batch as f64 / median,
        })
    );
    Ok(())
}
