//! What the workspace's parity tests share. It has no libtorch dependency on purpose: as a
//! dev-dependency of plain-Rust crates (det-core) too, a `tch` feature here would be unified
//! into their test builds, which have no rpath to libtorch. A parity test runs a reference script under the
//! reference python (`$CVLAB_PYTHON`, set by `cargo xtask test`, which installs torch, timm,
//! torchvision and pycocotools there), lets it write its inputs and outputs into a temporary
//! folder, and compares them with the Rust side.
//!
//! ```no_run
//! let dir = test_support::run_reference(env!("CARGO_MANIFEST_DIR"), "tests/parity/x.py", "timm");
//! let cases = test_support::read_json(&dir.path().join("cases.json"));
//! ```

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The reference python: `$CVLAB_PYTHON`. Panics (this is for tests) with what to do when it
/// is not set; `needs` names the packages the calling test uses.
pub fn python(needs: &str) -> OsString {
    std::env::var_os("CVLAB_PYTHON").unwrap_or_else(|| {
        panic!(
            "CVLAB_PYTHON must name the reference python (torch 2.11 + {needs}); \
             `cargo xtask test` sets it, or `eval \"$(cargo xtask env --references)\"`"
        )
    })
}

/// Runs `<manifest_dir>/<script> <dir> [args...]` under the reference python with a fresh
/// temporary `dir` and returns it (removed when dropped). Panics, naming the script and the
/// exit status, when the script fails.
pub fn run_reference_with(
    manifest_dir: &str,
    script: &str,
    needs: &str,
    args: &[&str],
) -> tempfile::TempDir {
    let python = python(needs);
    let script = Path::new(manifest_dir).join(script);
    let dir = tempfile::tempdir().expect("creating a temporary folder for the reference outputs");
    let status = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("starting {}: {e}", python.to_string_lossy()));
    assert!(
        status.success(),
        "{} {} failed: {status}",
        python.to_string_lossy(),
        script.display()
    );
    dir
}

/// [`run_reference_with`] without extra arguments.
pub fn run_reference(manifest_dir: &str, script: &str, needs: &str) -> tempfile::TempDir {
    run_reference_with(manifest_dir, script, needs, &[])
}

/// A JSON file the reference wrote. Panics naming the file when it is missing or malformed.
pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_json_names_the_file_it_cannot_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cases.json");
        std::fs::write(&p, "{\"a\": [1, 2]}").unwrap();
        assert_eq!(read_json(&p)["a"][1], 2);
        std::fs::write(&p, "{not json").unwrap();
        let err = std::panic::catch_unwind(|| read_json(&p)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("parsing") && msg.contains("cases.json"),
            "{msg}"
        );
    }
}
