//! The spec's types, read and written through serde: the file ([`Spec`]), one layer per op
//! ([`LayerSpec`], tagged by `op`), and the two value shapes the ops share ([`IntOrPair`] for
//! kernel, stride, dilation and factor; [`PaddingSpec`]). Unknown fields are rejected.

use serde::de::{self, value::MapAccessDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;

use crate::layer::Pair;

/// A spec file: the graph's name, its input node, options and the layer list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Name of the graph (default: the file's stem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Name of the input node (default `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Report merges whose paths disagree on the centre instead of rejecting them.
    #[serde(default)]
    pub allow_unaligned: bool,
    /// Layers to report by default; every layer when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    /// The layers in order (`[[layer]]` in TOML, `"layer"` or `"layers"` in JSON).
    #[serde(
        default,
        alias = "layers",
        deserialize_with = "layer_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub layer: Option<Vec<LayerSpec>>,
}

/// One layer, tagged by its `op`; `relu`, `bn`, `batch_norm` and `dropout` read as `identity`.
///
/// Written as the tagged enum; read through a flat table of every field an op can take, so
/// that a wrong type or an unknown field is reported where it stands (a tagged enum buffers
/// the table first and loses the position), then checked against what the op takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", try_from = "RawLayer")]
pub enum LayerSpec {
    /// Dense convolution.
    Conv(ConvSpec),
    /// Depthwise convolution (one filter per input channel).
    DepthwiseConv(ConvSpec),
    /// Max pooling.
    MaxPool(PoolSpec),
    /// Average pooling.
    AvgPool(PoolSpec),
    /// Explicit zero padding.
    Pad(PadSpec),
    /// Nearest-neighbour upsampling.
    Upsample(UpsampleSpec),
    /// Transposed convolution (PyTorch semantics).
    ConvTranspose(ConvTransposeSpec),
    /// Element-wise sum of two or more inputs.
    Add(LinkSpec),
    /// Channel concatenation of two or more inputs.
    Concat(LinkSpec),
    /// No geometric effect (activations, normalisation, dropout).
    #[serde(alias = "relu", alias = "bn", alias = "batch_norm", alias = "dropout")]
    Identity(LinkSpec),
}

/// A layer with nothing but its name and inputs (`add`, `concat`, `identity`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The layer's name (default `#i`, its 1-based position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one layer it reads (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The layers it reads (merges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// `conv` and `depthwise_conv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// The layer's name (default `#i`, its 1-based position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one layer it reads (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The layers it reads (a one-element list for a convolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Kernel size `k` or `[kh, kw]`.
    pub kernel: IntOrPair,
    /// Stride (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<IntOrPair>,
    /// Dilation (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dilation: Option<IntOrPair>,
    /// Padding (default `"valid"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<PaddingSpec>,
    /// Output channels (used only to build the net of the empirical receptive field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<i64>,
}

/// `max_pool` and `avg_pool`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// The layer's name (default `#i`, its 1-based position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one layer it reads (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The layers it reads (a one-element list for a pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Window size `k` or `[kh, kw]`.
    pub kernel: IntOrPair,
    /// Stride (default: the kernel, as in PyTorch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<IntOrPair>,
    /// Dilation (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dilation: Option<IntOrPair>,
    /// Padding (default `"valid"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<PaddingSpec>,
    /// PyTorch's `ceil_mode` (default false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ceil_mode: bool,
}

/// `pad`: explicit zero padding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PadSpec {
    /// The layer's name (default `#i`, its 1-based position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one layer it reads (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The layers it reads (a one-element list for a pad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// The amounts: `p`, `[ph, pw]` or `{top, bottom, left, right}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<PaddingSpec>,
}

/// `upsample`: nearest-neighbour upsampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsampleSpec {
    /// The layer's name (default `#i`, its 1-based position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one layer it reads (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The layers it reads (a one-element list for an upsampling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Integer factor `f` or `[fh, fw]`.
    pub factor: IntOrPair,
}

/// `conv_transpose`: output `o = (i - 1) s - 2p + k + output_padding` per axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvTransposeSpec {
    /// The layer's name (default `#i`, its 1-based position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one layer it reads (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The layers it reads (a one-element list for a convolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Kernel size `k` or `[kh, kw]`.
    pub kernel: IntOrPair,
    /// Stride (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<IntOrPair>,
    /// PyTorch's `padding` (default 0): `p` or `[ph, pw]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<IntOrPair>,
    /// PyTorch's `output_padding` (default 0), smaller than the stride.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_padding: Option<IntOrPair>,
    /// Output channels (used only to build the net of the empirical receptive field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<i64>,
}

/// The op names, for reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpName {
    Conv,
    DepthwiseConv,
    MaxPool,
    AvgPool,
    Pad,
    Upsample,
    ConvTranspose,
    Add,
    Concat,
    #[serde(alias = "relu", alias = "bn", alias = "batch_norm", alias = "dropout")]
    Identity,
}

/// Every field any op takes; [`LayerSpec`]'s `TryFrom` checks them against the op.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    op: OpName,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    inputs: Option<Vec<String>>,
    #[serde(default)]
    kernel: Option<IntOrPair>,
    #[serde(default)]
    stride: Option<IntOrPair>,
    #[serde(default)]
    dilation: Option<IntOrPair>,
    #[serde(default)]
    padding: Option<PaddingSpec>,
    #[serde(default)]
    channels: Option<i64>,
    #[serde(default)]
    ceil_mode: Option<bool>,
    #[serde(default)]
    factor: Option<IntOrPair>,
    #[serde(default)]
    output_padding: Option<IntOrPair>,
}

impl TryFrom<RawLayer> for LayerSpec {
    type Error = String;

    fn try_from(r: RawLayer) -> std::result::Result<Self, String> {
        use OpName as N;
        let (op, takes): (&str, &[&str]) = match r.op {
            N::Conv => (
                "conv",
                &["kernel", "stride", "dilation", "padding", "channels"],
            ),
            N::DepthwiseConv => (
                "depthwise_conv",
                &["kernel", "stride", "dilation", "padding", "channels"],
            ),
            N::MaxPool => (
                "max_pool",
                &["kernel", "stride", "dilation", "padding", "ceil_mode"],
            ),
            N::AvgPool => (
                "avg_pool",
                &["kernel", "stride", "dilation", "padding", "ceil_mode"],
            ),
            N::Pad => ("pad", &["padding"]),
            N::Upsample => ("upsample", &["factor"]),
            N::ConvTranspose => (
                "conv_transpose",
                &["kernel", "stride", "padding", "output_padding", "channels"],
            ),
            N::Add => ("add", &[]),
            N::Concat => ("concat", &[]),
            N::Identity => ("identity", &[]),
        };
        let given = [
            ("kernel", r.kernel.is_some()),
            ("stride", r.stride.is_some()),
            ("dilation", r.dilation.is_some()),
            ("padding", r.padding.is_some()),
            ("channels", r.channels.is_some()),
            ("ceil_mode", r.ceil_mode.is_some()),
            ("factor", r.factor.is_some()),
            ("output_padding", r.output_padding.is_some()),
        ];
        if let Some((k, _)) = given.iter().find(|(k, on)| *on && !takes.contains(k)) {
            let takes = if takes.is_empty() {
                "nothing but name, input(s)".to_owned()
            } else {
                takes.join(", ")
            };
            return Err(format!("unknown field `{k}` for {op}; it takes: {takes}"));
        }
        let need = |v: Option<IntOrPair>, k: &str| {
            v.ok_or_else(|| format!("missing field `{k}` for {op}"))
        };
        let (name, input, inputs) = (r.name, r.input, r.inputs);
        let conv = || -> std::result::Result<ConvSpec, String> {
            Ok(ConvSpec {
                name: name.clone(),
                input: input.clone(),
                inputs: inputs.clone(),
                kernel: need(r.kernel, "kernel")?,
                stride: r.stride,
                dilation: r.dilation,
                padding: r.padding,
                channels: r.channels,
            })
        };
        let pool = || -> std::result::Result<PoolSpec, String> {
            Ok(PoolSpec {
                name: name.clone(),
                input: input.clone(),
                inputs: inputs.clone(),
                kernel: need(r.kernel, "kernel")?,
                stride: r.stride,
                dilation: r.dilation,
                padding: r.padding,
                ceil_mode: r.ceil_mode.unwrap_or(false),
            })
        };
        let link = || LinkSpec {
            name: name.clone(),
            input: input.clone(),
            inputs: inputs.clone(),
        };
        Ok(match r.op {
            N::Conv => LayerSpec::Conv(conv()?),
            N::DepthwiseConv => LayerSpec::DepthwiseConv(conv()?),
            N::MaxPool => LayerSpec::MaxPool(pool()?),
            N::AvgPool => LayerSpec::AvgPool(pool()?),
            N::Pad => LayerSpec::Pad(PadSpec {
                name,
                input,
                inputs,
                padding: r.padding,
            }),
            N::Upsample => LayerSpec::Upsample(UpsampleSpec {
                factor: need(r.factor, "factor")?,
                name,
                input,
                inputs,
            }),
            N::ConvTranspose => LayerSpec::ConvTranspose(ConvTransposeSpec {
                kernel: need(r.kernel, "kernel")?,
                stride: r.stride,
                padding: match r.padding {
                    None => None,
                    Some(PaddingSpec::Sym(p)) => Some(p),
                    Some(other) => {
                        return Err(format!(
                            "the `padding` of a conv_transpose is p or [ph, pw], got {other:?}"
                        ))
                    }
                },
                output_padding: r.output_padding,
                channels: r.channels,
                name,
                input,
                inputs,
            }),
            N::Add => LayerSpec::Add(link()),
            N::Concat => LayerSpec::Concat(link()),
            N::Identity => LayerSpec::Identity(link()),
        })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An integer for both axes or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPair {
    /// The same value along height and width.
    Int(i64),
    /// `[height, width]`.
    Pair(Pair),
}

impl IntOrPair {
    /// As `[height, width]`.
    pub fn pair(self) -> Pair {
        match self {
            IntOrPair::Int(v) => [v, v],
            IntOrPair::Pair(p) => p,
        }
    }
}

impl From<Pair> for IntOrPair {
    /// The shorter form: one integer when both axes agree.
    fn from(p: Pair) -> Self {
        if p[0] == p[1] {
            IntOrPair::Int(p[0])
        } else {
            IntOrPair::Pair(p)
        }
    }
}

impl Serialize for IntOrPair {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            IntOrPair::Int(v) => s.serialize_i64(*v),
            IntOrPair::Pair(p) => p.serialize(s),
        }
    }
}

const INT_OR_PAIR: &str = "an integer or [h, w]";

fn int<E: de::Error>(v: u64, exp: &dyn de::Expected) -> std::result::Result<i64, E> {
    i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), exp))
}

/// Reads `[h, w]`: exactly two integers.
fn pair_of<'de, A: SeqAccess<'de>>(
    mut seq: A,
    exp: &dyn de::Expected,
) -> std::result::Result<Pair, A::Error> {
    let h: i64 = seq
        .next_element()?
        .ok_or_else(|| de::Error::invalid_length(0, exp))?;
    let w: i64 = seq
        .next_element()?
        .ok_or_else(|| de::Error::invalid_length(1, exp))?;
    let mut extra = 2;
    while seq.next_element::<de::IgnoredAny>()?.is_some() {
        extra += 1;
    }
    if extra > 2 {
        return Err(de::Error::invalid_length(extra, exp));
    }
    Ok([h, w])
}

struct IntOrPairVisitor;

impl<'de> Visitor<'de> for IntOrPairVisitor {
    type Value = IntOrPair;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(INT_OR_PAIR)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<IntOrPair, E> {
        Ok(IntOrPair::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<IntOrPair, E> {
        int(v, &self).map(IntOrPair::Int)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<IntOrPair, A::Error> {
        pair_of(seq, &self).map(IntOrPair::Pair)
    }
}

impl<'de> Deserialize<'de> for IntOrPair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(IntOrPairVisitor)
    }
}

/// Padding of a convolution, pool or pad layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingSpec {
    /// `"valid"`: none.
    Valid,
    /// `"same"`: TensorFlow's, depending on the input size.
    Same,
    /// `p` or `[ph, pw]`: the same amount before and after along each axis.
    Sym(IntOrPair),
    /// `{top, bottom, left, right}`.
    Sides(Sides),
}

/// Padding per side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sides {
    /// Rows added above.
    pub top: i64,
    /// Rows added below.
    pub bottom: i64,
    /// Columns added on the left.
    pub left: i64,
    /// Columns added on the right.
    pub right: i64,
}

impl Serialize for PaddingSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            PaddingSpec::Valid => s.serialize_str("valid"),
            PaddingSpec::Same => s.serialize_str("same"),
            PaddingSpec::Sym(p) => p.serialize(s),
            PaddingSpec::Sides(sides) => sides.serialize(s),
        }
    }
}

struct PaddingVisitor;

impl<'de> Visitor<'de> for PaddingVisitor {
    type Value = PaddingSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a padding: "valid", "same", p, [ph, pw] or {top, bottom, left, right}"#)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<PaddingSpec, E> {
        match v {
            "valid" => Ok(PaddingSpec::Valid),
            "same" => Ok(PaddingSpec::Same),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<PaddingSpec, E> {
        Ok(PaddingSpec::Sym(IntOrPair::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<PaddingSpec, E> {
        int(v, &self).map(|v| PaddingSpec::Sym(IntOrPair::Int(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<PaddingSpec, A::Error> {
        pair_of(seq, &self).map(|p| PaddingSpec::Sym(IntOrPair::Pair(p)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<PaddingSpec, A::Error> {
        Sides::deserialize(MapAccessDeserializer::new(map)).map(PaddingSpec::Sides)
    }
}

impl<'de> Deserialize<'de> for PaddingSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(PaddingVisitor)
    }
}

thread_local! {
    /// Index of the layer being read, left set when reading it fails, so that the error can
    /// name the layer (serde's errors carry the line and column but not the path).
    static READING: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The layer whose reading failed in the last [`Spec`] deserialization on this thread, if any.
pub(crate) fn failed_layer() -> Option<usize> {
    READING.with(Cell::get)
}

/// Forgets the layer of an earlier failure; called before each read.
pub(crate) fn reset_failed_layer() {
    READING.with(|r| r.set(None));
}

fn layer_list<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<LayerSpec>>, D::Error> {
    struct Layers;
    impl<'de> Visitor<'de> for Layers {
        type Value = Vec<LayerSpec>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of layers")
        }
        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            loop {
                READING.with(|r| r.set(Some(out.len())));
                match seq.next_element()? {
                    Some(l) => out.push(l),
                    None => break,
                }
            }
            READING.with(|r| r.set(None));
            Ok(out)
        }
    }
    d.deserialize_seq(Layers).map(Some)
}
