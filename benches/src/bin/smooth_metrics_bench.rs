//! The Rust half of the side-by-side smooth-metric timing (beside
//! `benches/python/smooth_metrics_bench.py`, the same work in PyTorch eager).
//!
//! `smooth_metrics_bench --model lovasz_softmax|smooth_ap --batch B --iters N --warmup W
//! --threads T` prints one JSON line: per-iteration wall times of one loss forward + backward
//! (the gradient with respect to the scores, as `torch.autograd.grad`) and samples/s.
//! `lovasz_softmax`: softmax + Lovasz-Softmax (`classes = present`) of `[B, 21, 128, 128]`
//! logits (the 8 x 21 x 128 x 128); `smooth_ap`: Smooth-AP (tau 0.01) of `[B, 128]`
//! embeddings, 16 samples per class (the 256-sample batch).

use anyhow::{bail, Result};
use losses_smooth_metrics as lsm;
use tch::{Kind, Tensor};

/// One side-by-side smooth-metric loss timing (forward + backward).
#[derive(clap::Parser, Debug)]
#[command(
    about = "Lovasz-Softmax or Smooth-AP timing, the Rust half of benches/python/smooth_metrics_bench.py"
)]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
}

fn main() -> Result<()> {
    let a = <Cli as clap::Parser>::parse()
        .step
        .resolve("lovasz_softmax", 8)?;
    tch::manual_seed(0);
    let d = a.device;
    let (x, labels) = match a.model.as_str() {
        "lovasz_softmax" => (
            Tensor::randn([a.batch, 21, 128, 128], (Kind::Float, d)),
            Tensor::randint(21, [a.batch, 128, 128], (Kind::Int64, d)),
        ),
        "smooth_ap" => {
            if a.batch % 16 != 0 {
                bail!(
                    "--batch {}: smooth_ap takes a multiple of 16 (16 per class)",
                    a.batch
                );
            }
            (
                Tensor::randn([a.batch, 128], (Kind::Float, d)),
                Tensor::arange(a.batch / 16, (Kind::Int64, d))
                    .repeat_interleave_self_int(16, None, None),
            )
        }
        other => bail!("--model: expected lovasz_softmax or smooth_ap, got {other}"),
    };
    let x = x.set_requires_grad(true);
    let opts = lsm::LovaszSoftmax::default();
    let step = || -> Result<()> {
        let loss = match a.model.as_str() {
            "lovasz_softmax" => lsm::lovasz_softmax(&x.softmax(1, Kind::Float), &labels, &opts)?,
            _ => lsm::smooth_ap_loss(&x, &labels, lsm::SMOOTH_AP_TAU)?,
        };
        drop(Tensor::run_backward(&[&loss], &[&x], false, false));
        Ok(())
    };
    let times = benches::time_steps(d, a.warmup, a.iters, step)?;
    let median = benches::median(&times);
    println!(
        "{}",
        serde_json::json!({
            "impl": "rust", "model": a.model, "batch": a.batch, "mode": "fwd+bwd",
            "device": format!("{:?}", d), "threads": tch::get_num_threads(),
            "times_s": times, "median_s": median, "images_per_s": a.batch as f64 / median,
        })
    );
    Ok(())
}
