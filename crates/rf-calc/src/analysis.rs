//! One call that runs every method on a graph and cross-checks them.

use serde::Serialize;

use crate::distill::{closed_form, top_down, DistillRf};
use crate::error::{Result, RfError};
use crate::exact::{unit_maps, Frac, UnitMap};
use crate::graph::{summarise, Graph, NodeId};
use crate::layer::{Axis, AxisOp, Pair};
use crate::sizes::{resolve, AxisGeom};

/// Largest input side accepted.
pub const MAX_INPUT: i64 = 1 << 24;

/// How to analyse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Input `[height, width]`; `SAME` paddings with strides need it.
    pub input: Option<Pair>,
    /// Reject merges whose paths disagree on the centre (`Some(true)`), report them
    /// (`Some(false)`), or follow the graph's own setting (`None`). Paths that disagree on the
    /// effective stride are always rejected.
    pub strict: Option<bool>,
}

impl Options {
    /// Options for a known input size `[height, width]`.
    pub fn input(size: Pair) -> Options {
        Options {
            input: Some(size),
            strict: None,
        }
    }
}

/// Receptive field of a node's units along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AxisRf {
    /// Receptive-field size `r` (the largest over units when it varies with the unit).
    pub size: i64,
    /// Smallest size over units (equal to `size` unless the node is upsampled).
    pub size_min: i64,
    /// Effective stride `S` (fractional after upsampling past the input resolution).
    pub stride: Frac,
    /// Effective padding `P`; `None` when it depends on an unknown input size.
    pub padding: Option<i64>,
    /// Units after which the pattern repeats (1 for conv/pool graphs).
    pub period: i64,
}

impl AxisRf {
    fn from_distill(d: DistillRf) -> AxisRf {
        AxisRf {
            size: d.size,
            size_min: d.size,
            stride: Frac::int(d.stride),
            padding: d.padding,
            period: 1,
        }
    }

    fn from_map(m: &UnitMap) -> AxisRf {
        AxisRf {
            size: m.size(),
            size_min: m.size_min(),
            stride: m.stride(),
            padding: Some(m.padding()),
            period: m.period,
        }
    }
}

/// Everything known about one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// Op with kernel, stride and padding.
    pub op: String,
    /// Names of the nodes it reads.
    pub inputs: Vec<String>,
    /// Sizes and applied paddings, `[height, width]`.
    pub geom: [AxisGeom; 2],
    /// Receptive field, `[height, width]`.
    pub rf: [AxisRf; 2],
    #[serde(skip)]
    map: Option<[UnitMap; 2]>,
}

impl NodeReport {
    /// Centre `[y, x]` in input pixels of the unit at `[row, col]`; `None` when the effective
    /// padding is unknown.
    pub fn centre(&self, unit: Pair) -> Option<[f64; 2]> {
        self.map
            .as_ref()
            .map(|m| [m[0].centre(unit[0]), m[1].centre(unit[1])])
    }

    /// Inclusive input-pixel box `[[top, bottom], [left, right]]` of the unit at `[row, col]`
    /// (unclipped: it may reach into the padding).
    pub fn rf_box(&self, unit: Pair) -> Option<[[i64; 2]; 2]> {
        self.map.as_ref().map(|m| {
            [
                [m[0].lo_at(unit[0]), m[0].hi_at(unit[0])],
                [m[1].lo_at(unit[1]), m[1].hi_at(unit[1])],
            ]
        })
    }

    /// The exact per-unit maps, `[height, width]`, when every padding is known.
    pub fn unit_maps(&self) -> Option<&[UnitMap; 2]> {
        self.map.as_ref()
    }

    /// Whether height and width agree.
    pub fn is_square(&self) -> bool {
        self.rf[0] == self.rf[1]
    }
}

/// The receptive fields of every node of a graph.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// Name of the analysed graph.
    pub graph: String,
    /// Input size `[height, width]`, when given.
    pub input: Option<Pair>,
    /// Whether misaligned merges were errors.
    pub strict: bool,
    /// Every node, in topological order.
    pub nodes: Vec<NodeReport>,
    /// Names of the end-points, in order.
    pub endpoints: Vec<String>,
    /// Misaligned merges (when not strict).
    pub warnings: Vec<String>,
    /// Which methods produced and cross-checked the numbers.
    pub methods: Vec<&'static str>,
}

impl Analysis {
    /// The report of the node called `name`.
    pub fn node(&self, name: &str) -> Result<&NodeReport> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| RfError::UnknownNode {
                name: name.to_owned(),
                graph: self.graph.clone(),
                known: summarise(self.nodes.iter().map(|n| n.name.as_str())),
            })
    }

    /// The end-point nodes, in order.
    pub fn endpoint_nodes(&self) -> impl Iterator<Item = &NodeReport> {
        self.endpoints
            .iter()
            .filter_map(|e| self.nodes.iter().find(|n| &n.name == e))
    }
}

/// Analyses a graph: sizes and paddings, the Distill closed form over all nodes, the
/// top-down recursion from every end-point, and the exact per-unit maps; the methods must
/// agree wherever more than one applies.
pub fn analyze(graph: &Graph, opts: Options) -> Result<Analysis> {
    let strict = opts.strict.unwrap_or(!graph.allow_unaligned());
    if let Some(size) = opts.input {
        if size.iter().any(|n| !(1..=MAX_INPUT).contains(n)) {
            return Err(RfError::Invalid {
                what: "input size".to_owned(),
                message: format!("must be in 1..={MAX_INPUT}, got {size:?}"),
            });
        }
    }
    let geoms = resolve(graph, opts.input)?;
    let closed = match closed_form(graph, &geoms, strict) {
        Ok(c) => Some(c),
        Err(RfError::FractionalStride { .. }) => None,
        Err(e) => return Err(e),
    };
    let exact = unit_maps(graph, &geoms, strict)?;
    let mut methods = Vec::new();
    if let Some(c) = &closed {
        methods.push("distill closed form");
        // The recursion from each end-point must land on the closed form.
        for &e in graph.endpoints() {
            let td = top_down(graph, &geoms, e, strict)?;
            for a in Axis::BOTH {
                let (x, y) = (td[a.index()], c.rf[e.0][a.index()]);
                if x != y {
                    return Err(RfError::MethodsDisagree {
                        layer: graph.node(e).name.clone(),
                        detail: format!("{}: top-down {x:?}, closed form {y:?}", a.name()),
                    });
                }
            }
        }
        methods.push("distill top-down");
    }
    if exact.maps.iter().any(Option::is_some) {
        methods.push("exact per-unit");
    }
    let aligned = closed.as_ref().is_some_and(|c| c.warnings.is_empty());
    let mut nodes = Vec::with_capacity(graph.len());
    for (i, node) in graph.nodes().iter().enumerate() {
        let map = exact.maps[i].clone();
        let rf = match (&map, &closed) {
            (Some(m), c) => {
                let rf = [AxisRf::from_map(&m[0]), AxisRf::from_map(&m[1])];
                if let (Some(c), true) = (c, aligned) {
                    for a in Axis::BOTH {
                        let d = AxisRf::from_distill(c.rf[i][a.index()]);
                        if d != rf[a.index()] {
                            return Err(RfError::MethodsDisagree {
                                layer: node.name.clone(),
                                detail: format!(
                                    "{}: exact {:?}, closed form {d:?}",
                                    a.name(),
                                    rf[a.index()]
                                ),
                            });
                        }
                    }
                }
                rf
            }
            (None, Some(c)) => [
                AxisRf::from_distill(c.rf[i][0]),
                AxisRf::from_distill(c.rf[i][1]),
            ],
            (None, None) => return Err(unknown_padding(graph, &geoms, NodeId(i))),
        };
        nodes.push(NodeReport {
            name: node.name.clone(),
            op: node.op.describe(),
            inputs: node
                .inputs
                .iter()
                .map(|u| graph.node(*u).name.clone())
                .collect(),
            geom: geoms[i],
            rf,
            map,
        });
    }
    let warnings = if nodes.iter().all(|n| n.map.is_some()) {
        exact.warnings
    } else {
        closed.map(|c| c.warnings).unwrap_or_default()
    };
    Ok(Analysis {
        graph: graph.name().to_owned(),
        input: opts.input,
        strict,
        endpoints: graph
            .endpoints()
            .iter()
            .map(|e| graph.node(*e).name.clone())
            .collect(),
        nodes,
        warnings,
        methods,
    })
}

/// The first layer upstream of `id` whose padding is unknown, as an error.
fn unknown_padding(graph: &Graph, geoms: &[[AxisGeom; 2]], id: NodeId) -> RfError {
    let up = graph.ancestors(id);
    for (i, node) in graph.nodes().iter().enumerate() {
        if !up[i] {
            continue;
        }
        for a in Axis::BOTH {
            if let AxisOp::Window { k, s, .. } = node.op.axis(a) {
                if geoms[i][a.index()].pad_begin.is_none() {
                    return RfError::PaddingDependsOnInputSize {
                        layer: node.name.clone(),
                        kernel: k,
                        stride: s,
                    };
                }
            }
        }
    }
    RfError::Invalid {
        what: graph.node(id).name.clone(),
        message: "no method applies".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::layer::{Op, Padding};

    #[test]
    fn same_padding_needs_the_input_size_only_for_padding() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let c = b.layer("c", Op::conv(3, 2, Padding::SAME), x);
        b.layer("d", Op::conv(3, 1, Padding::SAME), c);
        let g = b.build().unwrap();
        let none = analyze(&g, Options::default()).unwrap();
        let d = none.node("d").unwrap();
        assert_eq!(
            (d.rf[0].size, d.rf[0].stride, d.rf[0].padding),
            (7, Frac::int(2), None)
        );
        assert_eq!(d.centre([0, 0]), None);
        let even = analyze(&g, Options::input([224, 225])).unwrap();
        let d = even.node("d").unwrap();
        assert_eq!(d.rf[0].padding, Some(2));
        assert_eq!(d.rf[1].padding, Some(3));
        assert_eq!(d.centre([0, 0]), Some([1.0, 0.0]));
        assert_eq!(d.rf_box([1, 1]), Some([[0, 6], [-1, 5]]));
        assert!(!d.is_square());
    }

    #[test]
    fn upsampled_graphs_need_known_padding() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let c = b.layer("pool", Op::max_pool(3, 2, Padding::SAME), x);
        b.layer("up", Op::Upsample { factor: [2, 2] }, c);
        let g = b.build().unwrap();
        let err = analyze(&g, Options::default()).unwrap_err().to_string();
        assert!(err.contains("`pool`") && err.contains("--input"), "{err}");
        let a = analyze(&g, Options::input([8, 8])).unwrap();
        assert_eq!(a.methods, vec!["exact per-unit"]);
        assert_eq!(a.node("up").unwrap().rf[0].stride, Frac::int(1));
    }
}
