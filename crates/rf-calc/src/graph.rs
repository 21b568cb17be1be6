//! The layer graph: a DAG of named nodes in topological order (every node's inputs come before
//! it), with one input and a list of end-points to report.

use std::collections::HashMap;

use crate::error::{Result, RfError};
use crate::layer::Op;

/// Index of a node in its graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// One node: a named op and the nodes it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique name (the layer scope of the preset or spec).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// The nodes it reads, all before it.
    pub inputs: Vec<NodeId>,
}

/// A validated layer graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    name: String,
    nodes: Vec<Node>,
    index: HashMap<String, NodeId>,
    endpoints: Vec<NodeId>,
    allow_unaligned: bool,
}

impl Graph {
    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All nodes in topological order; the first is the input.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node `id` (an id of this graph).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// Number of nodes, input included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no node (never true for a built graph: it has its input).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Looks a node up by name.
    pub fn id(&self, name: &str) -> Result<NodeId> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| RfError::UnknownNode {
                name: name.to_owned(),
                graph: self.name.clone(),
                known: summarise(self.nodes.iter().map(|n| n.name.as_str())),
            })
    }

    /// The end-points to report (the named outputs of a preset; every node when none was set).
    pub fn endpoints(&self) -> &[NodeId] {
        &self.endpoints
    }

    /// Whether merges whose paths disagree on the centre are reported instead of rejected
    /// (FPN's nearest upsampling is misaligned by design).
    pub fn allow_unaligned(&self) -> bool {
        self.allow_unaligned
    }

    /// The nodes each node feeds, in order.
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &p in &n.inputs {
                out[p.0].push(NodeId(i));
            }
        }
        out
    }

    /// The nodes the given node depends on (itself included), as a mask.
    pub fn ancestors(&self, id: NodeId) -> Vec<bool> {
        let mut mask = vec![false; self.nodes.len()];
        mask[id.0] = true;
        for i in (0..=id.0).rev() {
            if mask[i] {
                for p in &self.nodes[i].inputs {
                    mask[p.0] = true;
                }
            }
        }
        mask
    }
}

/// Up to 12 names, then a count.
pub(crate) fn summarise<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.collect();
    if all.len() <= 12 {
        all.join(", ")
    } else {
        format!("{}, ... ({} in all)", all[..12].join(", "), all.len())
    }
}

/// Builds a [`Graph`] node by node. Mistakes are remembered and returned by [`build`], so
/// that a preset reads as a list of layers.
///
/// [`build`]: GraphBuilder::build
#[derive(Debug)]
pub struct GraphBuilder {
    name: String,
    nodes: Vec<Node>,
    index: HashMap<String, NodeId>,
    endpoints: Vec<NodeId>,
    allow_unaligned: bool,
    error: Option<RfError>,
}

impl GraphBuilder {
    /// A graph whose input node is called `input`.
    pub fn new(name: &str) -> Self {
        Self::with_input(name, "input")
    }

    /// A graph called `name` whose input node is called `input`.
    pub fn with_input(name: &str, input: &str) -> Self {
        let mut b = GraphBuilder {
            name: name.to_owned(),
            nodes: Vec::new(),
            index: HashMap::new(),
            endpoints: Vec::new(),
            allow_unaligned: false,
            error: None,
        };
        b.push(input, Op::Input, Vec::new());
        b
    }

    /// The input node.
    pub fn input(&self) -> NodeId {
        NodeId(0)
    }

    /// Adds a node reading `inputs`; a merge needs two or more, any other op exactly one.
    pub fn add(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> NodeId {
        if self.error.is_none() {
            let arity_ok = match &op {
                Op::Input => false,
                op if op.is_merge() => inputs.len() >= 2,
                _ => inputs.len() == 1,
            };
            if !arity_ok {
                self.error = Some(RfError::layer(
                    name,
                    match &op {
                        Op::Input => "only the first node is an input".to_owned(),
                        op if op.is_merge() => format!(
                            "{} needs two or more inputs, got {}",
                            op.kind(),
                            inputs.len()
                        ),
                        op => format!("{} takes one input, got {}", op.kind(), inputs.len()),
                    },
                ));
            } else if let Err(e) = op.validate(name) {
                self.error = Some(e);
            } else if let Some(bad) = inputs.iter().find(|i| i.0 >= self.nodes.len()) {
                self.error = Some(RfError::UnknownInput {
                    layer: name.to_owned(),
                    input: format!("#{}", bad.0),
                });
            }
        }
        self.push(name, op, inputs.to_vec())
    }

    /// Adds a node reading one input.
    pub fn layer(&mut self, name: &str, op: Op, input: NodeId) -> NodeId {
        self.add(name, op, &[input])
    }

    /// Looks up an existing node by name.
    pub fn get(&self, name: &str) -> Option<NodeId> {
        self.index.get(name).copied()
    }

    /// Marks a node as an end-point to report.
    pub fn endpoint(&mut self, id: NodeId) {
        if !self.endpoints.contains(&id) {
            self.endpoints.push(id);
        }
    }

    /// Adds a node and marks it as an end-point.
    pub fn endpoint_layer(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> NodeId {
        let id = self.add(name, op, inputs);
        self.endpoint(id);
        id
    }

    /// Report misaligned merges instead of rejecting them.
    pub fn allow_unaligned(&mut self, yes: bool) {
        self.allow_unaligned = yes;
    }

    /// Records an error found outside the builder (the spec reader uses this).
    pub fn fail(&mut self, e: RfError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn push(&mut self, name: &str, op: Op, inputs: Vec<NodeId>) -> NodeId {
        let id = NodeId(self.nodes.len());
        if self.index.insert(name.to_owned(), id).is_some() && self.error.is_none() {
            self.error = Some(RfError::DuplicateName(name.to_owned()));
        }
        self.nodes.push(Node {
            name: name.to_owned(),
            op,
            inputs,
        });
        id
    }

    /// The graph, or the first mistake made while building it.
    pub fn build(self) -> Result<Graph> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let endpoints = if self.endpoints.is_empty() {
            (1..self.nodes.len()).map(NodeId).collect()
        } else {
            self.endpoints
        };
        Ok(Graph {
            name: self.name,
            nodes: self.nodes,
            index: self.index,
            endpoints,
            allow_unaligned: self.allow_unaligned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Padding;

    #[test]
    fn builder_reports_the_first_mistake_by_layer_name() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let a = b.layer("a", Op::conv(3, 1, Padding::SAME), x);
        b.add("sum", Op::Add, &[a]);
        let err = b.build().unwrap_err().to_string();
        assert!(err.contains("sum") && err.contains("two or more"), "{err}");

        let mut b = GraphBuilder::new("t");
        let x = b.input();
        b.layer("a", Op::conv(3, 1, Padding::SAME), x);
        b.layer("a", Op::conv(3, 1, Padding::SAME), x);
        assert!(matches!(b.build(), Err(RfError::DuplicateName(n)) if n == "a"));
    }

    #[test]
    fn ancestors_and_consumers() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let a = b.layer("a", Op::conv(3, 1, Padding::SAME), x);
        let c = b.layer("c", Op::conv(1, 1, Padding::SAME), x);
        let s = b.add("s", Op::Add, &[a, c]);
        let g = b.build().unwrap();
        assert_eq!(g.ancestors(a), vec![true, true, false, false]);
        assert!(g.ancestors(s).iter().all(|&m| m));
        assert_eq!(g.consumers()[0], vec![a, c]);
        assert_eq!(g.endpoints().len(), 3);
        assert!(g.id("nope").unwrap_err().to_string().contains("a, c, s"));
    }
}
