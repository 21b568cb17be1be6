//! CenterNet's errors: each says what was expected and what arrived.

/// What went wrong at one of the CenterNet entry points.
#[derive(Debug, thiserror::Error)]
pub enum CenterNetError {
    /// A configuration value out of range (a stride, a top-K, an overlap ...).
    #[error("invalid {what}: expected {expected}, got {got}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// What is accepted.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// A tensor argument of the wrong shape or kind.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Input {
        /// Which argument.
        what: &'static str,
        /// What the entry point accepts.
        expected: String,
        /// The shape that arrived.
        got: Vec<i64>,
    },
    /// A box class id the heatmap head has no channel for.
    #[error("class id {class} of box {index} in image {image}: the head has {num_classes} classes (ids 0 ..= {})", num_classes - 1)]
    Class {
        /// Image in the batch.
        image: usize,
        /// Box in the image.
        index: usize,
        /// The id that arrived.
        class: i64,
        /// Classes of the heatmap head.
        num_classes: i64,
    },
    /// A box coordinate that is NaN or infinite.
    #[error("box {index} of image {image}: expected finite xyxy coordinates, got {coords:?}")]
    NonFinite {
        /// Image in the batch.
        image: usize,
        /// Box in the image.
        index: usize,
        /// The coordinates that arrived.
        coords: [f64; 4],
    },
    /// A file that could not be written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An error from det-pyramid (the trunk).
    #[error(transparent)]
    Pyramid(#[from] det_pyramid::PyramidError),
    /// An error from det-core (drawing, data).
    #[error(transparent)]
    Det(#[from] det_core::DetError),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl CenterNetError {
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

/// det-pyramid's [`det_pyramid::Detector`] speaks [`det_pyramid::PyramidError`]: CenterNet's
/// errors travel inside it with their message intact.
impl From<CenterNetError> for det_pyramid::PyramidError {
    fn from(e: CenterNetError) -> Self {
        match e {
            CenterNetError::Pyramid(p) => p,
            CenterNetError::Det(d) => Self::Det(d),
            CenterNetError::Torch(t) => Self::Torch(t),
            CenterNetError::Input {
                what,
                expected,
                got,
            } => Self::Input {
                what,
                expected,
                got,
            },
            other => Self::Config {
                what: "CenterNet input",
                expected: "valid boxes and settings".into(),
                got: other.to_string(),
            },
        }
    }
}

/// The CenterNet result type.
pub type Result<T, E = CenterNetError> = std::result::Result<T, E>;
