//! The two methods of Araujo, Norris & Sim (Distill 2019), for graphs with integer strides.
//!
//! Per layer `l` with effective kernel `k_l = d (k - 1) + 1`, stride `s_l` and padding before
//! `p_l`:
//! - top-down recursion (Eq. 1, 4, 6 of the article), from an output back to the input:
//!   `r_{l-1} = s_l r_l + (k_l - s_l)`, `S_{l-1} = s_l S_l`, `P_{l-1} = s_l P_l + p_l`;
//! - closed form (Eq. 2, 5, 7), here accumulated from the input forward so that one pass gives
//!   every node: `r_0 = 1 + sum_l (k_l - 1) prod_{i<l} s_i`, `S_0 = prod_l s_l`,
//!   `P_0 = sum_l p_l prod_{i<l} s_i`.
//!
//! On a DAG both take the maximum over paths and check at every merge that the paths agree on
//! the effective stride and on the centre shift `(r - 1)/2 - P` (the same checks as
//! google-research/receptive_field). Where a padding is unknown (`SAME` without an input size)
//! the effective padding is unknown and the centre check is skipped.

use serde::Serialize;

use crate::error::{Result, RfError};
use crate::graph::{Graph, NodeId};
use crate::layer::{Axis, AxisOp};
use crate::sizes::AxisGeom;

/// Receptive field of a node's units in input pixels, along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DistillRf {
    /// Receptive-field size `r`.
    pub size: i64,
    /// Effective stride `S`.
    pub stride: i64,
    /// Effective padding `P` (unit 0 starts at input pixel `-P`); `None` when it depends on
    /// an unknown input size.
    pub padding: Option<i64>,
}

impl DistillRf {
    const UNIT: DistillRf = DistillRf {
        size: 1,
        stride: 1,
        padding: Some(0),
    };

    /// Centre of unit `x` in input pixels: `-P + x S + (r - 1) / 2`.
    pub fn centre(&self, x: i64) -> Option<f64> {
        self.padding
            .map(|p| (-p + x * self.stride) as f64 + (self.size - 1) as f64 / 2.0)
    }

    /// Twice the centre shift `(r - 1)/2 - P`, an integer.
    fn shift2(&self) -> Option<i64> {
        self.padding.map(|p| self.size - 1 - 2 * p)
    }
}

/// Integer layer parameters along an axis: `(k_eff, s, p_begin)`.
fn params(graph: &Graph, id: NodeId, a: Axis, geom: &AxisGeom) -> Result<(i64, i64, Option<i64>)> {
    let node = graph.node(id);
    match node.op.axis(a) {
        AxisOp::Input | AxisOp::Merge => Ok((1, 1, Some(0))),
        AxisOp::Window { k, s, .. } => Ok((k, s, geom.pad_begin)),
        AxisOp::Upsample { .. } => Err(RfError::FractionalStride {
            layer: node.name.clone(),
            op: "upsample",
        }),
        AxisOp::Transposed { .. } => Err(RfError::FractionalStride {
            layer: node.name.clone(),
            op: "conv_transpose",
        }),
    }
}

/// Combines the candidates a merge sees from its paths: checks alignment, keeps the largest.
/// `via` names each candidate's path for the message. Misaligned centres are an error when
/// `strict`, otherwise a warning.
fn merge(
    layer: &str,
    a: Axis,
    cands: &[(DistillRf, &str)],
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<DistillRf> {
    let (first, first_via) = cands[0];
    for &(c, via) in &cands[1..] {
        if c.stride != first.stride {
            return Err(RfError::UnalignedMerge {
                layer: layer.to_owned(),
                axis: a.name(),
                detail: format!(
                    "effective stride {} via `{first_via}` but {} via `{via}`",
                    first.stride, c.stride
                ),
            });
        }
        if let (Some(x), Some(y)) = (first.shift2(), c.shift2()) {
            if x != y {
                let detail = format!(
                    "unit 0 is centred at input pixel {} via `{first_via}` but {} via `{via}`",
                    first.centre(0).unwrap_or(f64::NAN),
                    c.centre(0).unwrap_or(f64::NAN)
                );
                if strict {
                    return Err(RfError::UnalignedMerge {
                        layer: layer.to_owned(),
                        axis: a.name(),
                        detail,
                    });
                }
                warnings.push(format!("`{layer}` ({}): {detail}", a.name()));
            }
        }
    }
    let mut best = first;
    for &(c, _) in &cands[1..] {
        if c.size > best.size {
            best = c;
        }
    }
    if cands.iter().any(|(c, _)| c.padding.is_none()) {
        best.padding = None;
    }
    Ok(best)
}

/// Output of the closed form: every node's receptive field, `[height, width]`.
#[derive(Debug, Clone)]
pub struct ClosedForm {
    /// Every node's field by the closed form, `[height, width]`.
    pub rf: Vec<[DistillRf; 2]>,
    /// Misaligned merges seen when not strict.
    pub warnings: Vec<String>,
}

/// The closed form, accumulated from the input forward over the whole graph.
pub fn closed_form(graph: &Graph, geoms: &[[AxisGeom; 2]], strict: bool) -> Result<ClosedForm> {
    let mut rf: Vec<[DistillRf; 2]> = Vec::with_capacity(graph.len());
    let mut warnings = Vec::new();
    for (i, node) in graph.nodes().iter().enumerate() {
        let mut both = [DistillRf::UNIT; 2];
        for a in Axis::BOTH {
            let ai = a.index();
            if node.inputs.is_empty() {
                continue;
            }
            let (k, s, p) = params(graph, NodeId(i), a, &geoms[i][ai])?;
            let step = |u: &DistillRf| DistillRf {
                size: u.size + (k - 1) * u.stride,
                stride: u.stride * s,
                padding: match (u.padding, p) {
                    (Some(pu), Some(p)) => Some(pu + p * u.stride),
                    _ => None,
                },
            };
            let cands: Vec<(DistillRf, &str)> = node
                .inputs
                .iter()
                .map(|u| (step(&rf[u.0][ai]), graph.node(*u).name.as_str()))
                .collect();
            both[ai] = if cands.len() == 1 {
                cands[0].0
            } else {
                merge(&node.name, a, &cands, strict, &mut warnings)?
            };
        }
        rf.push(both);
    }
    Ok(ClosedForm { rf, warnings })
}

/// The top-down recursion from `output` back to the input: the receptive field of `output`'s
/// units, `[height, width]`.
pub fn top_down(
    graph: &Graph,
    geoms: &[[AxisGeom; 2]],
    output: NodeId,
    strict: bool,
) -> Result<[DistillRf; 2]> {
    let consumers = graph.consumers();
    let relevant = graph.ancestors(output);
    let mut result = [DistillRf::UNIT; 2];
    let mut warnings = Vec::new();
    for a in Axis::BOTH {
        let ai = a.index();
        // at[v]: receptive field of one `output` unit in units of v's output map.
        let mut at: Vec<Option<DistillRf>> = vec![None; output.0 + 1];
        at[output.0] = Some(DistillRf::UNIT);
        for v in (0..=output.0).rev() {
            if !relevant[v] {
                continue;
            }
            if v != output.0 {
                // Everything that reads v on the way to `output`, seen through that reader.
                let mut cands: Vec<(DistillRf, &str)> = Vec::new();
                for c in &consumers[v] {
                    if c.0 > output.0 || !relevant[c.0] {
                        continue;
                    }
                    let Some(rc) = at[c.0] else { continue };
                    let (k, s, p) = params(graph, *c, a, &geoms[c.0][ai])?;
                    // One input edge per occurrence (a merge may read v twice).
                    let times = graph.node(*c).inputs.iter().filter(|u| u.0 == v).count();
                    for _ in 0..times {
                        let cand = DistillRf {
                            size: s * rc.size + k - s,
                            stride: s * rc.stride,
                            padding: match (rc.padding, p) {
                                (Some(pc), Some(p)) => Some(s * pc + p),
                                _ => None,
                            },
                        };
                        cands.push((cand, graph.node(*c).name.as_str()));
                    }
                }
                at[v] = match cands.len() {
                    0 => None,
                    1 => Some(cands[0].0),
                    _ => Some(merge(
                        &graph.node(NodeId(v)).name,
                        a,
                        &cands,
                        strict,
                        &mut warnings,
                    )?),
                };
            }
        }
        result[ai] = at[0].unwrap_or(DistillRf::UNIT);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::layer::{Op, Padding};
    use crate::sizes::resolve;

    fn chain(layers: &[(i64, i64, i64)]) -> Graph {
        let mut b = GraphBuilder::new("chain");
        let mut x = b.input();
        for (i, &(k, s, p)) in layers.iter().enumerate() {
            x = b.layer(&format!("l{i}"), Op::conv(k, s, Padding::sym(p)), x);
        }
        b.build().unwrap()
    }

    #[test]
    fn article_example_and_both_methods() {
        // conv k3 s1 p1, pool k2 s2 p0, conv k3 s1 p1: r = 1 + 2 + 1*1 + 2*2 = 8.
        let g = chain(&[(3, 1, 1), (2, 2, 0), (3, 1, 1)]);
        let geoms = resolve(&g, None).unwrap();
        let cf = closed_form(&g, &geoms, true).unwrap();
        let last = cf.rf[3][0];
        assert_eq!((last.size, last.stride, last.padding), (8, 2, Some(3)));
        assert_eq!(top_down(&g, &geoms, NodeId(3), true).unwrap()[1], last);
        // Unit 0's centre: -3 + 0 + 3.5.
        assert_eq!(last.centre(0), Some(0.5));
    }

    #[test]
    fn unaligned_merges_are_named() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let a = b.layer("a", Op::conv(3, 1, Padding::VALID), x);
        let c = b.layer("c", Op::conv(3, 1, Padding::sym(1)), x);
        b.add("sum", Op::Add, &[a, c]);
        let g = b.build().unwrap();
        let geoms = resolve(&g, None).unwrap();
        let err = closed_form(&g, &geoms, true).unwrap_err().to_string();
        assert!(
            err.contains("`sum`") && err.contains("`a`") && err.contains("`c`"),
            "{err}"
        );
        let err = top_down(&g, &geoms, NodeId(3), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not aligned"), "{err}");
        let lenient = closed_form(&g, &geoms, false).unwrap();
        assert_eq!(lenient.warnings.len(), 2);

        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let a = b.layer("a", Op::conv(3, 2, Padding::SAME), x);
        let c = b.layer("c", Op::conv(3, 1, Padding::SAME), x);
        b.add("sum", Op::Add, &[a, c]);
        let g = b.build().unwrap();
        let err = closed_form(&g, &resolve(&g, None).unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("effective stride 2"), "{err}");
    }
}
