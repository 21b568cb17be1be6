//! seglearn's smartwatch recordings (Burns et al., "Shoulder physiotherapy exercise recognition:
//! machine learning the inertial signals from a smartwatch", arXiv:1802.01489): 140 sequences of
//! a six-axis IMU (accelerometer `ax ay az`, gyroscope `wx wy wz`) at 50 Hz, each one set of 20
//! repetitions of one of 7 shoulder exercises, with the subject's number and the arm's side.
//!
//! The PyPI wheel `seglearn==1.2.5` ships them as `seglearn/data/watch_dataset.npy`, a pickled
//! dict of object arrays (`X`, `y`, `subject`, `side`, `X_labels`, `y_labels`) that only NumPy's
//! unpickler reads. [`Watch::load`] fetches the wheel (checksummed, through `datasets::fetch`),
//! converts the pickle once, with the workspace's Python (`$CVLAB_PYTHON`, else `python3`, with
//! NumPy), into plain arrays (`signals.npy` f32 `[samples, 6]`, `lengths.npy`, `exercise.npy`,
//! `subject.npy`, `side.npy`, i64, and two text files of names) beside the cache, and from then
//! on reads only those, in Rust. The conversion script checks the structure and names what
//! differs; the Rust side checks the arrays against each other.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array1, Array2};
use tch::Tensor;

use crate::npy::read_npy;
use crate::{DataError, Result};

/// The recordings' sampling rate.
pub const WATCH_RATE_HZ: f64 = 50.0;

/// The number of IMU channels.
pub const WATCH_CHANNELS: usize = 6;

/// The plain-array folder's version: bump it when the converted layout changes.
const PLAIN: &str = "plain-v1";

/// One recording: one set of one exercise by one subject.
#[derive(Debug)]
pub struct WatchRecording {
    /// `[T, 6]` float32: `ax ay az wx wy wz`.
    pub signal: Tensor,
    /// The exercise, an index into [`Watch::exercises`].
    pub exercise: i64,
    /// The participant's number.
    pub subject: i64,
    /// The right arm (seglearn's `side == 1`), else the left.
    pub right_side: bool,
}

/// All 140 recordings and their label names.
#[derive(Debug)]
pub struct Watch {
    /// In the pickle's order.
    pub recordings: Vec<WatchRecording>,
    /// The exercise names (`PEN ABD FEL IR ER TRAP ROW`).
    pub exercises: Vec<String>,
    /// The channel names (`ax ay az wx wy wz`).
    pub channels: Vec<String>,
}

/// Converts the pickle into the plain arrays; exits 2 naming what differs from the documented
/// structure.
const CONVERT: &str = r#"
import sys, os, numpy as np
src, out = sys.argv[1], sys.argv[2]
def fail(msg):
    sys.stderr.write(src + ": " + msg + "\n"); sys.exit(2)
try:
    d = np.load(src, allow_pickle=True).item()
except Exception as e:
    fail("not a pickled dict in an .npy file (%s: %s)" % (type(e).__name__, e))
if not isinstance(d, dict):
    fail("expected a pickled dict, found %s" % type(d).__name__)
want = ["X", "y", "subject", "side", "X_labels", "y_labels"]
missing = [k for k in want if k not in d]
if missing:
    fail("expected keys %s, missing %s (found %s)" % (want, missing, sorted(d)))
X = list(d["X"])
n = len(X)
for k in ["y", "subject", "side"]:
    if len(d[k]) != n:
        fail("%s has %d entries, X has %d" % (k, len(d[k]), n))
for i, x in enumerate(X):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 6:
        fail("X[%d] has shape %s, expected [T, 6]" % (i, x.shape))
np.save(os.path.join(out, "signals.npy"), np.ascontiguousarray(np.concatenate([np.asarray(x, np.float32) for x in X])))
np.save(os.path.join(out, "lengths.npy"), np.array([len(x) for x in X], np.int64))
for k, name in [("y", "exercise"), ("subject", "subject"), ("side", "side")]:
    np.save(os.path.join(out, name + ".npy"), np.asarray(d[k]).astype(np.int64))
for k, name in [("y_labels", "exercises"), ("X_labels", "channels")]:
    with open(os.path.join(out, name + ".txt"), "w") as f:
        f.write("\n".join(str(v) for v in d[k]) + "\n")
"#;

impl Watch {
    /// The recordings: fetched (or found under `data_root`, see `datasets::fetch::ensure`),
    /// converted once, read.
    pub fn load(data_root: Option<&Path>) -> Result<Watch> {
        let dir = crate::fetch::ensure(crate::fetch::SEGLEARN_WATCH.name, data_root)?;
        let plain = plain_dir(&dir);
        if !plain.join("channels.txt").is_file() {
            convert(&dir.join("watch_dataset.npy"), &plain)?;
        }
        Self::read_plain(&plain)
    }

    /// Reads the converted arrays of [`Watch::load`] from `dir`, checking them against each
    /// other.
    pub fn read_plain(dir: &Path) -> Result<Watch> {
        let signals: Array2<f32> = read_npy(&dir.join("signals.npy"))?;
        let lengths: Array1<i64> = read_npy(&dir.join("lengths.npy"))?;
        let exercise: Array1<i64> = read_npy(&dir.join("exercise.npy"))?;
        let subject: Array1<i64> = read_npy(&dir.join("subject.npy"))?;
        let side: Array1<i64> = read_npy(&dir.join("side.npy"))?;
        let exercises = read_names(&dir.join("exercises.txt"))?;
        let channels = read_names(&dir.join("channels.txt"))?;
        let n = lengths.len();
        let shape = |what: &str, expected: String, actual: String| DataError::Shape {
            what: format!("{}: {what}", dir.display()),
            expected,
            actual,
        };
        if signals.ncols() != WATCH_CHANNELS || channels.len() != WATCH_CHANNELS {
            return Err(shape(
                "channels",
                format!("{WATCH_CHANNELS}"),
                format!("{} columns, {} names", signals.ncols(), channels.len()),
            ));
        }
        for (what, len) in [
            ("exercise", exercise.len()),
            ("subject", subject.len()),
            ("side", side.len()),
        ] {
            if len != n {
                return Err(shape(what, format!("{n} entries"), format!("{len}")));
            }
        }
        let total: i64 = lengths.iter().sum();
        if lengths.iter().any(|&l| l <= 0) || total != signals.nrows() as i64 {
            return Err(shape(
                "lengths",
                format!("positive lengths summing to {} samples", signals.nrows()),
                format!("sum {total}"),
            ));
        }
        if let Some(bad) = exercise
            .iter()
            .find(|&&e| e < 0 || e >= exercises.len() as i64)
        {
            return Err(shape(
                "exercise",
                format!("a class index below {}", exercises.len()),
                format!("{bad}"),
            ));
        }
        // C order whatever the writer chose (NumPy keeps a Fortran-ordered array's layout).
        let signals = signals.as_standard_layout();
        let flat = signals
            .as_slice()
            .ok_or_else(|| shape("signals", "C order".into(), "another order".into()))?;
        let all = Tensor::from_slice(flat).view([signals.nrows() as i64, WATCH_CHANNELS as i64]);
        let mut start = 0i64;
        let recordings = (0..n)
            .map(|i| {
                let len = lengths[i];
                let signal = all.narrow(0, start, len).copy();
                start += len;
                WatchRecording {
                    signal,
                    exercise: exercise[i],
                    subject: subject[i],
                    right_side: side[i] == 1,
                }
            })
            .collect();
        Ok(Watch {
            recordings,
            exercises,
            channels,
        })
    }

    /// The subjects' numbers, sorted and unique.
    pub fn subjects(&self) -> Vec<i64> {
        let mut s: Vec<i64> = self.recordings.iter().map(|r| r.subject).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// `(train, test)`: the recordings of the subjects in `test_subjects` go to test, the rest
    /// to train, each in the original order.
    pub fn split_by_subject(
        &self,
        test_subjects: &[i64],
    ) -> (Vec<&WatchRecording>, Vec<&WatchRecording>) {
        self.recordings
            .iter()
            .partition(|r| !test_subjects.contains(&r.subject))
    }

    /// The number of samples over all recordings.
    pub fn samples(&self) -> i64 {
        self.recordings.iter().map(|r| r.signal.size()[0]).sum()
    }
}

/// Where the plain arrays of the verified data set in `dir` go: beside it when writable (the
/// default cache), else under the cache (a read-only `--data-root`).
fn plain_dir(dir: &Path) -> PathBuf {
    let beside = dir.join(PLAIN);
    if beside.is_dir() || std::fs::create_dir_all(&beside).is_ok() {
        beside
    } else {
        crate::fetch::cache_root()
            .join("converted")
            .join(crate::fetch::SEGLEARN_WATCH.name)
            .join(PLAIN)
    }
}

/// Runs [`CONVERT`] into a scratch folder next to `out`, then moves it into place.
fn convert(src: &Path, out: &Path) -> Result<()> {
    let parent = out.parent().unwrap_or(out);
    std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    let work = parent.join(format!(".{PLAIN}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| DataError::io(&work, e))?;
    let python = std::env::var_os("CVLAB_PYTHON")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into());
    let run = Command::new(&python)
        .args(["-c", CONVERT])
        .arg(src)
        .arg(&work)
        .output();
    let result = match run {
        Err(e) => Err(DataError::Config(format!(
            "converting {} needs a Python with NumPy ({}: {e}); set CVLAB_PYTHON \
             (`cargo xtask env` prints it)",
            src.display(),
            python.to_string_lossy()
        ))),
        Ok(o) if !o.status.success() => Err(DataError::Npy {
            path: src.to_path_buf(),
            reason: format!(
                "conversion to plain arrays failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        }),
        Ok(_) => {
            let _ = std::fs::remove_dir_all(out);
            std::fs::rename(&work, out).map_err(|e| DataError::io(out, e))
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn read_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    Ok(text.lines().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::write_npy;
    use ndarray::array;

    fn write_plain(dir: &Path, lengths: Array1<i64>, exercise: Array1<i64>) {
        let total = lengths.sum() as usize;
        let signals = Array2::<f32>::from_shape_fn((total, 6), |(t, c)| (t * 10 + c) as f32);
        write_npy(&dir.join("signals.npy"), &signals).unwrap();
        write_npy(&dir.join("lengths.npy"), &lengths).unwrap();
        let n = lengths.len();
        write_npy(&dir.join("exercise.npy"), &exercise).unwrap();
        write_npy(&dir.join("subject.npy"), &Array1::from_vec(vec![3i64; n])).unwrap();
        write_npy(&dir.join("side.npy"), &Array1::from_vec(vec![1i64; n])).unwrap();
        std::fs::write(dir.join("exercises.txt"), "A\nB\n").unwrap();
        std::fs::write(dir.join("channels.txt"), "ax\nay\naz\nwx\nwy\nwz\n").unwrap();
    }

    #[test]
    fn plain_arrays_split_into_recordings_and_are_checked() {
        let d = tempfile::tempdir().unwrap();
        write_plain(d.path(), array![2, 3], array![0, 1]);
        let w = Watch::read_plain(d.path()).unwrap();
        assert_eq!(w.recordings.len(), 2);
        assert_eq!(w.recordings[1].signal.size(), [3, 6]);
        // The second recording starts at sample 2.
        assert_eq!(w.recordings[1].signal.double_value(&[0, 1]), 21.0);
        assert_eq!(w.samples(), 5);
        assert_eq!(w.subjects(), [3]);
        let (train, test) = w.split_by_subject(&[3]);
        assert_eq!((train.len(), test.len()), (0, 2));
        // Lengths that do not cover the samples, and a label beyond the names, are errors.
        write_plain(d.path(), array![2, 3], array![0, 2]);
        let e = Watch::read_plain(d.path()).unwrap_err().to_string();
        assert!(e.contains("class index below 2"), "{e}");
        write_npy(&d.path().join("lengths.npy"), &array![2i64, 4]).unwrap();
        let e = Watch::read_plain(d.path()).unwrap_err().to_string();
        assert!(e.contains("summing to 5"), "{e}");
    }

    #[test]
    fn a_pickle_of_another_structure_is_named() {
        let python = std::env::var_os("CVLAB_PYTHON");
        if python.is_none() {
            eprintln!("skipped: CVLAB_PYTHON unset");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("bad.npy");
        let made = Command::new(python.unwrap_or_default())
            .args([
                "-c",
                "import sys, numpy as np; np.save(sys.argv[1], {'X': [np.zeros((3, 5))]}, allow_pickle=True)",
            ])
            .arg(&src)
            .status()
            .unwrap();
        assert!(made.success());
        let e = convert(&src, &d.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing ['y'"), "{e}");
        assert!(!d.path().join("out").exists(), "nothing half-written");
    }
}
