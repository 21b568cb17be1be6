//! Errors at the crate's public entry points: each says what was expected and what arrived.

use std::path::PathBuf;

/// What went wrong at one of det-pyramid's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum PyramidError {
    /// A configuration value out of range (an empty scale list, a stage index, ...).
    #[error("invalid {what}: expected {expected}, got {got}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// What is accepted.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// A tensor argument of the wrong shape, kind or size.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Input {
        /// Which argument.
        what: &'static str,
        /// What the entry point accepts.
        expected: String,
        /// The shape that arrived.
        got: Vec<i64>,
    },
    /// A checkpoint tensor whose shape does not fit the model.
    #[error(
        "checkpoint {path}: tensor `{name}` has shape {got:?}, the model expects {expected:?}"
    )]
    ShapeMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's state_dict name.
        name: String,
        /// The model's shape.
        expected: Vec<i64>,
        /// The file's shape.
        got: Vec<i64>,
    },
    /// A checkpoint made for another trunk (ResNet-50 weights into a ResNet-18, ...).
    #[error("checkpoint {path}: made for {found}, the model is {expected}")]
    WrongTrunk {
        /// The checkpoint file.
        path: PathBuf,
        /// The model's trunk.
        expected: String,
        /// The trunk the file's names and shapes describe.
        found: String,
    },
    /// An unreadable checkpoint or a strict load that failed.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An error from det-core (boxes, NMS, data, evaluation).
    #[error(transparent)]
    Det(#[from] det_core::DetError),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl PyramidError {
    pub(crate) fn config(
        what: &'static str,
        expected: impl Into<String>,
        got: impl std::fmt::Display,
    ) -> Self {
        Self::Config {
            what,
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    pub(crate) fn input(what: &'static str, expected: impl Into<String>, got: Vec<i64>) -> Self {
        Self::Input {
            what,
            expected: expected.into(),
            got,
        }
    }
}

/// det-pyramid's result type.
pub type Result<T, E = PyramidError> = std::result::Result<T, E>;
