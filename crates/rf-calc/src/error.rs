//! Typed errors. Every error about a layer names it, so that a bad spec points at its line.

use std::path::PathBuf;

/// Result with [`RfError`].
pub type Result<T> = std::result::Result<T, RfError>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RfError {
    /// A layer names an op rf-calc does not know.
    #[error("layer `{layer}`: unknown op `{op}`; known ops: {known}")]
    UnknownLayer {
        /// The layer.
        layer: String,
        /// The op it names.
        op: String,
        /// The ops rf-calc knows.
        known: String,
    },
    /// A layer's parameters are wrong (for a spec: with the line and column).
    #[error("layer `{layer}`: {message}")]
    InvalidLayer {
        /// The layer (`#i`, 1-based, when it has no readable name).
        layer: String,
        /// What is wrong: what was expected and what arrived.
        message: String,
    },
    /// A layer reads a layer that is not defined before it.
    #[error("layer `{layer}` takes input `{input}`, which is not a layer defined before it")]
    UnknownInput {
        /// The reading layer.
        layer: String,
        /// The input it names.
        input: String,
    },
    /// Two layers have the same name.
    #[error("layer name `{0}` is used twice")]
    DuplicateName(String),
    /// The paths into a merge disagree on the centre (the receptive field is not a translated
    /// window, Araujo et al. "alignment").
    #[error("merge `{layer}` is not aligned along {axis}: {detail}")]
    UnalignedMerge {
        /// The merge.
        layer: String,
        /// `height` or `width`.
        axis: &'static str,
        /// Which unit is centred where via which input.
        detail: String,
    },
    /// The inputs of a merge have different spatial sizes.
    #[error("merge `{layer}`: its inputs have different {axis} sizes: {sizes}")]
    SizeMismatch {
        /// The merge.
        layer: String,
        /// `height` or `width`.
        axis: &'static str,
        /// Each input's size.
        sizes: String,
    },
    /// A window larger than its padded input.
    #[error(
        "layer `{layer}`: input {axis} size {input} is too small for its window \
         (effective kernel {kernel}, padding {padding})"
    )]
    TooSmall {
        /// The layer.
        layer: String,
        /// `height` or `width`.
        axis: &'static str,
        /// Its input size along the axis.
        input: i64,
        /// The effective kernel `d (k - 1) + 1`.
        kernel: i64,
        /// The total padding.
        padding: i64,
    },
    /// Upsampling or a transposed convolution where the Distill methods need integer strides.
    #[error(
        "layer `{layer}` ({op}) has a fractional stride: the Distill recursion and closed form \
         need integer strides; the exact per-unit analysis covers it once every padding is known"
    )]
    FractionalStride {
        /// The layer.
        layer: String,
        /// Its op kind.
        op: &'static str,
    },
    /// `SAME` padding whose amount depends on the input size, which was not given.
    #[error(
        "layer `{layer}`: SAME padding with kernel {kernel} and stride {stride} depends on the \
         input size; give the input size (`--input`)"
    )]
    PaddingDependsOnInputSize {
        /// The layer.
        layer: String,
        /// Its effective kernel.
        kernel: i64,
        /// Its stride.
        stride: i64,
    },
    /// A unit that reads no input (kernel smaller than the stride).
    #[error(
        "layer `{layer}`: output unit {unit} along {axis} reads no input unit (kernel < stride)"
    )]
    EmptyReceptiveField {
        /// The layer.
        layer: String,
        /// `height` or `width`.
        axis: &'static str,
        /// The output unit.
        unit: i64,
    },
    /// The exact per-unit map would need too long a period.
    #[error("layer `{layer}`: the receptive field repeats with period {period} units, over the limit {limit}")]
    PeriodTooLarge {
        /// The layer.
        layer: String,
        /// The period in output units.
        period: i64,
        /// The largest period analysed.
        limit: i64,
    },
    /// No layer of that name.
    #[error("no layer `{name}` in `{graph}`; layers: {known}")]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The graph.
        graph: String,
        /// Its layers (the first few).
        known: String,
    },
    /// No preset of that name.
    #[error("no preset `{name}`; presets: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The presets.
        known: String,
    },
    /// A spec that is not a layer list (for TOML and JSON: with the line and column).
    #[error("spec: {0}")]
    Spec(String),
    /// A value out of its domain: `what` names it, `message` says what was expected and what
    /// arrived.
    #[error("{what}: {message}")]
    Invalid {
        /// The value (an argument, a node).
        what: String,
        /// What was expected and what arrived.
        message: String,
    },
    /// The recursion and the closed form disagree.
    #[error("the two Distill methods disagree at `{layer}` ({detail}): this is a bug in rf-calc")]
    MethodsDisagree {
        /// Where.
        layer: String,
        /// Both values.
        detail: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Drawing a PNG.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The PNG.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A tensor that is not what the entry point takes (feature `erf`).
    #[cfg(feature = "erf")]
    #[error("{what}: expected {expected}, got {actual}")]
    Tensor {
        /// The argument.
        what: &'static str,
        /// What it must be.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// libtorch failed (feature `erf`).
    #[cfg(feature = "erf")]
    #[error("tch: {0}")]
    Torch(#[from] tch::TchError),
}

impl RfError {
    /// A tensor argument that is not what the entry point takes.
    #[cfg(feature = "erf")]
    pub(crate) fn tensor(
        what: &'static str,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        RfError::Tensor {
            what,
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    pub(crate) fn layer(layer: &str, message: impl Into<String>) -> Self {
        RfError::InvalidLayer {
            layer: layer.to_owned(),
            message: message.into(),
        }
    }
}
