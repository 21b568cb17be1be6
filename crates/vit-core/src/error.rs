//! Errors at the crate's public entry points: each says what was expected and what arrived.

use std::path::PathBuf;

/// What went wrong at one of vit-core's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum ViTError {
    /// A configuration value out of range (heads not dividing the width, a block index, ...).
    #[error("invalid ViT config: {0}")]
    Config(String),
    /// A tensor argument of the wrong shape, kind or device.
    #[error("input: expected {expected}, got shape {got:?}")]
    Input {
        /// What the entry point accepts.
        expected: String,
        /// The shape that arrived.
        got: Vec<i64>,
    },
    #[error(
        "checkpoint {path}: tensor `{name}` has shape {got:?}, the model expects {expected:?}"
    )]
    /// A checkpoint tensor whose shape does not fit the model.
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
    /// An unreadable checkpoint, a strict load that failed, or a failed save.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// vit-core's result type.
pub type Result<T, E = ViTError> = std::result::Result<T, E>;
