//! Small helpers: the workspace's folders, running commands (each echoed first), cargo's JSON
//! messages, formatting, printing to stdout. A leaf: it uses no other module of xtask.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The workspace root: this crate's parent folder, else what `cargo locate-project` says.
pub fn workspace_root() -> Result<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(root) = here.parent().filter(|r| r.join("Cargo.toml").is_file()) {
        return Ok(root.to_path_buf());
    }
    let out = Command::new(cargo_program())
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("running `cargo locate-project --workspace`")?;
    if !out.status.success() {
        bail!(
            "`cargo locate-project --workspace` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(manifest
        .parent()
        .context("workspace manifest has no parent folder")?
        .to_path_buf())
}

/// Cargo's target folder for the workspace's own builds (not xtask's `target/xtask`).
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The cargo that runs xtask (cargo sets `CARGO` for `cargo run`), else `cargo` from `PATH`.
pub fn cargo_program() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The command line as a user would type it (cargo shown as `cargo`).
pub fn display(cmd: &Command) -> String {
    let program = if cmd.get_program() == cargo_program() {
        "cargo".to_owned()
    } else {
        cmd.get_program().to_string_lossy().into_owned()
    };
    std::iter::once(program)
        .chain(cmd.get_args().map(shell_quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with inherited stdio, echoing it first; fails naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    eprintln!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` echoing it first, capturing stdout (stderr goes to the terminal).
pub fn run_stdout(cmd: &mut Command) -> Result<String> {
    let line = display(cmd);
    eprintln!("$ {line}");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{line}`"))?;
    if !out.status.success() {
        bail!("`{line}` failed ({})", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` wrote non-UTF-8 output"))
}

/// A `Stdio` writing to our stderr: children's chatter must not mix into `cargo xtask env`'s
/// stdout.
pub fn to_stderr() -> Stdio {
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::inherit())
}

/// Whether our stderr is a terminal (progress bars only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// One executable built by cargo, from a `compiler-artifact` JSON message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub package: String,
    pub target: String,
    pub kind: String,
    pub test: bool,
    pub executable: PathBuf,
}

/// The executables among cargo's `--message-format=json` lines (other lines are skipped).
pub fn artifacts(json_lines: &str) -> Vec<Artifact> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            let executable = PathBuf::from(m["executable"].as_str()?);
            let kind = m["target"]["kind"]
                .as_array()
                .and_then(|k| k.first()?.as_str())
                .unwrap_or("");
            Some(Artifact {
                package: package_name(m["package_id"].as_str().unwrap_or("")),
                target: m["target"]["name"].as_str().unwrap_or("").to_owned(),
                kind: kind.to_owned(),
                test: m["profile"]["test"].as_bool().unwrap_or(false),
                executable,
            })
        })
        .collect()
}

/// The package name in a cargo package id: `path+file:///w/crates/repro#0.1.0` (name = last
/// path segment), `path+file:///w/x#name@0.1.0`, or the old `name 0.1.0 (source)`.
fn package_name(id: &str) -> String {
    if let Some((url, frag)) = id.split_once('#') {
        if let Some((name, _)) = frag.split_once('@') {
            return name.to_owned();
        }
        return url.rsplit('/').next().unwrap_or(url).to_owned();
    }
    id.split_whitespace().next().unwrap_or(id).to_owned()
}

/// The non-test executable of binary target `name`.
pub fn bin_executable(json_lines: &str, name: &str) -> Option<PathBuf> {
    artifacts(json_lines)
        .into_iter()
        .find(|a| !a.test && a.kind == "bin" && a.target == name)
        .map(|a| a.executable)
}

/// Prints a line to stdout like `println!`, but a closed pipe (`cargo xtask data list | head`)
/// ends xtask quietly with status 0 ([`cvlab_util::pipe`]); other write errors are returned.
macro_rules! say {
    ($($arg:tt)*) => {
        cvlab_util::pipe::outln(&format!($($arg)*))
    };
}
pub(crate) use say;

/// `3m07s`, `12.4s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Quotes for a POSIX shell where needed.
pub fn shell_quote(s: impl AsRef<OsStr>) -> String {
    let s = s.as_ref().to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `p` made absolute against the current folder (children run in the workspace root).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// The first `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGES: &str = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/repro#0.1.0","manifest_path":"/w/crates/repro/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"repro","src_path":"/w/crates/repro/src/main.rs","edition":"2021","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"3","debuginfo":1,"debug_assertions":false,"overflow_checks":false,"test":true},"features":[],"filenames":["/w/target/release/deps/repro-0123abcd"],"executable":"/w/target/release/deps/repro-0123abcd","fresh":true}
{"reason":"compiler-artifact","package_id":"path+file:///w/crates/repro#0.1.0","manifest_path":"/w/crates/repro/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"repro","src_path":"/w/crates/repro/src/main.rs","edition":"2021","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"3","debuginfo":1,"debug_assertions":false,"overflow_checks":false,"test":false},"features":[],"filenames":["/w/target/release/repro"],"executable":"/w/target/release/repro","fresh":true}
{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#tch@0.24.0","manifest_path":"/r/tch/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"tch"},"profile":{"test":false},"filenames":["/w/target/release/deps/libtch-1.rlib"],"executable":null,"fresh":true}
{"reason":"compiler-artifact","package_id":"path+file:///w/crates/datasets#datasets@0.1.0","target":{"kind":["test"],"name":"idx"},"profile":{"test":true},"executable":"/w/target/release/deps/idx-99"}
{"reason":"build-script-executed","package_id":"path+file:///w/crates/repro#0.1.0"}
not json at all
{"reason":"build-finished","success":true}"#;

    #[test]
    fn test_executables_are_the_test_profile_artifacts() {
        let tests: Vec<_> = artifacts(MESSAGES).into_iter().filter(|a| a.test).collect();
        assert_eq!(tests.len(), 2);
        assert_eq!(
            tests[0].executable,
            PathBuf::from("/w/target/release/deps/repro-0123abcd")
        );
        assert_eq!(
            (tests[0].package.as_str(), tests[0].kind.as_str()),
            ("repro", "bin")
        );
        assert_eq!(
            (tests[1].package.as_str(), tests[1].target.as_str()),
            ("datasets", "idx")
        );
    }

    #[test]
    fn the_repro_binary_is_the_non_test_bin() {
        assert_eq!(
            bin_executable(MESSAGES, "repro"),
            Some(PathBuf::from("/w/target/release/repro"))
        );
        assert_eq!(bin_executable(MESSAGES, "tch"), None);
    }

    #[test]
    fn package_names_from_ids() {
        assert_eq!(package_name("path+file:///w/crates/repro#0.1.0"), "repro");
        assert_eq!(package_name("path+file:///w/x#benches@0.1.0"), "benches");
        assert_eq!(package_name("anyhow 1.0.0 (registry+https://x)"), "anyhow");
    }

    #[test]
    fn quoting_and_durations() {
        assert_eq!(shell_quote("--release"), "--release");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(fmt_duration(Duration::from_millis(12_400)), "12.4s");
        assert_eq!(fmt_duration(Duration::from_secs(187)), "3m07s");
    }
}
