//! The crate's error type: every variant says what was expected and what arrived.

use std::path::PathBuf;

/// Errors of det-core's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum DetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Malformed input text; `line`/`column` are 1-based (column 0 when unknown).
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A box that is not a box: NaN/infinite coordinate, x2 < x1, or a negative size.
    #[error("{what} {id}: invalid box {coords:?}: {reason}")]
    InvalidBox {
        what: &'static str,
        id: String,
        coords: [f64; 4],
        reason: &'static str,
    },
    #[error("{what} {id}: score {score} is not a finite number")]
    InvalidScore {
        what: &'static str,
        id: String,
        score: f64,
    },
    #[error("length mismatch: {what}: expected {expected}, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("invalid argument {name}: expected {expected}, got {got}")]
    InvalidArgument {
        name: &'static str,
        expected: String,
        got: String,
    },
    #[error("detection {index}: image_id {image_id} is not an image of the ground truth")]
    UnknownImage { index: usize, image_id: i64 },
    #[error("duplicate {what} id {id}")]
    DuplicateId { what: &'static str, id: i64 },
    /// A file a data set lists is not there (an image named by an annotation file, a split list).
    #[error("{what}: expected the file {path}, which does not exist (listed in {listed_in})")]
    MissingFile {
        what: &'static str,
        path: PathBuf,
        listed_in: String,
    },
    /// An image file that does not decode.
    #[error("{path}: expected a PNG or JPEG image: {message}")]
    Image { path: PathBuf, message: String },
    /// An image whose size is not the one its annotation (or the caller) says.
    #[error("image {image}: expected {expected_w}x{expected_h} pixels, got {got_w}x{got_h}")]
    ImageSize {
        image: String,
        expected_w: u32,
        expected_h: u32,
        got_w: u32,
        got_h: u32,
    },
    /// A box that reaches outside its image by more than the tolerance.
    #[error("{what} {id} of image {image}: box {coords:?} (xyxy) lies outside the {width}x{height} image")]
    BoxOutsideImage {
        what: &'static str,
        id: String,
        image: String,
        coords: [f64; 4],
        width: u32,
        height: u32,
    },
    /// A data set of another crate (MNIST through `datasets`) could not be loaded.
    #[error("data set {name}: {message}")]
    Dataset { name: String, message: String },
    /// A detector handed to the evaluation helper failed, or returned what it should not.
    #[error("detector ({stage}): {message}")]
    Detector {
        stage: &'static str,
        message: String,
    },
    /// A tensor operation failed (shape, device, out of memory) with libtorch's message.
    #[error("{context}: {message}")]
    Tensor { context: String, message: String },
}

impl DetError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DetError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn arg(name: &'static str, expected: impl Into<String>, got: impl ToString) -> Self {
        DetError::InvalidArgument {
            name,
            expected: expected.into(),
            got: got.to_string(),
        }
    }
}

pub type Result<T, E = DetError> = std::result::Result<T, E>;
