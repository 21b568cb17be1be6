//! `det-eval --gt instances.json --dt results.json [--threads N] [--json out.json]`: COCO bbox
//! evaluation, printing the same summary as pycocotools' `COCOeval.summarize()`. Output goes
//! through `cvlab_util::pipe`, so `det-eval ... | head -1` exits quietly with status 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use cvlab_util::pipe::{out, outln};
use det_core::coco::{read_files, STAT_NAMES};
use det_core::{evaluate, CocoParams};

const USAGE: &str =
    "usage: det-eval --gt instances.json --dt results.json [--threads N] [--json out.json]";

fn run() -> Result<(), String> {
    let (mut gt, mut dt, mut json, mut threads) = (None, None, None, 0usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--gt" => gt = Some(PathBuf::from(value()?)),
            "--dt" => dt = Some(PathBuf::from(value()?)),
            "--json" => json = Some(PathBuf::from(value()?)),
            "--threads" => {
                let v = value()?;
                threads = v
                    .parse()
                    .map_err(|_| format!("--threads: expected a number, got {v}"))?
            }
            "-h" | "--help" => {
                outln(USAGE).map_err(|e| format!("stdout: {e}"))?;
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let gt = gt.ok_or(format!("missing --gt\n{USAGE}"))?;
    let dt = dt.ok_or(format!("missing --dt\n{USAGE}"))?;
    let t0 = Instant::now();
    let (gt, dt) = read_files(&gt, &dt, threads).map_err(|e| e.to_string())?;
    let t_load = t0.elapsed();
    let params = CocoParams {
        threads,
        ..CocoParams::default()
    };
    let ev = evaluate(&gt, &dt, &params).map_err(|e| e.to_string())?;
    if !ev.unknown_categories.is_empty() {
        eprintln!(
            "warning: detections with category ids missing from the ground truth (not evaluated): {:?}",
            ev.unknown_categories
        );
    }
    eprintln!(
        "loaded in {:.3}s, evaluated in {:.3}s",
        t_load.as_secs_f64(),
        (t0.elapsed() - t_load).as_secs_f64()
    );
    out(&ev.summary.to_string()).map_err(|e| format!("stdout: {e}"))?;
    if let Some(path) = json {
        let v = serde_json::json!({
            "stats": ev.summary.stats,
            "names": STAT_NAMES,
            "per_category_ap": ev.per_category_ap(),
            "unknown_categories": ev.unknown_categories,
        });
        cvlab_util::write_atomic(&path, v.to_string().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("det-eval: {e}");
            ExitCode::FAILURE
        }
    }
}
