//! The crate's error type: every variant says what was expected and what arrived.

use std::path::PathBuf;

/// Errors of det-core's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum DetError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Malformed input text; `line`/`column` are 1-based (column 0 when unknown).
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        /// The file (or `<serialise>`, `<string>`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What the parser expected and found.
        message: String,
    },
    /// A box that is not a box: NaN/infinite coordinate, x2 < x1, or a negative size.
    #[error("{what} {id}: invalid box {coords:?}: {reason}")]
    InvalidBox {
        /// What holds the box (`annotation`, `detection`, `box`).
        what: &'static str,
        /// Its id or index.
        id: String,
        /// The coordinates as given.
        coords: [f64; 4],
        /// Which rule they break.
        reason: &'static str,
    },
    /// A score that is NaN or infinite.
    #[error("{what} {id}: score {score} is not a finite number")]
    InvalidScore {
        /// What holds the score.
        what: &'static str,
        /// Its id or index.
        id: String,
        /// The score as given.
        score: f64,
    },
    /// Two inputs that must be equally long are not.
    #[error("length mismatch: {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// An argument outside what the function accepts (a shape, a kind, a setting).
    #[error("invalid argument {name}: expected {expected}, got {got}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// What it must be.
        expected: String,
        /// What it is.
        got: String,
    },
    /// A detection on an image the ground truth does not list (pycocotools asserts).
    #[error("detection {index}: image_id {image_id} is not an image of the ground truth")]
    UnknownImage {
        /// Index of the detection in the results list.
        index: usize,
        /// Its `image_id`.
        image_id: i64,
    },
    /// Two annotations or categories with the same id.
    #[error("duplicate {what} id {id}")]
    DuplicateId {
        /// `annotation` or `category`.
        what: &'static str,
        /// The repeated id.
        id: i64,
    },
    /// A file a data set lists is not there (an image named by an annotation file, a split list).
    #[error("{what}: expected the file {path}, which does not exist (listed in {listed_in})")]
    MissingFile {
        /// What the file is (`image`, `annotation`).
        what: &'static str,
        /// The missing path.
        path: PathBuf,
        /// The file that names it.
        listed_in: String,
    },
    /// An image file that does not decode.
    #[error("{path}: expected a PNG or JPEG image: {message}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// An image whose size is not the one its annotation (or the caller) says.
    #[error("image {image}: expected {expected_w}x{expected_h} pixels, got {got_w}x{got_h}")]
    ImageSize {
        /// The image (file or id).
        image: String,
        /// Width it should have.
        expected_w: u32,
        /// Height it should have.
        expected_h: u32,
        /// Width it has.
        got_w: u32,
        /// Height it has.
        got_h: u32,
    },
    /// A box that reaches outside its image by more than the tolerance.
    #[error("{what} {id} of image {image}: box {coords:?} (xyxy) lies outside the {width}x{height} image")]
    BoxOutsideImage {
        /// What holds the box.
        what: &'static str,
        /// Its id.
        id: String,
        /// The image.
        image: String,
        /// The box, `xyxy`.
        coords: [f64; 4],
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// A data set of another crate (MNIST through `datasets`) could not be loaded.
    #[error("data set {name}: {message}")]
    Dataset {
        /// The data set.
        name: String,
        /// Why it could not be loaded.
        message: String,
    },
    /// A detector handed to the evaluation helper failed, or returned what it should not.
    #[error("detector ({stage}): {message}")]
    Detector {
        /// `forward` or `decode`.
        stage: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A tensor operation failed (shape, device, out of memory) with libtorch's message.
    #[error("{context}: {message}")]
    Tensor {
        /// The operation.
        context: String,
        /// libtorch's message.
        message: String,
    },
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

/// `Result` with [`DetError`].
pub type Result<T, E = DetError> = std::result::Result<T, E>;
