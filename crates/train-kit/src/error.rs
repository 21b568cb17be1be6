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
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file could not be parsed or written.
    #[error("json error in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// The loss (or another watched value) was NaN or infinite.
    #[error("non-finite value {value} at step {step}: expected a finite loss")]
    NonFinite {
        /// The micro-iteration (from 0) whose loss it was.
        step: u64,
        /// The value.
        value: f64,
    },

    /// A tensor had the wrong shape.
    #[error("tensor `{name}`: expected shape {expected:?}, found {actual:?}")]
    ShapeMismatch {
        /// The tensor.
        name: String,
        /// The shape expected.
        expected: Vec<i64>,
        /// The shape found.
        actual: Vec<i64>,
    },

    /// A tensor was expected but not there.
    #[error("tensor `{name}` missing from {context}")]
    MissingTensor {
        /// The tensor.
        name: String,
        /// Where it was looked for (a checkpoint file, an optimiser state).
        context: String,
    },

    /// A tensor was there but nothing expected it.
    #[error("unexpected tensor `{name}` in {context}: the model/optimiser has no such entry")]
    UnexpectedTensor {
        /// The tensor.
        name: String,
        /// Where it was found.
        context: String,
    },

    /// A checkpoint file exists but its content is not what its index promised.
    #[error("corrupt checkpoint {path}: expected {expected}, found {found}")]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// What its index promised.
        expected: String,
        /// What is there.
        found: String,
    },

    /// A parameter name given to the optimiser is not in the VarStore.
    #[error("parameter `{name}` is not a variable of the VarStore")]
    UnknownParam {
        /// The name.
        name: String,
    },

    /// A parameter appears in two groups.
    #[error("parameter `{name}` is in more than one parameter group")]
    DuplicateParam {
        /// The name.
        name: String,
    },

    /// A parameter no longer shares storage with the optimiser's flat buffer
    /// (e.g. after `VarStore::set_kind` / `set_device`, which replace the data).
    #[error(
        "parameter `{name}` was detached from the optimiser's flat buffer (its data was \
         replaced, e.g. by VarStore::set_kind/set_device): expected it to view offset {offset} \
         of the buffer; build the optimiser after moving the VarStore"
    )]
    ParamDetached {
        /// The parameter.
        name: String,
        /// Its offset in the flat buffer.
        offset: i64,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The data source failed (a batch could not be read or decoded).
    #[error(transparent)]
    Data(#[from] datasets::DataError),

    /// A collective of data-parallel training failed (a peer died or timed out, a rendezvous
    /// could not be made, tensors disagreed across ranks).
    #[error("distributed: {0}")]
    Distributed(String),

    /// Plot rendering failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The PNG being drawn.
        path: PathBuf,
        /// What plotters said.
        reason: String,
    },
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
