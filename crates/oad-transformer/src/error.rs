//! The crate's one error type: every variant says what was expected and what arrived.

use std::path::PathBuf;

/// Errors of the model, the data path, the protocol and the stream.
#[derive(Debug, thiserror::Error)]
pub enum OadError {
    /// A configuration that cannot be built (zero sizes, indivisible heads, classes out of range).
    #[error("invalid config: {0}")]
    Config(String),
    /// A tensor of the wrong shape, kind or device at a public entry point.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// The entry point and argument.
        what: &'static str,
        /// The expected layout.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// Per-frame labels outside `0..num_classes`, or features and labels of different lengths.
    #[error("labels: {0}")]
    Labels(String),
    /// A stream too short for one window, or an empty set of streams.
    #[error("stream: {0}")]
    Stream(String),
    /// Scores or labels the evaluation cannot use (NaN, mismatched lengths, no frames).
    #[error("evaluation: {0}")]
    Eval(String),
    /// A data file that is missing or malformed.
    #[error("{path}: {reason}")]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data layer (`datasets`) failed.
    #[error(transparent)]
    Dataset(#[from] datasets::DataError),
    /// A libtorch call failed.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, OadError>;

/// A [`OadError::Shape`] for `what`, with the arriving tensor's size.
pub(crate) fn shape_error(
    what: &'static str,
    expected: impl Into<String>,
    got: &tch::Tensor,
) -> OadError {
    OadError::Shape {
        what,
        expected: expected.into(),
        got: format!("{:?} {:?} on {:?}", got.size(), got.kind(), got.device()),
    }
}
