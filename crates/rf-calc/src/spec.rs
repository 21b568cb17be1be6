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
//! op = "conv"              # see OPS
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
//! Every mistake is reported with the layer's name: unknown op or field, a value out of range,
//! an input that is not defined before the layer.

use serde_json::{json, Map, Value};
use std::path::Path;

use crate::error::{Result, RfError};
use crate::graph::{Graph, GraphBuilder};
use crate::layer::{AxisPadding, Groups, Op, Padding, Pair, PoolKind, Window};

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
    Toml,
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
    let doc: Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| RfError::Spec(e.to_string()))?,
        Format::Toml => {
            let t: toml::Value = toml::from_str(text).map_err(|e| RfError::Spec(e.to_string()))?;
            serde_json::to_value(t).map_err(|e| RfError::Spec(e.to_string()))?
        }
    };
    from_value(&doc, default_name)
}

fn from_value(doc: &Value, default_name: &str) -> Result<Graph> {
    let top = doc
        .as_object()
        .ok_or_else(|| RfError::Spec("expected a table at the top".to_owned()))?;
    for key in top.keys() {
        if ![
            "name",
            "input",
            "allow_unaligned",
            "endpoints",
            "layer",
            "layers",
        ]
        .contains(&key.as_str())
        {
            return Err(RfError::Spec(format!(
                "unknown top-level key `{key}`; expected name, input, allow_unaligned, endpoints, layer"
            )));
        }
    }
    let text = |k: &str| top.get(k).and_then(Value::as_str);
    let mut b = GraphBuilder::with_input(
        text("name").unwrap_or(default_name),
        text("input").unwrap_or("input"),
    );
    b.allow_unaligned(
        top.get("allow_unaligned")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    let layers = top
        .get("layer")
        .or_else(|| top.get("layers"))
        .and_then(Value::as_array)
        .ok_or_else(|| RfError::Spec("no `[[layer]]` list".to_owned()))?;
    let mut previous = b.input();
    for (i, v) in layers.iter().enumerate() {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("#{}", i + 1));
        let (op, inputs) = layer(&name, v)?;
        let ids = match inputs {
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
    if let Some(eps) = top.get("endpoints").and_then(Value::as_array) {
        for e in eps {
            let e = e.as_str().unwrap_or_default();
            match b.get(e) {
                Some(id) => b.endpoint(id),
                None => b.fail(RfError::Spec(format!("endpoint `{e}` is not a layer"))),
            }
        }
    }
    b.build()
}

fn pair(layer: &str, key: &str, v: &Value) -> Result<Pair> {
    let bad = || {
        RfError::layer(
            layer,
            format!("`{key}` must be an integer or [h, w], got {v}"),
        )
    };
    match v {
        Value::Number(n) => n.as_i64().map(|x| [x, x]).ok_or_else(bad),
        Value::Array(a) if a.len() == 2 => Ok([
            a[0].as_i64().ok_or_else(bad)?,
            a[1].as_i64().ok_or_else(bad)?,
        ]),
        _ => Err(bad()),
    }
}

fn padding(layer: &str, v: &Value) -> Result<Padding> {
    let bad = || {
        RfError::layer(
            layer,
            format!("`padding` must be \"valid\", \"same\", p, [ph, pw] or {{top, bottom, left, right}}, got {v}"),
        )
    };
    match v {
        Value::String(s) if s == "valid" => Ok(Padding::VALID),
        Value::String(s) if s == "same" => Ok(Padding::SAME),
        Value::Object(m) => {
            let side = |k: &str| m.get(k).and_then(Value::as_i64).ok_or_else(bad);
            if m.len() != 4 {
                return Err(bad());
            }
            Ok(Padding {
                h: AxisPadding::Explicit {
                    begin: side("top")?,
                    end: side("bottom")?,
                },
                w: AxisPadding::Explicit {
                    begin: side("left")?,
                    end: side("right")?,
                },
            })
        }
        other => pair(layer, "padding", other)
            .map(|[h, w]| Padding::hw(h, w))
            .map_err(|_| bad()),
    }
}

/// Which keys each op takes besides `name`, `op`, `input(s)`.
fn allowed(op: &str) -> &'static [&'static str] {
    match op {
        "conv" | "depthwise_conv" => &["kernel", "stride", "dilation", "padding", "channels"],
        "max_pool" | "avg_pool" => &["kernel", "stride", "dilation", "padding", "ceil_mode"],
        "pad" => &["padding"],
        "upsample" => &["factor"],
        "conv_transpose" => &["kernel", "stride", "padding", "output_padding", "channels"],
        _ => &[],
    }
}

fn layer(name: &str, v: &Value) -> Result<(Op, Option<Vec<String>>)> {
    let m: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| RfError::layer(name, "a layer must be a table"))?;
    let op_name = m
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| RfError::layer(name, "missing `op`"))?;
    let op_key = match op_name {
        "relu" | "bn" | "batch_norm" | "dropout" => "identity",
        o => o,
    };
    if !OPS.contains(&op_key) {
        return Err(RfError::UnknownLayer {
            layer: name.to_owned(),
            op: op_name.to_owned(),
            known: OPS.join(", "),
        });
    }
    for key in m.keys() {
        let k = key.as_str();
        if !["name", "op", "input", "inputs"].contains(&k) && !allowed(op_key).contains(&k) {
            return Err(RfError::layer(
                name,
                format!(
                    "unknown field `{k}` for {op_key}; it takes: {}",
                    allowed(op_key).join(", ")
                ),
            ));
        }
    }
    let inputs = match (m.get("input"), m.get("inputs")) {
        (Some(_), Some(_)) => {
            return Err(RfError::layer(name, "give `input` or `inputs`, not both"))
        }
        (Some(Value::String(s)), None) => Some(vec![s.clone()]),
        (None, Some(Value::Array(a))) => Some(
            a.iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| RfError::layer(name, "`inputs` must be a list of layer names"))?,
        ),
        (None, None) => None,
        _ => {
            return Err(RfError::layer(
                name,
                "`input` is a name, `inputs` a list of names",
            ))
        }
    };
    let get_pair = |k: &str, default: Option<Pair>| -> Result<Pair> {
        match m.get(k) {
            Some(v) => pair(name, k, v),
            None => default.ok_or_else(|| RfError::layer(name, format!("missing `{k}`"))),
        }
    };
    let pad = match m.get("padding") {
        Some(v) => padding(name, v)?,
        None => Padding::VALID,
    };
    let channels = match m.get("channels") {
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| RfError::layer(name, "`channels` must be an integer"))?,
        ),
        None => None,
    };
    let op = match op_key {
        "conv" | "depthwise_conv" => Op::Conv {
            window: Window {
                kernel: get_pair("kernel", None)?,
                stride: get_pair("stride", Some([1, 1]))?,
                dilation: get_pair("dilation", Some([1, 1]))?,
                padding: pad,
            },
            channels,
            groups: if op_key == "conv" {
                Groups::Dense
            } else {
                Groups::Depthwise
            },
        },
        "max_pool" | "avg_pool" => {
            let kernel = get_pair("kernel", None)?;
            Op::Pool {
                kind: if op_key == "max_pool" {
                    PoolKind::Max
                } else {
                    PoolKind::Avg
                },
                window: Window {
                    kernel,
                    stride: get_pair("stride", Some(kernel))?,
                    dilation: get_pair("dilation", Some([1, 1]))?,
                    padding: pad,
                },
                ceil_mode: m.get("ceil_mode").and_then(Value::as_bool).unwrap_or(false),
            }
        }
        "pad" => {
            let axis = |a: AxisPadding| match a {
                AxisPadding::Explicit { begin, end } => Ok([begin, end]),
                _ => Err(RfError::layer(name, "a pad layer needs explicit amounts")),
            };
            Op::Pad {
                h: axis(pad.h)?,
                w: axis(pad.w)?,
            }
        }
        "upsample" => Op::Upsample {
            factor: get_pair("factor", None)?,
        },
        "conv_transpose" => {
            let p = match m.get("padding") {
                Some(v) => pair(name, "padding", v)?,
                None => [0, 0],
            };
            Op::ConvTranspose {
                kernel: get_pair("kernel", None)?,
                stride: get_pair("stride", Some([1, 1]))?,
                padding: p,
                output_padding: get_pair("output_padding", Some([0, 0]))?,
                channels,
            }
        }
        "add" => Op::Add,
        "concat" => Op::Concat,
        _ => Op::Identity,
    };
    Ok((op, inputs))
}

fn pair_value(p: Pair) -> Value {
    if p[0] == p[1] {
        json!(p[0])
    } else {
        json!(p)
    }
}

fn padding_value(p: &Padding) -> Value {
    match (p.h, p.w) {
        (AxisPadding::Valid, AxisPadding::Valid) => json!("valid"),
        (AxisPadding::Same, AxisPadding::Same) => json!("same"),
        (
            AxisPadding::Explicit { begin: a, end: b },
            AxisPadding::Explicit { begin: c, end: d },
        ) => {
            if a == b && c == d {
                pair_value([a, c])
            } else {
                json!({"top": a, "bottom": b, "left": c, "right": d})
            }
        }
        // Mixed SAME/VALID per axis has no spec form; only hand-built graphs have it.
        _ => json!("mixed"),
    }
}

/// The spec of a graph (every preset can be written out, edited and read back).
pub fn to_value(graph: &Graph) -> Value {
    let mut layers = Vec::new();
    for (i, node) in graph.nodes().iter().enumerate().skip(1) {
        let mut m = Map::new();
        m.insert("name".into(), json!(node.name));
        m.insert("op".into(), json!(node.op.kind()));
        let ins: Vec<&str> = node
            .inputs
            .iter()
            .map(|u| graph.node(*u).name.as_str())
            .collect();
        if node.op.is_merge() {
            m.insert("inputs".into(), json!(ins));
        } else if node.inputs[0].0 != i - 1 {
            m.insert("input".into(), json!(ins[0]));
        }
        match &node.op {
            Op::Conv { window, .. } | Op::Pool { window, .. } => {
                m.insert("kernel".into(), pair_value(window.kernel));
                m.insert("stride".into(), pair_value(window.stride));
                if window.dilation != [1, 1] {
                    m.insert("dilation".into(), pair_value(window.dilation));
                }
                m.insert("padding".into(), padding_value(&window.padding));
                if let Op::Conv {
                    channels: Some(c), ..
                } = node.op
                {
                    m.insert("channels".into(), json!(c));
                }
                if let Op::Pool {
                    ceil_mode: true, ..
                } = node.op
                {
                    m.insert("ceil_mode".into(), json!(true));
                }
            }
            Op::Pad { h, w } => {
                m.insert(
                    "padding".into(),
                    json!({"top": h[0], "bottom": h[1], "left": w[0], "right": w[1]}),
                );
            }
            Op::Upsample { factor } => {
                m.insert("factor".into(), pair_value(*factor));
            }
            Op::ConvTranspose {
                kernel,
                stride,
                padding,
                output_padding,
                channels,
            } => {
                m.insert("kernel".into(), pair_value(*kernel));
                m.insert("stride".into(), pair_value(*stride));
                m.insert("padding".into(), pair_value(*padding));
                m.insert("output_padding".into(), pair_value(*output_padding));
                if let Some(c) = channels {
                    m.insert("channels".into(), json!(c));
                }
            }
            _ => {}
        }
        layers.push(Value::Object(m));
    }
    let eps: Vec<&str> = graph
        .endpoints()
        .iter()
        .map(|e| graph.node(*e).name.as_str())
        .collect();
    json!({
        "name": graph.name(),
        "input": graph.nodes()[0].name,
        "allow_unaligned": graph.allow_unaligned(),
        "endpoints": eps,
        "layer": layers,
    })
}

/// The spec of a graph as text.
pub fn to_string(graph: &Graph, format: Format) -> Result<String> {
    let v = to_value(graph);
    match format {
        Format::Json => serde_json::to_string_pretty(&v).map_err(|e| RfError::Spec(e.to_string())),
        Format::Toml => toml::to_string(&v).map_err(|e| RfError::Spec(e.to_string())),
    }
}
