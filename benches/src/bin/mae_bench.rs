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
//! `--phases` adds the medians of forward, backward and optimiser step, each synchronised;
//! `--host-time` the host's time to queue a step against the synchronised step (`--help`).

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use mae::MaeConfig;

/// One side-by-side MAE pre-training step timing.
#[derive(Parser, Debug)]
#[command(about = "MAE pre-training step timing, the Rust half of benches/python/mae_bench.py")]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
    /// Share of the patches removed.
    #[arg(long, default_value_t = 0.75)]
    mask_ratio: f64,
    /// The encoder-with-mask-tokens design (paper Table 1c) instead of the visible-only encoder.
    #[arg(long)]
    mask_tokens: bool,
    /// Also the medians of forward, backward and optimiser step, each synchronised.
    #[arg(long)]
    phases: bool,
    /// Also the host's time to issue a step (returning before the device finishes) against the
    /// synchronised step: how much of a step the GPU waits for the host (launch gaps).
    #[arg(long)]
    host_time: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (mask_ratio, mask_tokens, phases_on) = (cli.mask_ratio, cli.mask_tokens, cli.phases);
    let a = cli.step.resolve("mae_vit_mini_patch4_32", 64)?;
    tch::manual_seed(0);
    let mut cfg = MaeConfig::by_name(&a.model)?;
    cfg.mask_ratio = mask_ratio;
    cfg.encoder_mask_tokens = mask_tokens;
    let mut synthetic = mae::SyntheticStep::new(&cfg, a.device, a.batch, a.bf16)?;
    let bf16 = synthetic.bf16();
    let mut phases: [Vec<f64>; 3] = Default::default();
    let timed = std::cell::Cell::new(false); // warm-up steps are not recorded
    let mut step = || -> Result<()> {
        let mut mark = |i: usize, t: &mut Instant| {
            if phases_on && timed.get() {
                benches::sync(a.device);
                phases[i].push(t.elapsed().as_secs_f64());
                *t = Instant::now();
            }
        };
        let mut t = Instant::now();
        let out = synthetic.forward()?;
        mark(0, &mut t);
        synthetic.backward(&out)?;
        mark(1, &mut t);
        synthetic.optimizer_step()?;
        mark(2, &mut t);
        Ok(())
    };
    benches::time_steps(a.device, a.warmup, 0, &mut step)?;
    timed.set(true); // warm-up steps are not recorded in the phases
    let times = benches::time_steps(a.device, 0, a.iters, &mut step)?;
    // The host's time to queue a step: without a synchronisation at its end, a step returns as
    // soon as its last kernel is queued (or at the first operation inside it that waits for
    // the device). Each is followed by a synchronisation that is not timed.
    let issue_s = if cli.host_time {
        timed.set(false); // no synchronised phases inside the issue timing
        let mut issue = Vec::with_capacity(a.iters);
        for _ in 0..a.iters {
            benches::sync(a.device);
            let t0 = Instant::now();
            step()?;
            issue.push(t0.elapsed().as_secs_f64());
            benches::sync(a.device);
        }
        Some(benches::median(&issue))
    } else {
        None
    };
    let phases_s =
        phases_on.then(|| benches::phase_medians(&["forward", "backward", "optimizer"], &phases));
    let median = benches::median(&times);
    let mut line = serde_json::json!({
            "impl": "rust", "model": a.model, "batch": a.batch, "mask_ratio": mask_ratio,
            "mask_tokens": mask_tokens, "mode": "train", "device": format!("{:?}", a.device),
            "bf16": bf16, "threads": tch::get_num_threads(), "times_s": times, "median_s": median,
            "images_per_s": a.batch as f64 / median,
    });
    if let Some(issue) = issue_s {
        line["host_issue_s"] = issue.into();
        // Near 1: the host issues kernels no faster than the device runs them (launch-bound,
        // the device idles between kernels); near 0: the device is the bottleneck.
        line["host_share"] = (issue / median).into();
    }
    if let Some(p) = phases_s {
        line["phases_s"] = p;
    }
    println!("{line}");
    Ok(())
}
