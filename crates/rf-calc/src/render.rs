//! Text, markdown and JSON renderings of an [`Analysis`].

use std::fmt::Display;

use serde_json::json;

use crate::analysis::{Analysis, AxisRf, NodeReport};
use crate::error::{Result, RfError};

/// Which nodes to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// The graph's end-points.
    Endpoints,
    /// Every node.
    All,
}

fn both<T: Display + PartialEq>(h: T, w: T) -> String {
    if h == w {
        format!("{h}")
    } else {
        format!("{h}x{w}")
    }
}

fn size_text(r: &AxisRf) -> String {
    if r.size_min == r.size {
        r.size.to_string()
    } else {
        format!("{}..{}", r.size_min, r.size)
    }
}

fn pad_text(p: Option<i64>) -> String {
    p.map_or_else(|| "None".to_owned(), |p| p.to_string())
}

/// The cells of one row: layer, op, output size, RF, stride, padding, centre of unit 0.
fn cells(n: &NodeReport) -> [String; 7] {
    let [h, w] = &n.rf;
    let out = match (n.geom[0].out_size, n.geom[1].out_size) {
        (Some(a), Some(b)) => format!("{a}x{b}"),
        _ => "?".to_owned(),
    };
    let centre = n
        .centre([0, 0])
        .map_or_else(|| "None".to_owned(), |[y, x]| both(y, x));
    [
        n.name.clone(),
        n.op.clone(),
        out,
        both(size_text(h), size_text(w)),
        both(h.stride, w.stride),
        both(pad_text(h.padding), pad_text(w.padding)),
        centre,
    ]
}

const HEADER: [&str; 7] = [
    "layer",
    "op",
    "size",
    "RF",
    "stride",
    "padding",
    "centre(0)",
];

fn selected(a: &Analysis, rows: Rows) -> Vec<&NodeReport> {
    match rows {
        Rows::All => a.nodes.iter().skip(1).collect(),
        Rows::Endpoints => a.endpoint_nodes().collect(),
    }
}

fn title(a: &Analysis) -> String {
    let input = a.input.map_or_else(
        || "input size unknown".to_owned(),
        |[h, w]| format!("input {h}x{w}"),
    );
    format!("{} ({input}; methods: {})", a.graph, a.methods.join(", "))
}

/// A plain-text table.
pub fn table(a: &Analysis, rows: Rows) -> String {
    let body: Vec<[String; 7]> = selected(a, rows).into_iter().map(cells).collect();
    let mut widths = HEADER.map(str::len);
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String]| {
        r.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![title(a), line(&HEADER.map(str::to_owned))];
    out.extend(body.iter().map(|r| line(r)));
    out.extend(notes(a));
    out.join("\n") + "\n"
}

fn notes(a: &Analysis) -> Vec<String> {
    let mut out = Vec::new();
    if a.nodes
        .iter()
        .any(|n| n.rf.iter().any(|r| r.padding.is_none()))
    {
        out.push(
            "padding None: SAME padding upstream depends on the input size (give --input)"
                .to_owned(),
        );
    }
    if a.nodes.iter().any(|n| n.rf.iter().any(|r| r.period > 1)) {
        out.push("RF a..b: the size varies between units (upsampling)".to_owned());
    }
    for w in &a.warnings {
        out.push(format!("misaligned: {w}"));
    }
    out
}

/// A markdown table.
pub fn markdown(a: &Analysis, rows: Rows) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = vec![
        format!("**{}**", title(a)),
        String::new(),
        format!("| {} |", HEADER.join(" | ")),
        format!("|{}", " --- |".repeat(HEADER.len())),
    ];
    for n in selected(a, rows) {
        let c = cells(n);
        out.push(format!(
            "| {} |",
            c.iter().map(|s| esc(s)).collect::<Vec<_>>().join(" | ")
        ));
    }
    let notes = notes(a);
    if !notes.is_empty() {
        out.push(String::new());
        out.extend(notes.into_iter().map(|n| format!("- {n}")));
    }
    out.join("\n") + "\n"
}

/// JSON: the analysis header and the selected nodes.
pub fn json(a: &Analysis, rows: Rows) -> Result<String> {
    let v = json!({
        "graph": a.graph,
        "input": a.input,
        "strict": a.strict,
        "methods": a.methods,
        "warnings": a.warnings,
        "nodes": selected(a, rows),
    });
    serde_json::to_string_pretty(&v).map_err(|e| RfError::Invalid {
        what: "json".to_owned(),
        message: e.to_string(),
    })
}
