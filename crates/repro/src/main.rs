//! `repro`: runs the workspace's claims and writes the report. Normally driven by
//! `cargo xtask reproduce`, which sets up libtorch first.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cvlab_util::pipe::outln;
use std::path::{Path, PathBuf};

use repro::claim;
use repro::report::{self, ClaimResult, Mode};

#[derive(Parser)]
#[command(name = "repro", about = "Reproduce the papers' claims")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the claims: source, tolerance, what each needs, and how long it took last time.
    List {
        /// Where the last results are read from.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Run claims (all when no id is given; an id prefix selects a group).
    Run {
        ids: Vec<String>,
        /// Seconds per claim on small subsets, for CI.
        #[arg(long, conflicts_with = "full")]
        smoke: bool,
        /// Paper-scale recipes (GPU, `--data-root`).
        #[arg(long)]
        full: bool,
        /// Folder holding data sets placed by hand (otherwise fetched into the cache).
        #[arg(long)]
        data_root: Option<PathBuf>,
        /// auto | cpu | cuda | cuda:N
        #[arg(long, default_value = "auto")]
        device: String,
        /// Where `<id>/result.json` and `REPORT.md` go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// What this build of libtorch sees: CUDA, devices, cuDNN.
    Doctor,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::List { reports } => list(&reports)?,
        Cmd::Doctor => {
            outln(&format!(
                "libtorch {} (tch 0.24.0)\ncuda available: {}\ncuda devices: {}\n\
                 cudnn available: {}\ncpu threads: {}",
                env!("CVLAB_LIBTORCH_VERSION"),
                tch::Cuda::is_available(),
                tch::Cuda::device_count(),
                tch::Cuda::cudnn_is_available(),
                tch::get_num_threads()
            ))?;
        }
        Cmd::Run {
            ids,
            smoke,
            full,
            data_root,
            device,
            reports,
            seed,
        } => {
            let mode = if smoke {
                Mode::Smoke
            } else if full {
                Mode::Full
            } else {
                Mode::Quick
            };
            let device = train_kit::parse_device(&device)?;
            let all = repro::registry();
            let selected = claim::select(&all, &ids)?;
            for c in selected {
                eprintln!("== {} ({})", c.id, mode.as_str());
                let r = claim::run_claim(c, mode, device, data_root.as_deref(), &reports, seed)
                    .with_context(|| format!("claim {} failed to run", c.id))?;
                eprintln!(
                    "== {}: {} (paper {}, tolerance {}) -> {} in {:.1}s",
                    r.id,
                    r.value_text,
                    r.paper_value,
                    r.tolerance,
                    r.verdict.as_str(),
                    r.wall_seconds
                );
            }
            report::write_summary(&reports)?;
            outln(&format!("report: {}", reports.join("REPORT.md").display()))?;
        }
    }
    Ok(())
}

/// `repro list`: each claim with its source, paper value and tolerances, what it needs (the
/// quick run: this machine; `--full`: what the recipe names), and its last result under
/// `reports` (verdict, mode, wall time). A closed pipe (`| head`) ends it quietly.
fn list(reports: &Path) -> Result<()> {
    // A missing or unreadable report folder only means no last run to show.
    let last: Vec<ClaimResult> = report::read_all(reports).unwrap_or_default();
    for c in repro::registry() {
        outln(&format!("{:<22} {}", c.id, c.claim))?;
        outln(&format!(
            "{:<22} source: {}; paper: {}; tolerance: {}",
            "", c.source, c.paper_value, c.tolerance
        ))?;
        if let Some(smoke) = &c.smoke_tolerance {
            outln(&format!("{:<22} smoke tolerance: {smoke}", ""))?;
        }
        let full = c.full_needs.unwrap_or("nothing beyond this machine");
        outln(&format!(
            "{:<22} needs: quick run on this machine (CPU, packaged data); --full: {full}",
            ""
        ))?;
        let last_run = match last.iter().find(|r| r.id == c.id) {
            Some(r) => format!(
                "{} ({} mode, {}) in {:.1} s",
                r.verdict.as_str(),
                r.mode.as_str(),
                r.device,
                r.wall_seconds
            ),
            None => format!("none in {}", reports.display()),
        };
        outln(&format!("{:<22} last run: {last_run}", ""))?;
    }
    Ok(())
}
