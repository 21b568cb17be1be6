//! JSON-lines metrics log: one JSON value per line, appended and flushed per line (one
//! `write` call each, so a crash loses at most the line being written).

use crate::error::{Result, TrainError};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An append-only JSONL file.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending (created with its parent folders if missing), so a resumed
    /// run continues the same log.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(MetricsLog { path, file })
    }

    /// Appends `value` as one line.
    pub fn log(&self, value: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(value).map_err(|e| TrainError::Json {
            path: self.path.clone(),
            source: e,
        })?;
        line.push(b'\n');
        (&self.file)
            .write_all(&line)
            .map_err(|e| TrainError::io(&self.path, e))?;
        (&self.file)
            .flush()
            .map_err(|e| TrainError::io(&self.path, e))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every line back. A last line without its newline (a write cut short by a crash)
    /// is skipped if it does not parse; any other bad line is an error naming its number.
    pub fn read(path: impl AsRef<Path>) -> Result<Vec<Value>> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(v) => out.push(v),
                Err(_) if !complete && i + 1 == lines.len() => {}
                Err(e) => {
                    return Err(TrainError::CorruptCheckpoint {
                        path: path.to_path_buf(),
                        expected: format!("one JSON value on line {}", i + 1),
                        found: e.to_string(),
                    })
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/metrics.jsonl");
        {
            let log = MetricsLog::create(&path).unwrap();
            log.log(&json!({"step": 0, "loss": 1.5})).unwrap();
            log.log(&json!({"step": 1, "loss": 1.25})).unwrap();
        }
        let log = MetricsLog::create(&path).unwrap(); // reopening appends
        log.log(&json!({"step": 2, "loss": 1.0})).unwrap();
        let rows = MetricsLog::read(&path).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2]["loss"], json!(1.0));

        // A torn last line is tolerated, a bad middle line is not.
        std::fs::write(&path, "{\"a\":1}\n{\"a\":").unwrap();
        assert_eq!(MetricsLog::read(&path).unwrap().len(), 1);
        std::fs::write(&path, "{\"a\":1}\nnope\n{\"a\":2}\n").unwrap();
        let e = MetricsLog::read(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
