//! Errors at the crate's public entry points: each says what was expected and what arrived.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MaeError {
    /// A configuration value out of range (mask ratio, decoder width, recipe settings).
    #[error("invalid MAE config: {0}")]
    Config(String),
    /// A tensor argument of the wrong shape or kind.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Input {
        what: String,
        expected: String,
        got: Vec<i64>,
    },
    /// A checkpoint that does not fit the model.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// A non-finite loss: training stops before the bad update is applied.
    #[error("non-finite loss {value} at step {step} ({phase}): expected a finite loss")]
    NonFinite {
        phase: &'static str,
        step: u64,
        value: f64,
    },
    /// Writing a figure failed.
    #[error("figure {path}: {reason}")]
    Figure { path: PathBuf, reason: String },
    #[error(transparent)]
    ViT(#[from] vit_core::ViTError),
    #[error(transparent)]
    Train(#[from] train_kit::TrainError),
    #[error(transparent)]
    Data(#[from] datasets::DataError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl MaeError {
    pub(crate) fn input(
        what: impl Into<String>,
        expected: impl Into<String>,
        got: Vec<i64>,
    ) -> Self {
        MaeError::Input {
            what: what.into(),
            expected: expected.into(),
            got,
        }
    }

    /// Names the phase in the trainer's NaN guard error ([`MaeError::NonFinite`]).
    pub(crate) fn in_phase(self, phase: &'static str) -> Self {
        match self {
            MaeError::Train(train_kit::TrainError::NonFinite { step, value }) => {
                MaeError::NonFinite { phase, step, value }
            }
            e => e,
        }
    }
}

/// Turns train-kit's NaN guard into [`MaeError::NonFinite`] naming the phase.
pub(crate) fn finite(loss: &tch::Tensor, step: u64, phase: &'static str) -> Result<f64> {
    match train_kit::check_finite(loss, step) {
        Ok(v) => Ok(v),
        Err(train_kit::TrainError::NonFinite { step, value }) => {
            Err(MaeError::NonFinite { phase, step, value })
        }
        Err(e) => Err(e.into()),
    }
}

pub type Result<T, E = MaeError> = std::result::Result<T, E>;
