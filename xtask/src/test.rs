//! `cargo xtask test`: setup, xtask's tests with the tidy rules, the workspace's tests, the
//! parity tests against PyTorch, the example project outside the workspace, the GPU script at
//! tiny sizes on the CPU, a smoke run of every claim, then `cargo fmt --check` and clippy. Each stage is timed; a failing stage fails the
//! whole but the later ones still run, so that one run tells everything.
//!
//! Everything builds in release on purpose: `reproduce` needs release anyway, and one build of
//! libtorch's C++ wrapper (torch-sys) takes minutes on 2 cores, so a debug build on top would
//! double the time.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

use crate::example;
use crate::reproduce;
use crate::setup;
use crate::util::{self, fmt_duration};

/// One stage's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its name in the summary.
    pub name: &'static str,
    /// How long it took.
    pub took: Duration,
    /// Whether it passed.
    pub ok: bool,
}

/// `xtask test: ok in 7m02s (setup ok 0.1s, tests ok 5m10s, …)`.
pub fn summary(stages: &[Stage], total: Duration) -> String {
    let failed: Vec<_> = stages.iter().filter(|s| !s.ok).map(|s| s.name).collect();
    let verdict = if failed.is_empty() {
        "ok".to_owned()
    } else {
        format!("FAILED ({})", failed.join(", "))
    };
    let each: Vec<_> = stages
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s.name,
                if s.ok { "ok" } else { "FAILED" },
                fmt_duration(s.took)
            )
        })
        .collect();
    format!(
        "xtask test: {verdict} in {} ({})",
        fmt_duration(total),
        each.join(", ")
    )
}

fn stage<T>(
    stages: &mut Vec<Stage>,
    name: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Option<T> {
    eprintln!("\n==> {name}");
    let start = Instant::now();
    let result = f();
    let took = start.elapsed();
    match &result {
        Ok(_) => eprintln!("<== {name}: ok in {}", fmt_duration(took)),
        Err(e) => eprintln!("<== {name}: FAILED in {}: {e:#}", fmt_duration(took)),
    }
    stages.push(Stage {
        name,
        took,
        ok: result.is_ok(),
    });
    result.ok()
}

/// Optional libtorch features of the workspace's crates that no member enables by itself: the
/// tests of det-core's tensor ops and detection data path run only with them.
const TORCH_FEATURES: &str = "det-core/tch";

/// What the `tests` and `parity` stages pass to `cargo test`; the smoke stage takes the repro
/// binary of that same build.
const TEST_ARGS: [&str; 4] = ["--workspace", "--release", "--features", TORCH_FEATURES];

/// `cargo xtask test`: every stage, in order; the later ones run when an earlier one fails.
pub fn cmd(references: bool) -> Result<()> {
    let total = Instant::now();
    let mut stages = Vec::new();
    let root = util::workspace_root()?;
    let opts = setup::Opts {
        references,
        parity: true,
        announce: true,
        install: true,
    };
    let Some(env) = stage(&mut stages, "setup", || setup::setup(opts)) else {
        eprintln!("{}", summary(&stages, total.elapsed()));
        bail!("setup failed");
    };
    // Seconds, before the long build: xtask's own tests and the tidy rules (tests/tidy.rs).
    stage(&mut stages, "xtask", || {
        util::run(env.cargo(&root).args(["test", "--release", "-p", "xtask"]))
    });
    // What a newcomer types after `eval "$(cargo xtask env)"` (xtask included: it links no
    // libtorch), in release as everything here.
    stage(&mut stages, "tests", || {
        util::run(env.cargo(&root).arg("test").args(TEST_ARGS))
    });
    // Tests marked #[ignore] whose names contain `parity`: they compare against PyTorch through
    // CVLAB_PYTHON.
    stage(&mut stages, "parity", || {
        util::run(
            env.cargo(&root)
                .arg("test")
                .args(TEST_ARGS)
                .args(["parity", "--", "--ignored"]),
        )
    });
    stage(&mut stages, "example", || example::run(&env, &root));
    // The one GPU script (benches/gpu/gpu_check.sh) at tiny sizes on the CPU, so it is known to
    // work before a device is lent: correctness checks, timings, profile, its table.
    stage(&mut stages, "gpu-script", || {
        let bins = reproduce::bins_of_test_build(
            &env,
            &root,
            &TEST_ARGS,
            &crate::bundle::GPU_SCRIPT_BINS,
        )?;
        let dir = bins
            .first()
            .and_then(|b| b.parent())
            .context("no folder of the bench binaries")?;
        util::run(
            env.apply(&mut std::process::Command::new("bash"))
                .arg(root.join("benches/gpu/gpu_check.sh"))
                .args(["--device", "cpu"])
                .env("CVLAB_BIN_DIR", dir)
                .env("CVLAB_OUT_DIR", root.join("target").join("gpu-check"))
                .current_dir(&root),
        )
    });
    stage(&mut stages, "smoke", || {
        let exe = reproduce::repro_of_test_build(&env, &root, &TEST_ARGS)?;
        reproduce::run_exe(
            &env,
            &root,
            &exe,
            &reproduce::Opts {
                smoke: true,
                // Smoke numbers are not comparable with the paper: keep them out of `reports/`.
                reports: Some(root.join("target").join("reports-smoke")),
                ..Default::default()
            },
        )
    });
    // The example project is outside the workspace, so `cargo fmt --all` does not see it.
    stage(&mut stages, "fmt", || {
        util::run(env.cargo(&root).args(["fmt", "--all", "--check"]))?;
        let example = root.join(example::DIR);
        util::run(
            std::process::Command::new("rustfmt")
                .args(["--check", "--edition", "2021"])
                .arg(example.join("build.rs"))
                .arg(example.join("src/main.rs")),
        )
    });
    // Library and binary code (tests may unwrap). In release, to share torch-sys's build script
    // run (the C++ wrapper) with the stages above.
    stage(&mut stages, "clippy", || {
        util::run(env.cargo(&root).args([
            "clippy",
            "--workspace",
            "--release",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))
    });
    let line = summary(&stages, total.elapsed());
    eprintln!("\n{line}");
    if stages.iter().any(|s| !s.ok) {
        bail!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_failures_and_times() {
        let s = |name, secs, ok| Stage {
            name,
            took: Duration::from_secs(secs),
            ok,
        };
        let ok = [s("setup", 0, true), s("tests", 310, true)];
        assert_eq!(
            summary(&ok, Duration::from_secs(311)),
            "xtask test: ok in 5m11s (setup ok 0.0s, tests ok 5m10s)"
        );
        let bad = [
            s("setup", 1, true),
            s("parity", 20, false),
            s("smoke", 70, false),
        ];
        assert!(summary(&bad, Duration::from_secs(91)).starts_with(
            "xtask test: FAILED (parity, smoke) in 1m31s (setup ok 1.0s, parity FAILED 20.0s"
        ));
    }
}
