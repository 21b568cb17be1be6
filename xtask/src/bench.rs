//! `cargo xtask bench`: the criterion benches, then the side-by-side runs against PyTorch eager:
//! a Rust binary of `benches` (`vit_bench`, `mae_bench`, `det_bench`) and its twin under
//! `benches/python/` doing the same work, in alternating rounds of one run each, so that both see
//! the same machine state.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

use crate::env::Env;
use crate::setup;
use crate::util::{self, say};

#[derive(clap::Args, Debug, Default)]
pub struct Opts {
    /// Only the side-by-side runs against PyTorch (no criterion).
    #[arg(long, conflicts_with = "criterion_only")]
    pub side_by_side_only: bool,
    /// Only criterion (no PyTorch).
    #[arg(long)]
    pub criterion_only: bool,
    /// Alternating rounds per side-by-side case.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Only the side-by-side cases whose label contains this text (case-insensitive), e.g.
    /// `--case ViT-B` or `--case COCO`.
    #[arg(long)]
    pub case: Option<String>,
    /// Arguments for criterion (`cargo bench -p benches -- ARGS`), e.g. a filter.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// One comparison: the Rust binary (of the `benches` package), its PyTorch twin, and the
/// arguments both take.
pub struct Case {
    pub label: &'static str,
    /// At most this many rounds (the pycocotools side of the COCO case takes minutes).
    pub max_rounds: usize,
    pub bin: &'static str,
    pub script: &'static str,
    pub args: &'static [&'static str],
    /// Arguments for the twin only (which reference implementation it runs).
    pub twin_args: &'static [&'static str],
}

/// det_bench's COCO evaluation on the benchmark files: timed once (pycocotools takes minutes).
const COCO_ONCE: &[&str] = &[
    "--mode",
    "coco",
    "--data-dir",
    "target/det-bench-data",
    "--iters",
    "1",
    "--warmup",
    "0",
];
/// The same, three timed runs after one untimed.
const COCO_ARGS: &[&str] = &[
    "--mode",
    "coco",
    "--data-dir",
    "target/det-bench-data",
    "--iters",
    "3",
    "--warmup",
    "1",
];

/// det-eval against the COCO evaluator `twin_args` picks in the twin script, on the same files.
const fn coco_case(
    label: &'static str,
    max_rounds: usize,
    args: &'static [&'static str],
    twin_args: &'static [&'static str],
) -> Case {
    Case {
        label,
        max_rounds,
        bin: "det_bench",
        script: "benches/python/det_bench.py",
        args,
        twin_args,
    }
}

/// dist's Gloo all-reduce (the c10d shim) against `torch.distributed` with backend "gloo": 2
/// processes over loopback, one float32 tensor; each side starts its own ranks. The runner's
/// time ratio is the inverse of the bus-bandwidth ratio (the bound is bandwidth >= 0.95, i.e.
/// time ratio <= 1.053).
const fn allreduce_case(label: &'static str, args: &'static [&'static str]) -> Case {
    Case {
        label,
        max_rounds: usize::MAX,
        bin: "allreduce_bench",
        script: "benches/python/allreduce_bench.py",
        args,
        twin_args: &[],
    }
}

/// What the issues ask to compare on the CPU.
pub const CPU_CASES: &[Case] = &[
    allreduce_case(
        "Gloo allreduce (sum), 1 MB float32, 2 processes over loopback, CPU (vs torch.distributed)",
        &["--size-mb", "1", "--iters", "200", "--warmup", "10"],
    ),
    allreduce_case(
        "Gloo allreduce (sum), 4 MB float32, 2 processes over loopback, CPU (vs torch.distributed)",
        &["--size-mb", "4", "--iters", "100", "--warmup", "5"],
    ),
    allreduce_case(
        "Gloo allreduce (sum), 16 MB float32, 2 processes over loopback, CPU (vs torch.distributed)",
        &["--size-mb", "16", "--iters", "60", "--warmup", "5"],
    ),
    allreduce_case(
        "Gloo allreduce (sum), 64 MB float32, 2 processes over loopback, CPU (vs torch.distributed)",
        &["--size-mb", "64", "--iters", "20", "--warmup", "2"],
    ),
    allreduce_case(
        "Gloo allreduce (sum), 256 MB float32, 2 processes over loopback, CPU (vs torch.distributed)",
        &["--size-mb", "256", "--iters", "8", "--warmup", "1"],
    ),
    Case {
        label: "ViT-S/16 forward, batch 8, 224, f32, CPU",
        max_rounds: usize::MAX,
        bin: "vit_bench",
        script: "benches/python/vit_bench.py",
        args: &[
            "--model",
            "vit_small_patch16_224",
            "--batch",
            "8",
            "--mode",
            "infer",
            "--device",
            "cpu",
            "--dtype",
            "f32",
            "--iters",
            "10",
            "--warmup",
            "2",
        ],
        twin_args: &[],
    },
    Case {
        label: "ViT-S/16 training step (forward, cross-entropy, backward, AdamW), batch 8, 224, f32, CPU (vs timm)",
        max_rounds: usize::MAX,
        bin: "vit_bench",
        script: "benches/python/vit_bench.py",
        args: &[
            "--model", "vit_small_patch16_224", "--batch", "8", "--mode", "train", "--iters", "5",
            "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "ViT-B/16 forward, batch 8, 224, f32, CPU (vs timm)",
        max_rounds: 3,
        bin: "vit_bench",
        script: "benches/python/vit_bench.py",
        args: &[
            "--model", "vit_base_patch16_224", "--batch", "8", "--mode", "infer", "--iters", "5",
            "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "ViT-B/16 forward with ToMe r = 16, batch 8, 224, f32, CPU (vs ToMe's algorithm on timm)",
        max_rounds: 3,
        bin: "vit_bench",
        script: "benches/python/vit_bench.py",
        args: &[
            "--model", "vit_base_patch16_224", "--batch", "8", "--mode", "infer", "--tome", "16",
            "--iters", "5", "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "MAE pre-training step (mini, patch 4, 32x32, mask 0.75), batch 64, f32, CPU",
        max_rounds: usize::MAX,
        bin: "mae_bench",
        script: "benches/python/mae_bench.py",
        args: &[
            "--model",
            "mae_vit_mini_patch4_32",
            "--batch",
            "64",
            "--device",
            "cpu",
            "--dtype",
            "f32",
            "--iters",
            "20",
            "--warmup",
            "3",
            "--mask-ratio",
            "0.75",
        ],
        twin_args: &[],
    },
    coco_case(
        "COCO bbox eval end to end, 5k images, 36k GT, 100 dets/image (vs pycocotools)",
        1,
        COCO_ONCE,
        &[],
    ),
    coco_case(
        "COCO bbox eval end to end, 5k images, 36k GT, 100 dets/image (vs hotcoco 1.3.0 (Rust, pycocotools-compatible))",
        usize::MAX,
        COCO_ARGS,
        &["--evaluator", "hotcoco"],
    ),
    coco_case(
        "COCO bbox eval end to end, 5k images, 36k GT, 100 dets/image (vs faster-coco-eval 1.8.0 (C++))",
        3,
        COCO_ARGS,
        &["--evaluator", "faster-coco-eval"],
    ),
    Case {
        label: "NMS 10k float32 boxes, IoU 0.5, CPU (vs torchvision.ops.nms)",
        max_rounds: usize::MAX,
        bin: "det_bench",
        script: "benches/python/det_bench.py",
        args: &[
            "--mode", "nms", "--boxes", "10000", "--iou", "0.5", "--iters", "20", "--warmup", "3",
        ],
        twin_args: &[],
    },
    Case {
        label: "Lovasz-Softmax fwd+bwd, 8x21x128x128, f32, CPU (vs smp's copy of Berman's)",
        max_rounds: usize::MAX,
        bin: "smooth_metrics_bench",
        script: "benches/python/smooth_metrics_bench.py",
        args: &[
            "--model", "lovasz_softmax", "--batch", "8", "--iters", "5", "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "Smooth-AP fwd+bwd, 256 x 128 (16 per class), f32, CPU (vs pytorch-metric-learning)",
        max_rounds: usize::MAX,
        bin: "smooth_metrics_bench",
        script: "benches/python/smooth_metrics_bench.py",
        args: &[
            "--model", "smooth_ap", "--batch", "256", "--iters", "10", "--warmup", "2",
        ],
        twin_args: &[],
    },
    Case {
        label: "det-pyramid ResNet-50 + FPN forward, 2x3x512x512, f32, CPU (vs torchvision)",
        max_rounds: usize::MAX,
        bin: "det_pyramid_bench",
        script: "benches/python/det_pyramid_bench.py",
        args: &[
            "--model", "r50", "--mode", "fpn", "--batch", "2", "--size", "512", "--iters", "5",
            "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "det-pyramid RetinaNet R50-FPN training step, 2x3x512x512, f32, CPU (vs torchvision)",
        max_rounds: usize::MAX,
        bin: "det_pyramid_bench",
        script: "benches/python/det_pyramid_bench.py",
        args: &[
            "--model", "r50", "--mode", "train", "--batch", "2", "--size", "512", "--iters", "3",
            "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "CenterNet ResNet-18 training step, 8x3x512x512, f32, CPU (vs the official layout in PyTorch)",
        max_rounds: usize::MAX,
        bin: "anchorfree_bench",
        script: "benches/python/anchorfree_bench.py",
        args: &[
            "--mode", "train", "--batch", "8", "--size", "512", "--iters", "3", "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "CenterNet ResNet-18 inference + decode, 8x3x512x512, f32, CPU (vs PyTorch)",
        max_rounds: usize::MAX,
        bin: "anchorfree_bench",
        script: "benches/python/anchorfree_bench.py",
        args: &[
            "--mode", "infer", "--batch", "8", "--size", "512", "--iters", "3", "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "CenterNet targets of a batch of 8 (20 boxes each), CPU (vs the official numpy code)",
        max_rounds: usize::MAX,
        bin: "anchorfree_bench",
        script: "benches/python/anchorfree_bench.py",
        args: &["--mode", "targets", "--iters", "10", "--warmup", "2"],
        twin_args: &[],
    },
    Case {
        label: "Fast YOLO training step, 8x3x448x448, loss included, f32, CPU (vs PyTorch eager)",
        max_rounds: usize::MAX,
        bin: "yolo_bench",
        script: "benches/python/yolo_bench.py",
        args: &[
            "--model", "fast", "--mode", "train", "--batch", "8", "--size", "448", "--iters", "3",
            "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "OadTR live frame (ring buffer), THUMOS'14 size, f32, CPU (vs the official model)",
        max_rounds: usize::MAX,
        bin: "oad_bench",
        script: "benches/python/oad_bench.py",
        args: &[
            "--model", "thumos_tsn", "--mode", "stream", "--iters", "10", "--warmup", "2",
        ],
        twin_args: &[],
    },
    Case {
        label: "OadTR training step, THUMOS'14 config, batch 128, f32, CPU (vs the official model)",
        max_rounds: 1,
        bin: "oad_bench",
        script: "benches/python/oad_bench.py",
        args: &[
            "--model", "thumos_tsn", "--mode", "train", "--batch", "128", "--iters", "2",
            "--warmup", "1",
        ],
        twin_args: &[],
    },
    Case {
        label: "MI benchmark, InfoNCE, separable critic, 5 levels x 400 steps, CPU",
        max_rounds: 3,
        bin: "contrastive_bench",
        script: "benches/python/contrastive_bench.py",
        args: &[
            "--model", "mi", "--batch", "64", "--estimator", "infonce", "--steps-per-level",
            "400", "--iters", "1", "--warmup", "0",
        ],
        twin_args: &[],
    },
    Case {
        label: "SimCLR NT-Xent step, MLP 784-512-128 encoder, batch 256, CPU",
        max_rounds: usize::MAX,
        bin: "contrastive_bench",
        script: "benches/python/contrastive_bench.py",
        args: &["--model", "ntxent", "--batch", "256", "--iters", "20", "--warmup", "3"],
        twin_args: &[],
    },
];

pub fn cmd(opts: &Opts) -> Result<()> {
    let env = setup::setup(setup::Opts {
        references: !opts.criterion_only,
        parity: !opts.criterion_only,
        announce: true,
        install: true,
    })?;
    let root = util::workspace_root()?;
    if !opts.side_by_side_only {
        let mut cmd = env.cargo(&root);
        cmd.args(["bench", "-p", "benches", "--bench", "bench_main"]);
        if !opts.args.is_empty() {
            cmd.arg("--").args(&opts.args);
        }
        util::run(&mut cmd)?;
    }
    if !opts.criterion_only {
        side_by_side(&env, &root, opts.rounds.max(1), opts.case.as_deref())?;
    }
    Ok(())
}

/// The cases whose label contains `filter` (case-insensitive); all without one.
fn selected(filter: Option<&str>) -> Vec<&'static Case> {
    let f = filter.map(str::to_lowercase);
    CPU_CASES
        .iter()
        .filter(|c| {
            f.as_ref()
                .is_none_or(|f| c.label.to_lowercase().contains(f.as_str()))
        })
        .collect()
}

fn side_by_side(env: &Env, root: &Path, rounds: usize, filter: Option<&str>) -> Result<()> {
    let cases = selected(filter);
    if cases.is_empty() {
        anyhow::bail!(
            "--case {:?} matches no side-by-side case; the labels are:\n{}",
            filter.unwrap_or(""),
            CPU_CASES
                .iter()
                .map(|c| c.label)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let out = util::run_stdout(env.cargo(root).args([
        "build",
        "--release",
        "-p",
        "benches",
        "--bins",
        "--message-format=json",
    ]))?;
    let python = env
        .get("CVLAB_PYTHON")
        .context("no CVLAB_PYTHON: the side-by-side runs need PyTorch and timm")?
        .to_owned();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    let mut results = Vec::new();
    for case in cases {
        let rounds = rounds.min(case.max_rounds);
        eprintln!(
            "== side by side: {} ({rounds} alternating rounds)",
            case.label
        );
        let rust = util::bin_executable(&out, case.bin)
            .with_context(|| format!("{} was not built", case.bin))?;
        let script = root.join(case.script);
        let (mut r_med, mut p_med) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let r = run_json(
                Command::new(&rust)
                    .args(case.args)
                    .args(["--threads", &threads]),
            )?;
            let p = run_json(
                Command::new(&python)
                    .arg(&script)
                    .args(case.args)
                    .args(case.twin_args)
                    .args(["--threads", &threads]),
            )?;
            let (rm, pm) = (median_s(&r)?, median_s(&p)?);
            eprintln!(
                "   round {}: rust {:.2} ms, pytorch {:.2} ms",
                round + 1,
                rm * 1e3,
                pm * 1e3
            );
            r_med.push(rm);
            p_med.push(pm);
        }
        let (r, p) = (cvlab_util::median(&r_med), cvlab_util::median(&p_med));
        results.push(json!({
            "case": case.label, "args": case.args, "threads": threads, "rounds": rounds,
            "rust_median_ms": r * 1e3, "pytorch_median_ms": p * 1e3, "ratio_rust_over_pytorch": r / p,
            "rust_round_medians_ms": r_med.iter().map(|v| v * 1e3).collect::<Vec<_>>(),
            "pytorch_round_medians_ms": p_med.iter().map(|v| v * 1e3).collect::<Vec<_>>(),
        }));
    }
    say!("\n| case | Rust (ms) | PyTorch eager (ms) | Rust / PyTorch |\n|---|---|---|---|")?;
    for r in &results {
        say!(
            "| {} | {:.2} | {:.2} | {:.3} |",
            r["case"].as_str().unwrap_or(""),
            r["rust_median_ms"].as_f64().unwrap_or(f64::NAN),
            r["pytorch_median_ms"].as_f64().unwrap_or(f64::NAN),
            r["ratio_rust_over_pytorch"].as_f64().unwrap_or(f64::NAN)
        )?;
    }
    let dir = util::target_dir(root).join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("side_by_side.json");
    cvlab_util::write_atomic(&path, serde_json::to_string_pretty(&results)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("written: {}", path.display());
    Ok(())
}

fn run_json(cmd: &mut Command) -> Result<Value> {
    let text = util::run_stdout(cmd)?;
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("expected one JSON line, got: {text}"))
}

fn median_s(v: &Value) -> Result<f64> {
    match v["median_s"].as_f64() {
        Some(m) if m > 0.0 => Ok(m),
        _ => bail!("no median_s in {v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_rounds() {
        assert!(median_s(&json!({"median_s": 0.0})).is_err());
        assert_eq!(median_s(&json!({"median_s": 0.5})).unwrap(), 0.5);
    }

    #[test]
    fn case_filter_is_case_insensitive_and_keeps_all_without_one() {
        assert_eq!(selected(None).len(), CPU_CASES.len());
        let coco = selected(Some("coco bbox"));
        assert_eq!(coco.len(), 3);
        assert!(coco.iter().all(|c| c.bin == "det_bench"));
        assert!(selected(Some("no such case")).is_empty());
    }
}
