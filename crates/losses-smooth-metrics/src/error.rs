//! Errors at the crate's public entry points: each says what was expected and what arrived.

/// What went wrong at one of the crate's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum SmoothError {
    /// A temperature (or another scale) that is not a finite number > 0.
    #[error("{name}: expected a finite value > 0, got {got}")]
    Temperature {
        /// Which parameter.
        name: &'static str,
        /// The value that arrived.
        got: f64,
    },
    /// An empty input where at least one element is needed.
    #[error("{what}: expected at least one element, got an empty input (shape {shape:?})")]
    Empty {
        /// Which input.
        what: &'static str,
        /// Its shape.
        shape: Vec<i64>,
    },
    /// A tensor of the wrong shape or kind.
    #[error("{what}: expected {expected}, got shape {got:?} ({kind})")]
    Shape {
        /// Which input.
        what: &'static str,
        /// What the entry point accepts.
        expected: String,
        /// The shape that arrived.
        got: Vec<i64>,
        /// The kind that arrived.
        kind: String,
    },
    /// A label out of range (a class index outside `0..classes`, a binary target not 0/1).
    #[error("{what}: expected values in {expected}, got {got}")]
    Label {
        /// Which input.
        what: &'static str,
        /// The accepted range.
        expected: String,
        /// The offending value.
        got: f64,
    },
    /// A NaN or an infinity in an input.
    #[error("{what}: expected finite values, got {count} NaN or infinite element(s)")]
    NotFinite {
        /// Which input.
        what: &'static str,
        /// How many elements are not finite.
        count: i64,
    },
    /// A configuration value out of range (a schedule, a recipe, `k` of a top-k).
    #[error("invalid config: {0}")]
    Config(String),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// The crate's result type.
pub type Result<T, E = SmoothError> = std::result::Result<T, E>;
