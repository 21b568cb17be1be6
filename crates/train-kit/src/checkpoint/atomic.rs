//! Crash-safe file writes for checkpoints, on `cvlab_util`'s atomic writer (temp file in the
//! same folder, fsync, rename, fsync of the folder): a reader sees the old file or the new
//! one, never a partial one. Also the SHA-256 used to verify checkpoint files.

use crate::error::{Result, TrainError};
use cvlab_util::AtomicFile;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::Path;

/// Prefix of temp files; anything starting with it is a leftover of an interrupted write.
pub(crate) const TMP_PREFIX: &str = cvlab_util::atomic::TMP_PREFIX;

/// A temp file in `dir` for the final name `name`, to be filled by another writer (e.g.
/// safetensors) and then [`AtomicFile::commit`]ted.
pub(crate) fn staged(dir: &Path, name: &str) -> Result<AtomicFile> {
    let target = dir.join(name);
    AtomicFile::new(&target).map_err(|e| TrainError::io(&target, e))
}

/// Commits a staged file, naming its target on failure.
pub(crate) fn commit(file: AtomicFile) -> Result<()> {
    let target = file.target().to_path_buf();
    file.commit().map_err(|e| TrainError::io(&target, e))
}

/// Writes `bytes` to `dir/name` atomically.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    cvlab_util::write_atomic(&target, bytes).map_err(|e| TrainError::io(&target, e))
}

/// (length in bytes, lowercase hex SHA-256) of a file.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| TrainError::io(path, e))?;
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((n, hex))
}
