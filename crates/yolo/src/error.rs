//! Errors at the crate's public entry points: each says what was expected and what arrived.

/// What went wrong at one of yolo's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum YoloError {
    /// A configuration value out of range (S, B, C, widths, input size).
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
    /// Ground truth the grid cannot hold (more objects than cells, a class beyond C, a NaN box).
    #[error("targets: {0}")]
    Targets(String),
    /// An error from det-pyramid (the ResNet trunk).
    #[error(transparent)]
    Pyramid(#[from] det_pyramid::PyramidError),
    /// An error from det-core (NMS, data).
    #[error(transparent)]
    Det(#[from] det_core::DetError),
    /// An error from train-kit (checkpoints).
    #[error(transparent)]
    Train(#[from] train_kit::TrainError),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// A file that could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl YoloError {
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

impl From<YoloError> for det_pyramid::PyramidError {
    /// So that [`det_pyramid::Detector`] can be implemented: errors keep their text.
    fn from(e: YoloError) -> Self {
        match e {
            YoloError::Pyramid(p) => p,
            YoloError::Det(d) => det_pyramid::PyramidError::Det(d),
            YoloError::Torch(t) => det_pyramid::PyramidError::Torch(t),
            other => det_pyramid::PyramidError::Config {
                what: "yolo",
                expected: "a valid YOLO input".into(),
                got: other.to_string(),
            },
        }
    }
}

/// yolo's result type.
pub type Result<T, E = YoloError> = std::result::Result<T, E>;
