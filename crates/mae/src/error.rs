//! Errors at the crate's public entry points: each says what was expected and what arrived.

use std::path::PathBuf;

/// What went wrong at one of mae's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum MaeError {
    /// A configuration value out of range (mask ratio, decoder width, recipe settings).
    #[error("invalid MAE config: {0}")]
    Config(String),
    /// A tensor argument of the wrong shape or kind.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Input {
        /// The argument and entry point.
        what: String,
        /// What the entry point accepts.
        expected: String,
        /// The shape that arrived.
        got: Vec<i64>,
    },
    /// A checkpoint that does not fit the model.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What did not fit.
        message: String,
    },
    /// A non-finite loss: training stops before the bad update is applied.
    #[error("non-finite loss {value} at step {step} ({phase}): expected a finite loss")]
    NonFinite {
        /// Pre-training, fine-tuning or the linear probe.
        phase: &'static str,
        /// The optimiser step the loss belongs to.
        step: u64,
        /// The loss.
        value: f64,
    },
    /// Writing a figure failed.
    #[error("figure {path}: {reason}")]
    Figure {
        /// The figure file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An error of the vit-core encoder or decoder blocks.
    #[error(transparent)]
    ViT(#[from] vit_core::ViTError),
    /// An error of train-kit's loop or optimiser.
    #[error(transparent)]
    Train(#[from] train_kit::TrainError),
    /// An error of the data sets or the loader.
    #[error(transparent)]
    Data(#[from] datasets::DataError),
    /// An error from libtorch.
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

/// mae's result type.
pub type Result<T, E = MaeError> = std::result::Result<T, E>;
