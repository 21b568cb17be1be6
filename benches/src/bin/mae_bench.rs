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

use anyhow::Result;
use mae::MaeConfig;

fn main() -> Result<()> {
    let (mut mask_ratio, mut mask_tokens, mut phases_on) = (0.75, false, false);
    let a = benches::StepArgs::new("mae_vit_mini_patch4_32", 64).parse(|flag, value| {
        match flag {
            "--mask-ratio" => mask_ratio = value()?.parse()?,
            "--mask-tokens" => mask_tokens = true,
            "--phases" => phases_on = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
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
    let phases_s = phases_on.then(|| {
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
            "impl": "rust", "model": a.model, "batch": a.batch, "mask_ratio": mask_ratio,
            "mask_tokens": mask_tokens, "mode": "train", "device": format!("{:?}", a.device),
            "bf16": bf16, "threads": tch::get_num_threads(), "times_s": times, "median_s": median,
            "images_per_s": a.batch as f64 / median,
    });
    if let Some(p) = phases_s {
        line["phases_s"] = p.into();
    }
    println!("{line}");
    Ok(())
}
