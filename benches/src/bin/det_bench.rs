//! The Rust half of the side-by-side detection timings (`cargo xtask bench` runs it beside
//! `benches/python/det_bench.py`, which does the same work with pycocotools / torchvision).
//!
//! `det_bench --mode coco --data-dir DIR [--iters N --warmup W --threads T]`: COCO bbox
//! evaluation end to end (read the instances and results JSON, evaluate, accumulate,
//! summarise) on a COCO-sized synthetic set (5,000 images, 80 categories, 36,000 boxes, 100
//! detections per image), written to DIR by this binary on first use (not timed).
//! `det_bench --mode nms --boxes N --iou 0.5`: greedy NMS on N float32 boxes (det-core's
//! splitmix64 boxes, which the Python side draws identically) on one core, as torchvision's
//! CPU kernel. Prints one JSON line with per-iteration wall times, the median, and the 12 stats
//! or the number of kept boxes so that both sides can be checked for the same answer.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use det_core::coco::{read_files, write_detections};
use det_core::synth::{coco_like, nms_boxes, SynthSpec};
use det_core::{evaluate, nms, CocoParams};

/// The detection timings (COCO evaluation or NMS).
#[derive(clap::Parser, Debug)]
#[command(about = "COCO evaluation or NMS timing, the Rust half of benches/python/det_bench.py")]
struct Args {
    /// coco: bbox evaluation end to end; nms: greedy NMS.
    #[arg(long, default_value = "nms", value_parser = ["coco", "nms"])]
    mode: String,
    /// Where the synthetic COCO files are (written on first use, not timed).
    #[arg(long, default_value = "target/det-bench-data")]
    data_dir: PathBuf,
    /// Boxes for `nms`.
    #[arg(long, default_value_t = 10_000)]
    boxes: usize,
    /// IoU threshold for `nms`.
    #[arg(long, default_value_t = 0.5)]
    iou: f64,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Writes the synthetic COCO-sized set into `dir` unless it is already there.
fn ensure_data(dir: &std::path::Path) -> Result<(PathBuf, PathBuf)> {
    let (gt, dt) = (dir.join("gt.json"), dir.join("results.json"));
    if !gt.exists() || !dt.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (g, d) = coco_like(&SynthSpec::coco_sized());
        eprintln!(
            "writing {} images, {} boxes, {} detections to {}",
            g.images.len(),
            g.annotations.len(),
            d.len(),
            dir.display()
        );
        g.write(&gt)?;
        write_detections(&dt, &d)?;
    }
    Ok((gt, dt))
}

fn main() -> Result<()> {
    let a = <Args as clap::Parser>::parse();
    if a.iters == 0 {
        bail!("--iters: expected at least 1");
    }
    let mut times = Vec::with_capacity(a.iters);
    let mut extra = serde_json::Value::Null;
    match a.mode.as_str() {
        "coco" => {
            let (gt_path, dt_path) = ensure_data(&a.data_dir)?;
            let params = CocoParams {
                threads: a.threads,
                ..CocoParams::default()
            };
            for i in 0..a.warmup + a.iters {
                let t0 = Instant::now();
                let (gt, dt) = read_files(&gt_path, &dt_path, a.threads)?;
                let ev = evaluate(&gt, &dt, &params)?;
                let t = t0.elapsed().as_secs_f64();
                if i >= a.warmup {
                    times.push(t);
                }
                extra = serde_json::json!({ "stats": ev.summary.stats });
            }
        }
        _ => {
            let (boxes, scores) = nms_boxes(a.boxes, 7);
            let mut kept = 0;
            for i in 0..a.warmup + a.iters {
                let t0 = Instant::now();
                let keep = nms(&boxes, &scores, a.iou)?;
                let t = t0.elapsed().as_secs_f64();
                kept = keep.len();
                if i >= a.warmup {
                    times.push(t);
                }
            }
            extra = serde_json::json!({ "kept": kept });
        }
    }
    let median = benches::median(&times);
    let mut out = serde_json::json!({
        "impl": "rust", "mode": a.mode, "boxes": a.boxes, "threads": a.threads,
        "times_s": times, "median_s": median,
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    println!("{out}");
    Ok(())
}
