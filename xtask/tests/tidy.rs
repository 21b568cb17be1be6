//! Tidy rules for the whole workspace, in the style of rust-analyzer's `xtask/src/tidy.rs`: each
//! test reads the files (or asks cargo) and fails naming every file that breaks its rule. They run
//! in `cargo xtask test`'s `xtask` stage and in plain `cargo test --workspace`.

// The helpers below sit outside `#[test]` functions; their panics are test failures too.
#![allow(clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files longer than this hold two ideas (STYLE.md: split a module past ~600 lines).
const MAX_LINES: usize = 800;

/// Crates that must build without libtorch with their default features: xtask runs before
/// libtorch exists, test-support is linked into test binaries that have no rpath to it, and
/// det-core's evaluation and rf-calc's core are plain Rust by design (DESIGN.md).
const PLAIN_CRATES: &[&str] = &[
    "xtask",
    "datasets-fetch",
    "cvlab-util",
    "test-support",
    "torch-build",
    "det-core",
    "rf-calc",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under the workspace root, build output and hidden folders left out.
fn rust_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !(name.starts_with('.')
                    || ["target", "node_modules", "__pycache__"].contains(&name))
                {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    assert!(out.len() > 50, "found only {} .rs files", out.len());
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(rule: &str, bad: &[String]) {
    assert!(
        bad.is_empty(),
        "tidy: {} file(s) break the rule \"{rule}\":\n  {}",
        bad.len(),
        bad.join("\n  ")
    );
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

#[test]
fn every_source_file_opens_with_a_doc_header() {
    let bad: Vec<_> = rust_files()
        .into_iter()
        .filter(|p| !read(p).starts_with("//!"))
        .map(|p| format!("{}: the first line is not a `//!` header", rel(&p)))
        .collect();
    report(
        "every .rs file opens with a `//!` header saying what it is",
        &bad,
    );
}

#[test]
fn no_file_over_800_lines_outside_tests() {
    let bad: Vec<_> = rust_files()
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "tests"))
        .filter_map(|p| {
            let n = read(&p).lines().count();
            (n > MAX_LINES).then(|| format!("{}: {n} lines", rel(&p)))
        })
        .collect();
    report(
        &format!("no file over {MAX_LINES} lines outside tests/ (split it: one idea per file)"),
        &bad,
    );
}

#[test]
fn no_todo_or_unimplemented_in_library_code() {
    // Spelled in two pieces so that this file does not match itself.
    let needles = [concat!("todo", "!"), concat!("unimplemented", "!")];
    let crates = root().join("crates");
    let mut bad = Vec::new();
    for path in rust_files() {
        let Ok(inside) = path.strip_prefix(&crates) else {
            continue;
        };
        let parts: Vec<_> = inside.iter().filter_map(|c| c.to_str()).collect();
        let library = parts.get(1) == Some(&"src")
            && parts.get(2) != Some(&"bin")
            && parts.last() != Some(&"main.rs");
        if !library {
            continue;
        }
        for (i, line) in read(&path).lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(n) = needles.iter().find(|n| code.contains(*n)) {
                bad.push(format!("{}:{}: {n}", rel(&path), i + 1));
            }
        }
    }
    report(
        "no todo!/unimplemented! in library code: return the crate's error",
        &bad,
    );
}

/// The workspace packages whose `[dependencies]` (any kind) name `krate`, by manifest path.
fn dependents_of(krate: &str) -> Vec<(String, String)> {
    let out = cargo()
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let packages = meta["packages"].as_array().expect("a package list");
    assert!(
        packages.iter().any(|p| p["name"] == krate),
        "{krate} is a member"
    );
    packages
        .iter()
        .filter(|p| p["name"] != krate)
        .filter(|p| {
            p["dependencies"]
                .as_array()
                .is_some_and(|deps| deps.iter().any(|d| d["name"] == krate))
        })
        .map(|p| {
            let manifest = p["manifest_path"].as_str().unwrap_or("?");
            (
                p["name"].as_str().unwrap_or("?").to_owned(),
                rel(Path::new(manifest)),
            )
        })
        .collect()
}

#[test]
fn nothing_depends_on_repro() {
    let bad: Vec<_> = dependents_of("repro")
        .into_iter()
        .map(|(_, manifest)| format!("{manifest}: depends on repro"))
        .collect();
    report(
        "nothing depends on repro (the experiments sit on top; libraries stay reusable)",
        &bad,
    );
}

#[test]
fn only_the_binaries_depend_on_dist() {
    let bad: Vec<_> = dependents_of("dist")
        .into_iter()
        .filter(|(name, _)| !["repro", "benches"].contains(&name.as_str()))
        .map(|(_, manifest)| format!("{manifest}: depends on dist"))
        .collect();
    report(
        "only repro and benches depend on dist (the libraries train data-parallel through \
         train-kit's Collective trait and link no C++ shim)",
        &bad,
    );
}

#[test]
fn plain_crates_pull_in_no_libtorch() {
    let mut bad = Vec::new();
    for krate in PLAIN_CRATES {
        let out = cargo()
            .current_dir(root())
            .args(["tree", "-p", krate, "-e", "normal", "--prefix", "none"])
            .args(["--format", "{p}"])
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        let mut torch: Vec<_> = tree
            .lines()
            .filter(|l| l.starts_with("tch v") || l.starts_with("torch-sys v"))
            .map(|l| l.trim_end_matches(" (*)").to_owned())
            .collect();
        torch.sort();
        torch.dedup();
        if !torch.is_empty() {
            // The first line is the crate itself: `det-core v0.1.0 (/w/crates/det-core)`.
            let manifest = tree
                .lines()
                .next()
                .and_then(|l| l.rsplit_once(" (")?.1.strip_suffix(')'))
                .map_or_else(
                    || krate.to_string(),
                    |dir| rel(&Path::new(dir).join("Cargo.toml")),
                );
            bad.push(format!(
                "{manifest}: {krate}'s default features pull in {}",
                torch.join(", ")
            ));
        }
    }
    report(
        "xtask, datasets-fetch, cvlab-util, test-support, torch-build, det-core and rf-calc build without libtorch by default",
        &bad,
    );
}
