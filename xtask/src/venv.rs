//! The venv at `<cache>/venv`: creation, `pip install` of what the probe finds missing, and a
//! stamp that makes the already-done case quick (no python started). [`inspect`] reads the
//! same state without installing anything (`cargo xtask env`).

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::probe::{probe, wanted, Pkg, Probe};
use crate::util::{self, display, find_on_path};

/// The PyTorch that tch 0.24 binds.
pub const TORCH_VERSION: &str = "2.11.0";
const APT: &str = "apt-get install python3 python3-venv python3-pip";
const STAMP: &str = "cvlab-setup.json";

/// The venv's folder: `<cache>/venv`.
pub fn dir() -> PathBuf {
    datasets_fetch::cache_root().join("venv")
}

/// The stamp that records a finished setup.
pub fn stamp_path(dir: &Path) -> PathBuf {
    dir.join(STAMP)
}

/// What the venv gives: its python and the torch folder (libtorch) in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenvInfo {
    /// The venv's python.
    pub python: PathBuf,
    /// torch's `__version__` (`2.11.0+cu130`).
    pub torch_version: String,
    /// torch's folder: what `LIBTORCH` points at.
    pub libtorch: PathBuf,
    /// Whether that torch uses the C++11 ABI (`LIBTORCH_CXX11_ABI`).
    pub cxx11_abi: bool,
}

/// The venv as found, without installing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenvState {
    /// Everything wanted is there.
    Ready(VenvInfo),
    /// What `setup` would install (pip requirements, each with why: not found, other version).
    Lacking {
        /// The requirements, e.g. `torch==2.11.0 (no venv yet)`.
        missing: Vec<String>,
    },
}

/// What the venv at `dir` holds of what xtask wants (with the reference packages when
/// `references`); starts its python only when the stamp is stale. Installs nothing.
pub fn inspect(dir: &Path, references: bool) -> Result<VenvState> {
    if let Some(info) = read_stamp(dir, references) {
        return Ok(VenvState::Ready(info));
    }
    let python = dir.join("bin").join("python");
    let pkgs = wanted(references);
    if !runs(&python) {
        let why = if dir.exists() {
            "the venv's python does not run"
        } else {
            "no venv yet"
        };
        return Ok(VenvState::Lacking {
            missing: pkgs.iter().map(|p| format!("{} ({why})", p.pip)).collect(),
        });
    }
    let found = probe(&python, &pkgs)?;
    let missing = found.missing(&pkgs);
    if missing.is_empty() {
        Ok(VenvState::Ready(info(&found, &python)?))
    } else {
        Ok(VenvState::Lacking { missing })
    }
}

/// The [`VenvInfo`] of a probe in which torch imported.
fn info(found: &Probe, python: &Path) -> Result<VenvInfo> {
    Ok(VenvInfo {
        python: python.to_path_buf(),
        torch_version: found
            .modules
            .get("torch")
            .cloned()
            .context("torch did not import")?,
        libtorch: found.libtorch.clone().context("torch's folder unknown")?,
        cxx11_abi: found.cxx11_abi.context("torch's C++ ABI unknown")?,
    })
}

/// Creates the venv and installs into it what is missing; quick when all is there.
pub fn ensure(dir: &Path, references: bool) -> Result<VenvInfo> {
    let python = dir.join("bin").join("python");
    if let Some(info) = read_stamp(dir, references) {
        return Ok(info);
    }
    if !runs(&python) {
        create(dir)?;
    }
    let pkgs = wanted(references);
    let mut found = probe(&python, &pkgs)?;
    let missing = found.missing(&pkgs);
    if !missing.is_empty() {
        eprintln!("xtask: {} needs: {}", dir.display(), missing.join(", "));
        pip_install(&python, &pkgs, &found.python)?;
        found = probe(&python, &pkgs)?;
        let missing = found.missing(&pkgs);
        if !missing.is_empty() {
            bail!(
                "after `pip install` the venv {} still lacks: {}",
                dir.display(),
                missing.join(", ")
            );
        }
    }
    let info = info(&found, &python)?;
    if let Err(e) = write_stamp(dir, &info, references) {
        eprintln!(
            "xtask: warning: could not write the stamp in {}: {e:#}",
            dir.display()
        );
    }
    Ok(info)
}

fn runs(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import sys"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

fn create(dir: &Path) -> Result<()> {
    let base = find_on_path("python3").ok_or_else(|| {
        anyhow!(
            "python3 is not on PATH: xtask needs it to install PyTorch {TORCH_VERSION} into {}. \
             Install it (Debian/Ubuntu): `{APT}`; or set LIBTORCH to a libtorch {TORCH_VERSION} folder",
            dir.display()
        )
    })?;
    let existed = dir.exists();
    let mut cmd = Command::new(&base);
    cmd.args(["-m", "venv"]);
    if existed {
        cmd.arg("--clear"); // there, but its python does not run: start over
    }
    cmd.arg(dir).stdin(Stdio::null());
    eprintln!("$ {}", display(&cmd));
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", display(&cmd)))?;
    if !out.status.success() {
        if !existed {
            let _ = fs::remove_dir_all(dir);
        }
        bail!(
            "`{}` failed: {}\nThe venv module (with ensurepip) is missing. Install it (Debian/Ubuntu): `{APT}`",
            display(&cmd),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let python = dir.join("bin").join("python");
    let pip = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .output();
    if !pip.is_ok_and(|o| o.status.success()) {
        bail!(
            "the venv {} has no pip (`{} -m pip --version` failed). Install pip (Debian/Ubuntu): \
             `{APT}`, then remove {} and rerun",
            dir.display(),
            python.display(),
            dir.display()
        );
    }
    Ok(())
}

fn pip_install(python: &Path, pkgs: &[Pkg], python_version: &str) -> Result<()> {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "install"]);
    if !util::stderr_is_terminal() {
        cmd.args(["--progress-bar", "off"]);
    }
    cmd.args(pkgs.iter().map(|p| p.pip))
        .stdin(Stdio::null())
        .stdout(util::to_stderr());
    util::run(&mut cmd).with_context(|| {
        format!(
            "pip could not install {} (python {python_version}); see pip's output above. PyTorch \
             {TORCH_VERSION} needs a python it publishes wheels for (CPython 3.10 or newer)",
            pkgs.iter().map(|p| p.pip).collect::<Vec<_>>().join(" ")
        )
    })
}

/// The installed distributions: changes whenever pip installs or removes anything.
fn fingerprint(site_packages: &Path) -> Option<String> {
    let mut names: Vec<String> = fs::read_dir(site_packages)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".dist-info"))
        .collect();
    names.sort();
    Some(names.join(" "))
}

fn write_stamp(dir: &Path, info: &VenvInfo, references: bool) -> Result<()> {
    let site = info
        .libtorch
        .parent()
        .context("torch folder has no parent")?;
    let stamp = serde_json::json!({
        "torch_version": info.torch_version,
        "libtorch": info.libtorch,
        "cxx11_abi": info.cxx11_abi,
        "references": references,
        "fingerprint": fingerprint(site),
    });
    let path = stamp_path(dir);
    fs::write(&path, serde_json::to_string_pretty(&stamp)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The stamp's [`VenvInfo`] if it still describes the venv (same installed distributions).
pub fn read_stamp(dir: &Path, references: bool) -> Option<VenvInfo> {
    let python = dir.join("bin").join("python");
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(stamp_path(dir)).ok()?).ok()?;
    let libtorch = PathBuf::from(v["libtorch"].as_str()?);
    let torch_version = v["torch_version"].as_str()?.to_owned();
    let fresh = python.exists()
        && torch_version.starts_with(TORCH_VERSION)
        && (!references || v["references"].as_bool()?)
        && libtorch.join("lib").is_dir()
        && fingerprint(libtorch.parent()?)? == v["fingerprint"].as_str()?;
    fresh.then_some(VenvInfo {
        python,
        torch_version,
        libtorch,
        cxx11_abi: v["cxx11_abi"].as_bool()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::parse_probe;

    #[test]
    fn a_probe_gives_the_venv_info_only_when_torch_imported() {
        let p = parse_probe(r#"{"python": "3.11", "modules": {"torch": "2.11.0+cu130"}, "errors": {}, "libtorch": "/v/lib/python3.11/site-packages/torch", "cxx11_abi": true}"#).unwrap();
        let info = info(&p, Path::new("/v/bin/python")).unwrap();
        assert_eq!(
            info.libtorch,
            PathBuf::from("/v/lib/python3.11/site-packages/torch")
        );
        assert!(info.cxx11_abi);
        let p =
            parse_probe(r#"{"python": "3.11", "modules": {}, "errors": {"torch": "x"}}"#).unwrap();
        assert!(super::info(&p, Path::new("/p")).is_err());
    }

    #[test]
    fn inspecting_a_missing_venv_lists_what_setup_would_install() {
        let dir = std::env::temp_dir().join(format!("xtask-no-venv-{}", std::process::id()));
        let state = inspect(&dir, false).unwrap();
        assert_eq!(
            state,
            VenvState::Lacking {
                missing: vec![
                    "torch==2.11.0 (no venv yet)".into(),
                    "numpy (no venv yet)".into()
                ]
            }
        );
        assert!(!dir.exists(), "inspect must create nothing");
        let VenvState::Lacking { missing } = inspect(&dir, true).unwrap() else {
            panic!("no venv, yet ready")
        };
        assert_eq!(missing.len(), crate::probe::wanted(true).len());
    }

    #[test]
    fn the_stamp_goes_stale_when_pip_changes_the_venv() {
        let tmp = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        let site = tmp.join("lib/python3.11/site-packages");
        fs::create_dir_all(site.join("torch/lib")).unwrap();
        fs::create_dir_all(site.join("torch-2.11.0.dist-info")).unwrap();
        fs::create_dir_all(tmp.join("bin")).unwrap();
        fs::write(tmp.join("bin/python"), "").unwrap();
        let info = VenvInfo {
            python: tmp.join("bin/python"),
            torch_version: "2.11.0+cpu".into(),
            libtorch: site.join("torch"),
            cxx11_abi: true,
        };
        write_stamp(&tmp, &info, false).unwrap();
        assert_eq!(read_stamp(&tmp, false), Some(info));
        assert_eq!(
            read_stamp(&tmp, true),
            None,
            "references were not installed"
        );
        fs::create_dir_all(site.join("numpy-2.4.6.dist-info")).unwrap();
        assert_eq!(read_stamp(&tmp, false), None);
        fs::remove_dir_all(&tmp).unwrap();
    }
}
