//! `cargo xtask reproduce`: builds `repro` (release) and runs `repro list` or `repro run …`.

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::Env;
use crate::setup;
use crate::util;

#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct Opts {
    /// Claims to run (all when none).
    #[arg(value_name = "IDS")]
    pub ids: Vec<String>,
    /// List the claims instead of running them.
    #[arg(long, conflicts_with_all = ["ids", "smoke", "full", "data_root", "device", "reports"])]
    pub list: bool,
    /// Tiny budgets: checks that every claim runs end to end.
    #[arg(long, conflicts_with = "full")]
    pub smoke: bool,
    /// The papers' full budgets.
    #[arg(long)]
    pub full: bool,
    /// Data placed by hand (never fetched); default: the cache, fetched when missing.
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Device for the experiments, e.g. `cpu`, `cuda`, `cuda:1`.
    #[arg(long, value_name = "D")]
    pub device: Option<String>,
    /// Where the reports go [default: `reports` in the workspace root].
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,
}

/// The arguments of the repro binary; relative paths are resolved against `cwd` (the binary
/// runs in the workspace root).
pub fn repro_args(opts: &Opts, cwd: &Path, root: &Path) -> Vec<OsString> {
    if opts.list {
        return vec!["list".into()];
    }
    let mut args: Vec<OsString> = vec!["run".into()];
    args.extend(opts.ids.iter().map(OsString::from));
    if opts.smoke {
        args.push("--smoke".into());
    }
    if opts.full {
        args.push("--full".into());
    }
    if let Some(dir) = &opts.data_root {
        args.extend(["--data-root".into(), cwd.join(dir).into_os_string()]);
    }
    if let Some(device) = &opts.device {
        args.extend(["--device".into(), device.into()]);
    }
    let reports = opts
        .reports
        .as_ref()
        .map_or_else(|| root.join("reports"), |r| cwd.join(r));
    args.extend(["--reports".into(), reports.into_os_string()]);
    args
}

/// Builds the repro binary and returns its path (from cargo's JSON messages).
pub fn build_repro(env: &Env, root: &Path) -> Result<PathBuf> {
    let out = util::run_stdout(env.cargo(root).args([
        "build",
        "--release",
        "-p",
        "repro",
        "--message-format=json-render-diagnostics",
    ]))
    .context("building the repro binary")?;
    util::bin_executable(&out, "repro").context(
        "`cargo build -p repro` reported no `repro` executable (is there a [[bin]] repro?)",
    )
}

/// The binaries `names` that `cargo test <test_args>` builds for integration tests, from cargo's
/// JSON messages (a no-op build after the `tests` stage): `cargo xtask test` takes repro and the
/// side-by-side binaries from there instead of `cargo build -p ...`, whose features differ from a
/// whole-workspace test build (members' default features, dev-dependencies' features) and would
/// rebuild half the tree.
pub fn bins_of_test_build(
    env: &Env,
    root: &Path,
    test_args: &[&str],
    names: &[&str],
) -> Result<Vec<PathBuf>> {
    let out = util::run_stdout(
        env.cargo(root)
            .arg("test")
            .args(test_args)
            .args(["--no-run", "--message-format=json-render-diagnostics"]),
    )
    .context("finding the binaries of the test build")?;
    names
        .iter()
        .map(|name| {
            util::bin_executable(&out, name).with_context(|| {
                format!("the test build reported no `{name}` executable (an integration test of its package needs it)")
            })
        })
        .collect()
}

/// The repro binary of the test build ([`bins_of_test_build`]).
pub fn repro_of_test_build(env: &Env, root: &Path, test_args: &[&str]) -> Result<PathBuf> {
    let mut bins = bins_of_test_build(env, root, test_args, &["repro"])?;
    bins.pop().context("no repro binary")
}

/// Builds and runs repro with `opts` under `env`.
pub fn run(env: &Env, root: &Path, opts: &Opts) -> Result<()> {
    run_exe(env, root, &build_repro(env, root)?, opts)
}

/// Runs the repro binary `exe` with `opts` under `env`.
pub fn run_exe(env: &Env, root: &Path, exe: &Path, opts: &Opts) -> Result<()> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let mut cmd = Command::new(exe);
    env.apply(&mut cmd)
        .args(repro_args(opts, &cwd, root))
        .current_dir(root);
    // The binary exits 0 when a claim merely misses: non-zero is an error of the run itself.
    util::run(&mut cmd).context("the repro binary failed")
}

/// `cargo xtask reproduce`.
pub fn cmd(opts: &Opts) -> Result<()> {
    let env = setup::setup(setup::Opts {
        announce: true,
        ..Default::default()
    })?;
    run(&env, &util::workspace_root()?, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Opts,
    }

    fn args(cli: &[&str]) -> Vec<String> {
        let opts = Cli::try_parse_from(std::iter::once("reproduce").chain(cli.iter().copied()))
            .unwrap()
            .opts;
        repro_args(&opts, Path::new("/home/u"), Path::new("/w"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn list_maps_to_repro_list() {
        assert_eq!(args(&["--list"]), ["list"]);
    }

    #[test]
    fn run_defaults_to_the_workspace_reports() {
        assert_eq!(args(&[]), ["run", "--reports", "/w/reports"]);
    }

    #[test]
    fn everything_is_passed_in_order_with_paths_made_absolute() {
        let got = args(&[
            "c1",
            "c2",
            "--smoke",
            "--data-root",
            "data",
            "--device",
            "cuda:1",
            "--reports",
            "/tmp/r",
        ]);
        let want = [
            "run",
            "c1",
            "c2",
            "--smoke",
            "--data-root",
            "/home/u/data",
            "--device",
            "cuda:1",
            "--reports",
            "/tmp/r",
        ];
        assert_eq!(got, want);
        assert_eq!(
            args(&["--full", "--reports", "out"]),
            ["run", "--full", "--reports", "/home/u/out"]
        );
    }

    #[test]
    fn conflicting_flags_are_refused() {
        for bad in [
            &["--smoke", "--full"][..],
            &["--list", "c1"],
            &["--list", "--smoke"],
        ] {
            let argv = std::iter::once("reproduce").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }
}
