//! Errors at the crate's public entry points: each says what was expected and what arrived.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ViTError {
    #[error("invalid ViT config: {0}")]
    Config(String),
    #[error("input: expected {expected}, got shape {got:?}")]
    Input { expected: String, got: Vec<i64> },
    #[error(
        "checkpoint {path}: tensor `{name}` has shape {got:?}, the model expects {expected:?}"
    )]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<i64>,
        got: Vec<i64>,
    },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = ViTError> = std::result::Result<T, E>;
