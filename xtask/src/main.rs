//! The workspace's entry point (`cargo xtask …`): setup, test, reproduce, data, bench, bundle,
//! doctor. Depends on no torch crate: it runs before libtorch exists, and installs it.
//!
//! Modules depend one way: `util` and `probe` are leaves; `env` builds on `util`, `venv` on
//! `probe` and `util`; `setup` on `env` and `venv`; the commands (`test`, `reproduce`, `data`,
//! `doctor`, `bench`, `bundle`) on those.

mod bench;
mod bundle;
mod data;
mod doctor;
mod env;
mod example;
mod launch;
mod probe;
mod reproduce;
mod setup;
mod test;
mod util;
mod venv;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Install PyTorch 2.11.0 (libtorch) into a venv in the cache; quick when already done.
    Setup {
        /// Also the reference packages (torchvision 0.26.0, timm, pycocotools, torchmetrics,
        /// scikit-learn).
        #[arg(long)]
        references: bool,
    },
    /// Print `export` lines for the same environment in a shell: eval "$(cargo xtask env)".
    /// Installs nothing: without the venv it says what `setup` would install, and fails.
    Env {
        /// Also point at the reference packages (they must be installed: `setup --references`).
        #[arg(long)]
        references: bool,
    },
    /// Libtorch, CUDA as PyTorch and as our build see it, linkage, cache and data state.
    Doctor,
    /// Setup (with the reference packages: the parity tests compare against timm, ...), xtask's
    /// tests and the tidy rules, the workspace's tests, the parity tests, the example project
    /// outside the workspace, a smoke run of every claim, fmt and clippy (release).
    Test,
    /// Build the repro binary (release) and run claims, or list them.
    Reproduce(reproduce::Opts),
    /// Fetch or list the data sets.
    Data {
        #[command(subcommand)]
        cmd: data::Cmd,
    },
    /// Criterion benches (`cargo bench -p benches -- ARGS`), then the side-by-side runs
    /// against PyTorch eager.
    Bench(bench::Opts),
    /// Start N local processes of a binary with torchrun's variables (MASTER_ADDR, MASTER_PORT,
    /// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), output prefixed by rank; a failing rank
    /// stops the others: `cargo xtask launch --nproc 2 -- <binary> <args>`.
    Launch(launch::Opts),
    /// Copy the release repro and test binaries with a run.sh into DIR, for a machine with
    /// python3+torch 2.11 and no Rust.
    Bundle {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Setup { references } => setup::cmd(references),
        Cmd::Env { references } => setup::env_cmd(references),
        Cmd::Doctor => doctor::cmd(),
        Cmd::Test => test::cmd(true),
        Cmd::Reproduce(opts) => reproduce::cmd(&opts),
        Cmd::Data { cmd } => data::cmd(&cmd),
        Cmd::Bench(opts) => bench::cmd(&opts),
        Cmd::Bundle { out } => bundle::cmd(&out),
        Cmd::Launch(opts) => match launch::cmd(&opts)? {
            0 => Ok(()),
            code => std::process::exit(code),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_takes_everything_after_it() {
        let cli = Cli::try_parse_from(["xtask", "bench", "--save-baseline", "x", "conv"]).unwrap();
        match cli.cmd {
            Cmd::Bench(o) => assert_eq!(o.args, ["--save-baseline", "x", "conv"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn launch_takes_the_command_after_the_double_dash() {
        let cli = Cli::try_parse_from(["xtask", "launch", "--nproc", "2", "--", "bin", "--x", "1"])
            .unwrap();
        match cli.cmd {
            Cmd::Launch(o) => {
                assert_eq!((o.nproc, o.master_port), (2, None));
                assert_eq!(o.command, ["bin", "--x", "1"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["xtask", "launch", "--nproc", "2"]).is_err());
    }

    #[test]
    fn data_fetch_needs_names_or_all() {
        assert!(Cli::try_parse_from(["xtask", "data", "fetch"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "data", "fetch", "mnist", "--all"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "data", "fetch", "--all"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "data", "fetch", "mnist", "fashion-mnist"]).is_ok());
    }
}
