//! Typed errors. Every error about a layer names it, so that a bad spec points at its line.

use std::path::PathBuf;

/// Result with [`RfError`].
pub type Result<T> = std::result::Result<T, RfError>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RfError {
    #[error("layer `{layer}`: unknown op `{op}`; known ops: {known}")]
    UnknownLayer {
        layer: String,
        op: String,
        known: String,
    },
    #[error("layer `{layer}`: {message}")]
    InvalidLayer { layer: String, message: String },
    #[error("layer `{layer}` takes input `{input}`, which is not a layer defined before it")]
    UnknownInput { layer: String, input: String },
    #[error("layer name `{0}` is used twice")]
    DuplicateName(String),
    #[error("merge `{layer}` is not aligned along {axis}: {detail}")]
    UnalignedMerge {
        layer: String,
        axis: &'static str,
        detail: String,
    },
    #[error("merge `{layer}`: its inputs have different {axis} sizes: {sizes}")]
    SizeMismatch {
        layer: String,
        axis: &'static str,
        sizes: String,
    },
    #[error(
        "layer `{layer}`: input {axis} size {input} is too small for its window \
         (effective kernel {kernel}, padding {padding})"
    )]
    TooSmall {
        layer: String,
        axis: &'static str,
        input: i64,
        kernel: i64,
        padding: i64,
    },
    #[error(
        "layer `{layer}` ({op}) has a fractional stride: the Distill recursion and closed form \
         need integer strides; the exact per-unit analysis covers it once every padding is known"
    )]
    FractionalStride { layer: String, op: &'static str },
    #[error(
        "layer `{layer}`: SAME padding with kernel {kernel} and stride {stride} depends on the \
         input size; give the input size (`--input`)"
    )]
    PaddingDependsOnInputSize {
        layer: String,
        kernel: i64,
        stride: i64,
    },
    #[error(
        "layer `{layer}`: output unit {unit} along {axis} reads no input unit (kernel < stride)"
    )]
    EmptyReceptiveField {
        layer: String,
        axis: &'static str,
        unit: i64,
    },
    #[error("layer `{layer}`: the receptive field repeats with period {period} units, over the limit {limit}")]
    PeriodTooLarge {
        layer: String,
        period: i64,
        limit: i64,
    },
    #[error("no layer `{name}` in `{graph}`; layers: {known}")]
    UnknownNode {
        name: String,
        graph: String,
        known: String,
    },
    #[error("no preset `{name}`; presets: {known}")]
    UnknownPreset { name: String, known: String },
    #[error("spec: {0}")]
    Spec(String),
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("the two Distill methods disagree at `{layer}` ({detail}): this is a bug in rf-calc")]
    MethodsDisagree { layer: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[cfg(feature = "erf")]
    #[error("tch: {0}")]
    Torch(#[from] tch::TchError),
}

impl RfError {
    pub(crate) fn layer(layer: &str, message: impl Into<String>) -> Self {
        RfError::InvalidLayer {
            layer: layer.to_owned(),
            message: message.into(),
        }
    }
}
