//! Crash-safe file writes: write a temp file in the target's folder, fsync it, rename it
//! over the target, fsync the folder. A reader sees the old file or the new one, never a
//! partial one. Also the SHA-256 used to verify checkpoint files.

use crate::error::{Result, TrainError};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prefix of temp files; anything starting with it is a leftover of an interrupted write.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// Temp path in `dir` for the final name `name`.
pub(crate) fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{TMP_PREFIX}{}-{name}", std::process::id()))
}

pub(crate) fn fsync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(path, e))
}

/// fsync of a folder makes a rename in it durable (Linux; other systems: best effort).
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    match File::open(dir).and_then(|f| f.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(target_os = "linux") => Err(TrainError::io(dir, e)),
        Err(_) => Ok(()),
    }
}

/// Renames `tmp` to `dir/name` and makes the rename durable.
pub(crate) fn commit(tmp: &Path, dir: &Path, name: &str) -> Result<()> {
    let target = dir.join(name);
    std::fs::rename(tmp, &target).map_err(|e| TrainError::io(&target, e))?;
    fsync_dir(dir)
}

/// Writes `bytes` to `dir/name` atomically.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(dir, name);
    let mut f = File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| TrainError::io(&tmp, e))?;
    drop(f);
    commit(&tmp, dir, name)
}

/// (length in bytes, lowercase hex SHA-256) of a file.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| TrainError::io(path, e))?;
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((n, hex))
}
