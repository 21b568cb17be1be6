//! Crash-safe file writes: the bytes go to a temp file in the target's folder, which is
//! fsynced, renamed over the target, and the folder fsynced, so a reader (or a run restarted
//! after a crash) sees the old file or the new one, never a partial one.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prefix of temp files; a file starting with it is a leftover of an interrupted write.
pub const TMP_PREFIX: &str = ".tmp-";

/// A temp file beside its final path: write it (or let another writer fill its path), then
/// [`AtomicFile::commit`] it into place. Dropped uncommitted, the temp file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// A temp path in `target`'s folder (`.tmp-<pid>-<name>`); nothing is created yet.
    pub fn new(target: &Path) -> io::Result<Self> {
        let name = target.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: expected a file path, found no file name",
                    target.display()
                ),
            )
        })?;
        let tmp = folder(target).join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            name.to_string_lossy()
        ));
        Ok(AtomicFile {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// The temp path to write to.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// fsyncs the temp file, renames it over the target and fsyncs the folder.
    pub fn commit(mut self) -> io::Result<()> {
        File::open(&self.tmp)?.sync_all()?;
        std::fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        fsync_dir(folder(&self.target))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The folder of `path` (`.` for a bare file name).
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsync of a folder makes a rename in it durable (Linux; elsewhere best effort).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|f| f.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(target_os = "linux") => Err(e),
        Err(_) => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically. Errors name nothing: wrap them with the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file = AtomicFile::new(path)?;
    let mut f = File::create(file.tmp_path())?;
    f.write_all(bytes)?;
    drop(f);
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_leave_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn an_uncommitted_file_is_removed_and_the_old_one_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.bin");
        write_atomic(&p, b"old").unwrap();
        {
            let f = AtomicFile::new(&p).unwrap();
            std::fs::write(f.tmp_path(), b"half").unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(AtomicFile::new(Path::new("/")).is_err());
    }
}
