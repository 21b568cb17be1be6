//! The crate's error type, [`TrainError`], and its `Result` alias.
//!
//! Every message names what was expected and what was found, and the file or tensor involved,
//! so that a failed resume or a diverged run can be diagnosed from the log line alone.

use std::path::PathBuf;

/// Errors of the training kit.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A libtorch call failed.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),

    /// A file system operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file could not be parsed or written.
    #[error("json error in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The loss (or another watched value) was NaN or infinite.
    #[error("non-finite value {value} at step {step}: expected a finite loss")]
    NonFinite { step: u64, value: f64 },

    /// A tensor had the wrong shape.
    #[error("tensor `{name}`: expected shape {expected:?}, found {actual:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<i64>,
        actual: Vec<i64>,
    },

    /// A tensor was expected but not there.
    #[error("tensor `{name}` missing from {context}")]
    MissingTensor { name: String, context: String },

    /// A tensor was there but nothing expected it.
    #[error("unexpected tensor `{name}` in {context}: the model/optimiser has no such entry")]
    UnexpectedTensor { name: String, context: String },

    /// A checkpoint file exists but its content is not what its index promised.
    #[error("corrupt checkpoint {path}: expected {expected}, found {found}")]
    CorruptCheckpoint {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// A parameter name given to the optimiser is not in the VarStore.
    #[error("parameter `{name}` is not a variable of the VarStore")]
    UnknownParam { name: String },

    /// A parameter appears in two groups.
    #[error("parameter `{name}` is in more than one parameter group")]
    DuplicateParam { name: String },

    /// A parameter no longer shares storage with the optimiser's flat buffer
    /// (e.g. after `VarStore::set_kind` / `set_device`, which replace the data).
    #[error(
        "parameter `{name}` was detached from the optimiser's flat buffer (its data was \
         replaced, e.g. by VarStore::set_kind/set_device): expected it to view offset {offset} \
         of the buffer; build the optimiser after moving the VarStore"
    )]
    ParamDetached { name: String, offset: i64 },

    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The data source failed (a batch could not be read or decoded).
    #[error(transparent)]
    Data(#[from] datasets::DataError),

    /// Plot rendering failed.
    #[error("plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

/// `Result` with [`TrainError`] as the default error.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// Wraps an `std::io::Error` with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
