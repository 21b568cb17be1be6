//! `repro`: runs the workspace's claims and writes the report. Normally driven by
//! `cargo xtask reproduce`, which sets up libtorch first.
//!
//! Under a launcher (`cargo xtask launch --nproc N -- repro run ...`, or `torchrun`), every
//! training loop of the claims runs data-parallel over the N processes (Gloo on the CPU); rank 0
//! writes the reports, the other ranks work in a scratch folder they remove at the end.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use cvlab_util::pipe::outln;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use repro::claim;
use repro::report::{self, ClaimResult, Mode};
use train_kit::collective::Writers;

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
            let rank = join_group(device)?;
            // Only rank 0 writes the reports.
            let scratch = rank.filter(|&r| r > 0).map(|r| {
                std::env::temp_dir().join(format!("repro-rank{r}-{}", std::process::id()))
            });
            let reports = scratch.clone().unwrap_or(reports);
            let all = repro::registry();
            let selected = claim::select(&all, &ids)?;
            let ran = selected.into_iter().try_for_each(|c| -> Result<()> {
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
                Ok(())
            });
            if let Some(dir) = &scratch {
                // Removed whether the claims ran or failed; a failure is the error to report.
                let removed = std::fs::remove_dir_all(dir);
                ran?;
                removed
                    .with_context(|| format!("removing the scratch folder {}", dir.display()))?;
                return Ok(());
            }
            ran?;
            report::write_summary(&reports)?;
            outln(&format!("report: {}", reports.join("REPORT.md").display()))?;
        }
    }
    Ok(())
}

/// Joins the process group of a launcher's environment (`WORLD_SIZE` set) and makes it the
/// default group every Trainer trains over; returns this process's rank, or `None` alone.
fn join_group(device: tch::Device) -> Result<Option<usize>> {
    let Some(rv) = dist::Rendezvous::from_env()? else {
        return Ok(None);
    };
    if device != tch::Device::Cpu {
        bail!(
            "data parallel on {device:?}: this build has the Gloo backend (CPU tensors) only, \
             NCCL is not built in yet; run with --device cpu"
        );
    }
    // torch.distributed's default timeout: long enough for rank 0's evaluations.
    let pg = dist::ProcessGroup::new(&rv, dist::Backend::Gloo, Duration::from_secs(1800))?;
    let rank = pg.rank();
    eprintln!("== rank {rank} of {} (gloo)", pg.world_size());
    // Each rank runs the claims in a reports folder of its own (rank 0's is the real one), so
    // every rank writes its run files and the claims' plotting code reads them on every rank.
    train_kit::collective::set_default_group(Arc::new(pg), Writers::EveryRank)?;
    Ok(Some(rank))
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
