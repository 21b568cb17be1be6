//! The spec format for one's own networks: TOML or JSON, a list of layers.
//!
//! ```toml
//! name = "tiny"            # optional
//! input = "image"          # name of the input node, default "input"
//! allow_unaligned = false  # report merges whose paths disagree on the centre
//! endpoints = ["c2"]       # rows to report by default; all layers when absent
//!
//! [[layer]]
//! name = "c1"
//! op = "conv"              # see OPS and LayerSpec (the fields each op takes)
//! kernel = 3               # or [kh, kw]
//! stride = 2               # default 1 (pools: the kernel, as in PyTorch)
//! padding = "same"         # "valid" (default), "same", p, [ph, pw], {top, bottom, left, right}
//! # input = "image"        # default: the previous layer
//!
//! [[layer]]
//! name = "c2"
//! op = "conv"
//! kernel = [1, 7]
//! padding = [0, 3]
//!
//! [[layer]]
//! name = "sum"
//! op = "add"
//! inputs = ["c1", "c2"]
//! ```
//!
//! Every mistake is reported with the layer's name: an unknown op or field, a value of the wrong
//! type or out of range, an input that is not defined before the layer. Mistakes the reader
//! catches (unknown op or field, wrong type, a bad `kernel = [3]`) also give the line and
//! column in the text.

mod types;

pub use types::{
    ConvSpec, ConvTransposeSpec, IntOrPair, LayerSpec, LinkSpec, PadSpec, PaddingSpec, PoolSpec,
    Sides, Spec, UpsampleSpec,
};

use serde_json::Value;
use std::path::Path;

use crate::error::{Result, RfError};
use crate::graph::{Graph, GraphBuilder};
use crate::layer::{AxisPadding, Groups, Op, Padding, PoolKind, Window};

/// The ops a spec may use (`relu`, `bn`, `batch_norm`, `dropout` are aliases of `identity`).
pub const OPS: [&str; 10] = [
    "conv",
    "depthwise_conv",
    "max_pool",
    "avg_pool",
    "pad",
    "upsample",
    "conv_transpose",
    "add",
    "concat",
    "identity",
];

/// Spec text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML, the `[[layer]]` list.
    Toml,
    /// JSON, a `"layer"` (or `"layers"`) array.
    Json,
}

impl Format {
    /// From a file extension (`.json` is JSON, anything else TOML).
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// Reads a spec file.
pub fn from_path(path: &Path) -> Result<Graph> {
    let text = std::fs::read_to_string(path).map_err(|source| RfError::Io {
        path: path.to_owned(),
        source,
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("net");
    parse(&text, Format::of_path(path), stem)
}

/// Parses a spec; `default_name` names the graph when the spec does not.
pub fn parse(text: &str, format: Format, default_name: &str) -> Result<Graph> {
    read(text, format)?.to_graph(default_name)
}

/// Reads the text into a [`Spec`] (no graph checks yet). A mistake inside a layer is an
/// [`RfError::InvalidLayer`] naming it (`#i`, 1-based, when it has no readable name); the
/// message ends with the line and column.
pub fn read(text: &str, format: Format) -> Result<Spec> {
    types::reset_failed_layer();
    let result = match format {
        Format::Json => serde_json::from_str::<Spec>(text).map_err(|e| e.to_string()),
        Format::Toml => toml::from_str::<Spec>(text).map_err(|e| toml_message(text, &e)),
    };
    result.map_err(|message| match types::failed_layer() {
        Some(i) => RfError::InvalidLayer {
            layer: layer_name(text, format, i).unwrap_or_else(|| format!("#{}", i + 1)),
            message,
        },
        None => RfError::Spec(message),
    })
}

/// toml's message on one line, with the line and column of its span (as serde_json writes them).
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{message} at line {line} column {column}")
        }
        None => message.to_owned(),
    }
}

/// The `name` of layer `i` when the text is well-formed enough to tell.
fn layer_name(text: &str, format: Format, i: usize) -> Option<String> {
    let doc: Value = match format {
        Format::Json => serde_json::from_str(text).ok()?,
        Format::Toml => serde_json::to_value(toml::from_str::<toml::Value>(text).ok()?).ok()?,
    };
    let layers = doc.get("layer").or_else(|| doc.get("layers"))?;
    layers.get(i)?.get("name")?.as_str().map(str::to_owned)
}

/// What every layer has besides its op: a name and where it reads from.
struct Link<'a> {
    name: &'a Option<String>,
    input: &'a Option<String>,
    inputs: &'a Option<Vec<String>>,
}

impl LayerSpec {
    fn link(&self) -> Link<'_> {
        macro_rules! link {
            ($s:expr) => {
                Link {
                    name: &$s.name,
                    input: &$s.input,
                    inputs: &$s.inputs,
                }
            };
        }
        match self {
            LayerSpec::Conv(s) | LayerSpec::DepthwiseConv(s) => link!(s),
            LayerSpec::MaxPool(s) | LayerSpec::AvgPool(s) => link!(s),
            LayerSpec::Pad(s) => link!(s),
            LayerSpec::Upsample(s) => link!(s),
            LayerSpec::ConvTranspose(s) => link!(s),
            LayerSpec::Add(s) | LayerSpec::Concat(s) | LayerSpec::Identity(s) => link!(s),
        }
    }

    /// The layer's name, when the spec gives one.
    pub fn name(&self) -> Option<&str> {
        self.link().name.as_deref()
    }

    /// The names of the layers it reads; `None` for the previous layer.
    pub fn inputs(&self, layer: &str) -> Result<Option<Vec<String>>> {
        let link = self.link();
        match (link.input, link.inputs) {
            (Some(_), Some(_)) => Err(RfError::layer(layer, "give `input` or `inputs`, not both")),
            (Some(s), None) => Ok(Some(vec![s.clone()])),
            (None, Some(v)) => Ok(Some(v.clone())),
            (None, None) => Ok(None),
        }
    }

    /// The op it computes; `layer` names it in errors.
    pub fn op(&self, layer: &str) -> Result<Op> {
        let padding = |p: &Option<PaddingSpec>| p.map_or(Padding::VALID, PaddingSpec::padding);
        let or = |p: Option<IntOrPair>, default: [i64; 2]| p.map_or(default, IntOrPair::pair);
        Ok(match self {
            LayerSpec::Conv(s) | LayerSpec::DepthwiseConv(s) => Op::Conv {
                window: Window {
                    kernel: s.kernel.pair(),
                    stride: or(s.stride, [1, 1]),
                    dilation: or(s.dilation, [1, 1]),
                    padding: padding(&s.padding),
                },
                channels: s.channels,
                groups: if matches!(self, LayerSpec::Conv(_)) {
                    Groups::Dense
                } else {
                    Groups::Depthwise
                },
            },
            LayerSpec::MaxPool(s) | LayerSpec::AvgPool(s) => {
                let kernel = s.kernel.pair();
                Op::Pool {
                    kind: if matches!(self, LayerSpec::MaxPool(_)) {
                        PoolKind::Max
                    } else {
                        PoolKind::Avg
                    },
                    window: Window {
                        kernel,
                        stride: or(s.stride, kernel),
                        dilation: or(s.dilation, [1, 1]),
                        padding: padding(&s.padding),
                    },
                    ceil_mode: s.ceil_mode,
                }
            }
            LayerSpec::Pad(s) => {
                let p = padding(&s.padding);
                let axis = |a: AxisPadding| match a {
                    AxisPadding::Explicit { begin, end } => Ok([begin, end]),
                    _ => Err(RfError::layer(layer, "a pad layer needs explicit amounts")),
                };
                Op::Pad {
                    h: axis(p.h)?,
                    w: axis(p.w)?,
                }
            }
            LayerSpec::Upsample(s) => Op::Upsample {
                factor: s.factor.pair(),
            },
            LayerSpec::ConvTranspose(s) => Op::ConvTranspose {
                kernel: s.kernel.pair(),
                stride: or(s.stride, [1, 1]),
                padding: or(s.padding, [0, 0]),
                output_padding: or(s.output_padding, [0, 0]),
                channels: s.channels,
            },
            LayerSpec::Add(_) => Op::Add,
            LayerSpec::Concat(_) => Op::Concat,
            LayerSpec::Identity(_) => Op::Identity,
        })
    }

    /// The spec of `node` of `graph` (the node at position `i`); `None` for the input.
    fn of_node(graph: &Graph, i: usize) -> Result<LayerSpec> {
        let node = &graph.nodes()[i];
        let names: Vec<String> = node
            .inputs
            .iter()
            .map(|u| graph.node(*u).name.clone())
            .collect();
        let name = Some(node.name.clone());
        let (input, inputs) = if node.op.is_merge() {
            (None, Some(names))
        } else if node.inputs.first().is_some_and(|u| u.0 + 1 != i) {
            (names.into_iter().next(), None)
        } else {
            (None, None)
        };
        let dilation = |d: [i64; 2]| (d != [1, 1]).then(|| IntOrPair::from(d));
        let padding = |p: &Padding| PaddingSpec::of(p, &node.name);
        Ok(match &node.op {
            Op::Input => {
                return Err(RfError::layer(
                    &node.name,
                    "only the first node is an input",
                ))
            }
            Op::Conv {
                window,
                channels,
                groups,
            } => {
                let s = ConvSpec {
                    name,
                    input,
                    inputs,
                    kernel: window.kernel.into(),
                    stride: Some(window.stride.into()),
                    dilation: dilation(window.dilation),
                    padding: Some(padding(&window.padding)?),
                    channels: *channels,
                };
                match groups {
                    Groups::Dense => LayerSpec::Conv(s),
                    Groups::Depthwise => LayerSpec::DepthwiseConv(s),
                }
            }
            Op::Pool {
                kind,
                window,
                ceil_mode,
            } => {
                let s = PoolSpec {
                    name,
                    input,
                    inputs,
                    kernel: window.kernel.into(),
                    stride: Some(window.stride.into()),
                    dilation: dilation(window.dilation),
                    padding: Some(padding(&window.padding)?),
                    ceil_mode: *ceil_mode,
                };
                match kind {
                    PoolKind::Max => LayerSpec::MaxPool(s),
                    PoolKind::Avg => LayerSpec::AvgPool(s),
                }
            }
            Op::Pad { h, w } => LayerSpec::Pad(PadSpec {
                name,
                input,
                inputs,
                padding: Some(PaddingSpec::Sides(Sides {
                    top: h[0],
                    bottom: h[1],
                    left: w[0],
                    right: w[1],
                })),
            }),
            Op::Upsample { factor } => LayerSpec::Upsample(UpsampleSpec {
                name,
                input,
                inputs,
                factor: (*factor).into(),
            }),
            Op::ConvTranspose {
                kernel,
                stride,
                padding,
                output_padding,
                channels,
            } => LayerSpec::ConvTranspose(ConvTransposeSpec {
                name,
                input,
                inputs,
                kernel: (*kernel).into(),
                stride: Some((*stride).into()),
                padding: Some((*padding).into()),
                output_padding: Some((*output_padding).into()),
                channels: *channels,
            }),
            Op::Add | Op::Concat | Op::Identity => {
                let s = LinkSpec {
                    name,
                    input,
                    inputs,
                };
                match node.op {
                    Op::Add => LayerSpec::Add(s),
                    Op::Concat => LayerSpec::Concat(s),
                    _ => LayerSpec::Identity(s),
                }
            }
        })
    }
}

impl PaddingSpec {
    /// As a [`Padding`].
    pub fn padding(self) -> Padding {
        match self {
            PaddingSpec::Valid => Padding::VALID,
            PaddingSpec::Same => Padding::SAME,
            PaddingSpec::Sym(p) => {
                let [h, w] = p.pair();
                Padding::hw(h, w)
            }
            PaddingSpec::Sides(s) => Padding {
                h: AxisPadding::Explicit {
                    begin: s.top,
                    end: s.bottom,
                },
                w: AxisPadding::Explicit {
                    begin: s.left,
                    end: s.right,
                },
            },
        }
    }

    /// The shortest spec form of `p`; `layer` names it when `p` has none (SAME along one axis
    /// and VALID or explicit along the other, which only a graph built in code can have).
    pub fn of(p: &Padding, layer: &str) -> Result<PaddingSpec> {
        match (p.h, p.w) {
            (AxisPadding::Valid, AxisPadding::Valid) => Ok(PaddingSpec::Valid),
            (AxisPadding::Same, AxisPadding::Same) => Ok(PaddingSpec::Same),
            (
                AxisPadding::Explicit { begin: a, end: b },
                AxisPadding::Explicit { begin: c, end: d },
            ) => Ok(if a == b && c == d {
                PaddingSpec::Sym([a, c].into())
            } else {
                PaddingSpec::Sides(Sides {
                    top: a,
                    bottom: b,
                    left: c,
                    right: d,
                })
            }),
            (h, w) => Err(RfError::layer(
                layer,
                format!("padding {h:?} along height and {w:?} along width has no spec form"),
            )),
        }
    }
}

impl Spec {
    /// The graph this spec describes; `default_name` names it when the spec does not. Every
    /// error names the layer.
    pub fn to_graph(&self, default_name: &str) -> Result<Graph> {
        let mut b = GraphBuilder::with_input(
            self.name.as_deref().unwrap_or(default_name),
            self.input.as_deref().unwrap_or("input"),
        );
        b.allow_unaligned(self.allow_unaligned);
        let layers = self
            .layer
            .as_ref()
            .ok_or_else(|| RfError::Spec("no `[[layer]]` list".to_owned()))?;
        let mut previous = b.input();
        for (i, l) in layers.iter().enumerate() {
            let name = l
                .name()
                .map_or_else(|| format!("#{}", i + 1), str::to_owned);
            let op = l.op(&name)?;
            let ids = match l.inputs(&name)? {
                None => vec![previous],
                Some(names) => names
                    .iter()
                    .map(|n| {
                        b.get(n).ok_or_else(|| RfError::UnknownInput {
                            layer: name.clone(),
                            input: n.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            };
            previous = b.add(&name, op, &ids);
        }
        for e in self.endpoints.iter().flatten() {
            match b.get(e) {
                Some(id) => b.endpoint(id),
                None => b.fail(RfError::Spec(format!("endpoint `{e}` is not a layer"))),
            }
        }
        b.build()
    }

    /// The spec of a graph (every preset can be written out, edited and read back).
    pub fn of_graph(graph: &Graph) -> Result<Spec> {
        let layer = (1..graph.len())
            .map(|i| LayerSpec::of_node(graph, i))
            .collect::<Result<Vec<_>>>()?;
        let endpoints = graph
            .endpoints()
            .iter()
            .map(|e| graph.node(*e).name.clone())
            .collect();
        Ok(Spec {
            name: Some(graph.name().to_owned()),
            input: Some(graph.nodes()[0].name.clone()),
            allow_unaligned: graph.allow_unaligned(),
            endpoints: Some(endpoints),
            layer: Some(layer),
        })
    }
}

/// The spec of a graph as a JSON value.
pub fn to_value(graph: &Graph) -> Result<Value> {
    serde_json::to_value(Spec::of_graph(graph)?).map_err(|e| RfError::Spec(e.to_string()))
}

/// The spec of a graph as text.
pub fn to_string(graph: &Graph, format: Format) -> Result<String> {
    let spec = Spec::of_graph(graph)?;
    match format {
        Format::Json => {
            serde_json::to_string_pretty(&spec).map_err(|e| RfError::Spec(e.to_string()))
        }
        Format::Toml => toml::to_string(&spec).map_err(|e| RfError::Spec(e.to_string())),
    }
}
