//! Errors at FCOS's public entry points: each says what was expected and what arrived.

use det_pyramid::PyramidError;

/// What went wrong at one of the FCOS entry points.
#[derive(Debug, thiserror::Error)]
pub enum FcosError {
    /// A configuration value out of range (ranges per level, groups, thresholds).
    #[error("invalid FCOS {what}: expected {expected}, got {got}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// What is accepted.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// A tensor argument of the wrong shape, or ground truth the head cannot learn from
    /// (a class id beyond the head, a box outside the input, a NaN).
    #[error("FCOS {what}: expected {expected}, got {got}")]
    Input {
        /// Which argument.
        what: &'static str,
        /// What the entry point accepts.
        expected: String,
        /// What arrived (a shape or a value).
        got: String,
    },
    /// An error from the trunk or the pyramid.
    #[error(transparent)]
    Pyramid(#[from] PyramidError),
    /// An error from det-core (NMS).
    #[error(transparent)]
    Det(#[from] det_core::DetError),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl FcosError {
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

    pub(crate) fn input(
        what: &'static str,
        expected: impl Into<String>,
        got: impl std::fmt::Debug,
    ) -> Self {
        Self::Input {
            what,
            expected: expected.into(),
            got: format!("{got:?}"),
        }
    }
}

impl From<FcosError> for PyramidError {
    /// The [`det_pyramid::Detector`] trait speaks det-pyramid's error: FCOS's own cases
    /// travel as a `Config` error carrying the message.
    fn from(e: FcosError) -> Self {
        match e {
            FcosError::Pyramid(p) => p,
            FcosError::Det(d) => PyramidError::Det(d),
            FcosError::Torch(t) => PyramidError::Torch(t),
            other => PyramidError::Config {
                what: "FCOS input",
                expected: "valid FCOS inputs".into(),
                got: other.to_string(),
            },
        }
    }
}

/// The FCOS module's result type.
pub type Result<T, E = FcosError> = std::result::Result<T, E>;
