//! What the workspace's tests share: the parity harness, tolerance assertions for `f64` values
//! ([`Tol`], [`assert_close`], [`assert_all_close`]; tensors keep `allclose`), and the lock on
//! torch's generator ([`rng_lock`]). It has no libtorch dependency on purpose: as a
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

// A test-only crate: a panic with a message is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

/// A tolerance: `actual` and `expected` agree when `|actual - expected| <= abs` or
/// `|actual - expected| <= rel * max(|actual|, |expected|)` (approx's `relative_eq`). Equal
/// infinities agree; a NaN agrees with nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tol {
    /// Absolute bound.
    pub abs: f64,
    /// Relative bound.
    pub rel: f64,
}

impl Tol {
    /// An absolute bound only.
    pub fn abs(abs: f64) -> Self {
        Tol { abs, rel: 0.0 }
    }

    /// A relative bound only.
    pub fn rel(rel: f64) -> Self {
        Tol { abs: 0.0, rel }
    }

    /// This tolerance with a relative bound too.
    pub fn or_rel(self, rel: f64) -> Self {
        Tol { rel, ..self }
    }

    /// Whether `actual` agrees with `expected`.
    pub fn accepts(&self, actual: f64, expected: f64) -> bool {
        approx::relative_eq!(
            actual,
            expected,
            epsilon = self.abs,
            max_relative = self.rel
        )
    }
}

/// Asserts that `actual` agrees with `expected` within `tol`; the panic names both values,
/// their difference and the tolerance.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, tol: Tol) {
    assert!(
        tol.accepts(actual, expected),
        "{actual} vs expected {expected}: difference {:e} outside {tol:?}",
        (actual - expected).abs()
    );
}

/// Asserts that two equally long slices agree element by element within `tol`; the panic
/// names the length mismatch, or the first index out of tolerance, its values, and how many
/// elements are out.
#[track_caller]
pub fn assert_all_close(actual: &[f64], expected: &[f64], tol: Tol) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "lengths differ: {} values vs {} expected",
        actual.len(),
        expected.len()
    );
    let bad: Vec<usize> = (0..actual.len())
        .filter(|&i| !tol.accepts(actual[i], expected[i]))
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{} of {} values outside {tol:?}; first at index {i}: {} vs expected {} \
             (difference {:e}); max abs difference {:e}",
            bad.len(),
            actual.len(),
            actual[i],
            expected[i],
            (actual[i] - expected[i]).abs(),
            max_abs_diff(actual, expected)
        );
    }
}

/// The largest `|a - b|` over two slices (NaN when any pair has a NaN; 0 for empty ones).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

/// Tests that seed and draw from torch's process-wide generator hold this (one per test
/// binary), so that one test's `manual_seed` and its draws are not interleaved with
/// another's. A panicking holder does not poison it for the others.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_accept_and_reject() {
        assert!(Tol::abs(1e-6).accepts(1.0, 1.0 + 5e-7));
        assert!(!Tol::abs(1e-6).accepts(1.0, 1.0 + 2e-6));
        assert!(Tol::rel(1e-3).accepts(1000.0, 1000.5));
        assert!(!Tol::rel(1e-3).accepts(1.0, 1.01));
        assert!(Tol::abs(1e-9).or_rel(1e-3).accepts(1000.0, 1000.5));
        assert!(!Tol::abs(1.0).accepts(f64::NAN, f64::NAN));
        assert!(Tol::abs(0.0).accepts(f64::INFINITY, f64::INFINITY));
        assert_close(0.1 + 0.2, 0.3, Tol::abs(1e-15));
        assert_all_close(&[1.0, 2.0], &[1.0, 2.0 + 1e-12], Tol::abs(1e-9));
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert!(max_abs_diff(&[f64::NAN], &[1.0]).is_nan());
    }

    #[test]
    fn a_miss_names_the_index_and_the_count() {
        let err = std::panic::catch_unwind(|| {
            assert_all_close(&[1.0, 2.0, 3.0], &[1.0, 2.5, 3.5], Tol::abs(0.1))
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("2 of 3") && msg.contains("index 1"), "{msg}");
        assert!(std::panic::catch_unwind(|| assert_all_close(&[1.0], &[], Tol::abs(1.0))).is_err());
    }

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
