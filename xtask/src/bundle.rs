//! `cargo xtask bundle --out DIR`: the release repro binary and test executables with a `run.sh`
//! that finds libtorch in a python's torch 2.11, for a GPU machine with python3+torch and no Rust.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::reproduce::build_repro;
use crate::setup;
use crate::util::{self, say, Artifact};

/// The side-by-side binaries a bundle carries: those `benches/gpu/gpu_check.sh` runs (the
/// `gpu-script` stage of `cargo xtask test` finds them in the test build).
pub(crate) const GPU_SCRIPT_BINS: [&str; 4] = ["vit_bench", "mae_bench", "oad_bench", "gpu_check"];

const RUN_SH: &str = r#"#!/usr/bin/env bash
# Runs one of the bundled binaries against the libtorch of a python's torch 2.11:
#   ./run.sh repro doctor        ./run.sh repro run --smoke        ./run.sh <test-binary> [ARGS]
# The python is $CVLAB_PYTHON, else python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then
    echo "usage: $0 BINARY [ARGS...]; binaries:" >&2
    ls "$here/bin" >&2
    exit 2
fi
bin="$here/bin/$1"
if [ ! -x "$bin" ]; then
    echo "run.sh: no binary '$1' in $here/bin" >&2
    exit 2
fi
py="${CVLAB_PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
    echo "run.sh: '$py' not found: install python3 and torch 2.11 (pip install torch==2.11.0)" >&2
    exit 1
fi
if ! info="$("$py" -c 'import torch,os;print(torch.__version__);print(os.path.dirname(torch.__file__))' 2>/dev/null)"; then
    echo "run.sh: '$py' cannot import torch: install torch 2.11 (pip install torch==2.11.0)" >&2
    "$py" -c 'import torch' >&2 || true
    exit 1
fi
version="$(sed -n 1p <<<"$info")"
torch="$(sed -n 2p <<<"$info")"
case "$version" in
    2.11.*) ;;
    *) echo "run.sh: these binaries need torch 2.11, '$py' has torch $version (pip install torch==2.11.0)" >&2
       exit 1 ;;
esac
if [ ! -e "$torch/lib/libtorch_cuda.so" ]; then
    echo "run.sh: warning: $torch is a CPU-only torch; binaries built against CUDA torch need libtorch_cuda.so" >&2
fi
export LD_LIBRARY_PATH="$torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CVLAB_PYTHON="$(command -v "$py")"
exec "$bin" "${@:2}"
"#;

/// The README: what is in `bin/` and how to run it.
pub fn readme(repro: &str, tests: &[(String, &Artifact)], torch: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Built by `cargo xtask bundle` against the libtorch in {torch}."
    );
    let _ = writeln!(s, "Needs on the target machine:");
    let _ = writeln!(
        s,
        "python3 (or $CVLAB_PYTHON) with torch 2.11 installed; no Rust.\n"
    );
    let _ = writeln!(s, "Run a binary: ./run.sh NAME [ARGS...]");
    let _ = writeln!(
        s,
        "  ./run.sh {repro} doctor          # CUDA as this build sees it"
    );
    let _ = writeln!(
        s,
        "  ./run.sh {repro} list | run [IDS...] [--smoke|--full] [--device D] --reports DIR\n"
    );
    let _ = writeln!(s, "Binaries in bin/:");
    let _ = writeln!(s, "  {repro:<40} the repro binary");
    for (file, a) in tests {
        let _ = writeln!(
            s,
            "  {file:<40} tests of {} ({} `{}`)",
            a.package, a.kind, a.target
        );
    }
    let _ = writeln!(
        s,
        "  {:<40} side-by-side benches (twins in scripts/)",
        GPU_SCRIPT_BINS.join(", ")
    );
    let _ = writeln!(
        s,
        "Everything a lent GPU is asked for, one call (~8 min), one table last: scripts/gpu_check.sh"
    );
    let _ = writeln!(
        s,
        "GPU comparisons against PyTorch on the same card, one at a time: scripts/vit_gpu.sh, scripts/mae_gpu.sh"
    );
    let _ = writeln!(
        s,
        "\nTest binaries take the usual test-harness arguments, e.g."
    );
    let _ = writeln!(
        s,
        "  ./run.sh NAME --ignored parity     ./run.sh NAME --list"
    );
    let _ = writeln!(
        s,
        "Tests that read files through compile-time paths of the build machine will not find them."
    );
    s
}

pub fn cmd(out: &Path) -> Result<()> {
    let env = setup::setup(setup::Opts {
        announce: true,
        ..Default::default()
    })?;
    let root = util::workspace_root()?;
    let out = util::absolute(out)?;
    let repro = build_repro(&env, &root)?;
    // dist's NCCL backend in (its header-less build only warns): gpu_check.sh runs its test.
    let json = util::run_stdout(env.cargo(&root).args([
        "test",
        "--workspace",
        "--release",
        "--no-run",
        "--features",
        "dist/nccl",
        "--message-format=json-render-diagnostics",
    ]))
    .context("building the test executables")?;
    // xtask's own tests are of no use on the GPU machine.
    let mut tests: Vec<Artifact> = util::artifacts(&json)
        .into_iter()
        .filter(|a| a.test && a.package != "xtask")
        .collect();
    tests.sort_by(|a, b| (&a.package, &a.kind, &a.target).cmp(&(&b.package, &b.kind, &b.target)));

    let bin = out.join("bin");
    if bin.exists() {
        fs::remove_dir_all(&bin).with_context(|| format!("clearing {}", bin.display()))?;
    }
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let copy = |from: &Path| -> Result<String> {
        let name = from.file_name().context("executable without a file name")?;
        fs::copy(from, bin.join(name))
            .with_context(|| format!("copying {} to {}", from.display(), bin.display()))?;
        Ok(name.to_string_lossy().into_owned())
    };
    let repro_name = copy(&repro)?;
    let mut listed = Vec::new();
    for a in &tests {
        listed.push((copy(&a.executable)?, a));
    }
    // The side-by-side benches: the Rust binaries, their PyTorch twins and the GPU driver scripts.
    let mut build = env.cargo(&root);
    // NCCL for `vit_bench --ddp` on the GPU.
    build.args([
        "build",
        "--release",
        "-p",
        "benches",
        "--features",
        "dist/nccl",
    ]);
    for name in GPU_SCRIPT_BINS {
        build.args(["--bin", name]);
    }
    let bench_json = util::run_stdout(build.arg("--message-format=json-render-diagnostics"))
        .with_context(|| format!("building {}", GPU_SCRIPT_BINS.join(", ")))?;
    for name in GPU_SCRIPT_BINS {
        let exe =
            util::bin_executable(&bench_json, name).with_context(|| format!("{name} not built"))?;
        copy(&exe)?;
    }
    let scripts = out.join("scripts");
    fs::create_dir_all(&scripts).with_context(|| format!("creating {}", scripts.display()))?;
    for rel in [
        "benches/python/bench_common.py",
        "benches/python/vit_bench.py",
        "benches/gpu/vit_gpu.sh",
        "benches/python/mae_bench.py",
        "benches/gpu/mae_gpu.sh",
        "benches/python/oad_bench.py",
        "benches/gpu/gpu_check.sh",
    ] {
        let from = root.join(rel);
        let to = scripts.join(from.file_name().context("script name")?);
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
    }

    let run_sh = out.join("run.sh");
    fs::write(&run_sh, RUN_SH).with_context(|| format!("writing {}", run_sh.display()))?;
    fs::set_permissions(&run_sh, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", run_sh.display()))?;
    let torch = env.get("LIBTORCH").unwrap_or("(your LIBTORCH)");
    let readme_path = out.join("README.txt");
    fs::write(&readme_path, readme(&repro_name, &listed, torch))
        .with_context(|| format!("writing {}", readme_path.display()))?;
    say!(
        "bundle: {} ({} test binaries + {repro_name}); run with {}",
        out.display(),
        listed.len(),
        run_sh.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_lists_every_binary() {
        let a = Artifact {
            package: "datasets".into(),
            target: "idx".into(),
            kind: "test".into(),
            test: true,
            executable: "/w/target/release/deps/idx-99".into(),
        };
        let text = readme("repro", &[("idx-99".into(), &a)], "/v/torch");
        assert!(
            text.contains("repro") && text.contains("idx-99") && text.contains("tests of datasets")
        );
    }

    #[test]
    fn run_sh_checks_the_version_and_sets_the_library_path() {
        assert!(RUN_SH.starts_with("#!/usr/bin/env bash\n"));
        assert!(RUN_SH.contains("2.11.*)"));
        assert!(RUN_SH.contains(r#"LD_LIBRARY_PATH="$torch/lib"#));
        assert!(RUN_SH.contains(r#"exec "$bin" "${@:2}""#));
    }
}
