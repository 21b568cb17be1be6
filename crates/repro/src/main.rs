//! `repro`: runs the workspace's claims and writes the report. Normally driven by
//! `cargo xtask reproduce`, which sets up libtorch first.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

use repro::claim::{self, parse_device};
use repro::report::{self, Mode};

#[derive(Parser)]
#[command(name = "repro", about = "Reproduce the papers' claims")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the claims with their sources and what their full recipes need.
    List,
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
        Cmd::List => {
            for c in claim::registry() {
                println!("{:<22} {}", c.id, c.claim);
                println!(
                    "{:<22} source: {}; paper: {}; tolerance: {}",
                    "", c.source, c.paper_value, c.tolerance
                );
                if let Some(n) = c.full_needs {
                    println!("{:<22} --full needs: {n}", "");
                }
            }
        }
        Cmd::Doctor => {
            println!("libtorch {} (tch 0.24.0)", env!("CVLAB_LIBTORCH_VERSION"));
            println!("cuda available: {}", tch::Cuda::is_available());
            println!("cuda devices: {}", tch::Cuda::device_count());
            println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
            println!("cpu threads: {}", tch::get_num_threads());
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
            let device = parse_device(&device)?;
            let all = claim::registry();
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
            println!("report: {}", reports.join("REPORT.md").display());
        }
    }
    Ok(())
}
