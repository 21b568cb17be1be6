//! Feature-map sizes and the padding each layer applies, for a given input size or none.
//!
//! `SAME` padding (TensorFlow) depends on the size of the layer's input unless the stride or
//! the kernel is 1, so without an input size some paddings, and every effective padding
//! downstream of them, stay unknown; the receptive-field size and the effective stride never
//! depend on it.

use serde::Serialize;

use crate::error::{Result, RfError};
use crate::graph::Graph;
use crate::layer::{Axis, AxisOp, AxisPadding, Pair};

/// One layer along one axis, for the input size in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AxisGeom {
    /// Size of the layer's (first) input feature map.
    pub in_size: Option<i64>,
    /// Size of its output feature map.
    pub out_size: Option<i64>,
    /// Padding applied before (top/left); for a transposed convolution its `padding`.
    pub pad_begin: Option<i64>,
    /// Padding applied after (bottom/right).
    pub pad_end: Option<i64>,
}

/// Largest receptive field, effective stride, padding or feature-map size the arithmetic may
/// reach: beyond it (absurd strides or upsampling factors) a graph is rejected, not overflowed.
pub const LIMIT: i64 = 1 << 40;

/// Rejects graphs whose sizes could leave [`LIMIT`], by bounding every quantity from above.
fn guard(graph: &Graph, input: Option<Pair>) -> Result<()> {
    // Per node and axis: bounds on effective stride, receptive field + padding, map size.
    let mut bounds: Vec<[(i64, i64, i64); 2]> = Vec::with_capacity(graph.len());
    for node in graph.nodes() {
        let mut both = [(1i64, 1i64, 1i64); 2];
        for a in Axis::BOTH {
            let i = a.index();
            let parents = node.inputs.iter().map(|p| bounds[p.0][i]);
            let (s, r, n) =
                parents.fold((1, 1, 1), |x, y| (x.0.max(y.0), x.1.max(y.1), x.2.max(y.2)));
            both[i] = match node.op.axis(a) {
                AxisOp::Input => (1, 1, input.map_or(LIMIT >> 16, |p| p[i])),
                AxisOp::Window { k, s: st, pad, .. } => {
                    let p = match pad {
                        AxisPadding::Explicit { begin, end } => begin.saturating_add(end),
                        _ => k,
                    };
                    let grow = k.saturating_add(p).saturating_mul(s);
                    (
                        s.saturating_mul(st),
                        r.saturating_add(grow),
                        n.saturating_add(p),
                    )
                }
                AxisOp::Upsample { f } => (s, r, n.saturating_mul(f)),
                AxisOp::Transposed {
                    k,
                    s: st,
                    p,
                    output_padding,
                } => {
                    let extra = k.saturating_add(p).saturating_add(output_padding);
                    (
                        s,
                        r.saturating_add(k.saturating_mul(s)),
                        n.saturating_mul(st).saturating_add(extra),
                    )
                }
                AxisOp::Merge => (s, r, n),
            };
            let (s, r, n) = both[i];
            if s > LIMIT || r > LIMIT || n > LIMIT {
                return Err(RfError::layer(
                    &node.name,
                    format!(
                        "its receptive field or size along {} could exceed 2^40 pixels",
                        a.name()
                    ),
                ));
            }
        }
        bounds.push(both);
    }
    Ok(())
}

/// Resolves every node's sizes and paddings, `[height, width]` per node.
pub fn resolve(graph: &Graph, input: Option<Pair>) -> Result<Vec<[AxisGeom; 2]>> {
    guard(graph, input)?;
    let mut out: Vec<[AxisGeom; 2]> = Vec::with_capacity(graph.len());
    for node in graph.nodes() {
        let mut both = [AxisGeom {
            in_size: None,
            out_size: None,
            pad_begin: None,
            pad_end: None,
        }; 2];
        for a in Axis::BOTH {
            let parent = |k: usize| out[node.inputs[k].0][a.index()].out_size;
            let g = &mut both[a.index()];
            match node.op.axis(a) {
                AxisOp::Input => {
                    g.out_size = input.map(|p| p[a.index()]);
                    g.pad_begin = Some(0);
                    g.pad_end = Some(0);
                }
                AxisOp::Window {
                    k,
                    s,
                    pad,
                    ceil_mode,
                } => {
                    let n = parent(0);
                    let (b, e) = pad.resolve(k, s, n);
                    g.in_size = n;
                    g.pad_begin = b;
                    g.pad_end = e;
                    g.out_size = match (n, b, e) {
                        (Some(n), Some(b), Some(e)) => {
                            Some(window_out(&node.name, a, n, k, s, b, e, pad, ceil_mode)?)
                        }
                        _ => None,
                    };
                }
                AxisOp::Upsample { f } => {
                    g.in_size = parent(0);
                    g.out_size = g.in_size.map(|n| n * f);
                    g.pad_begin = Some(0);
                    g.pad_end = Some(0);
                }
                AxisOp::Transposed {
                    k,
                    s,
                    p,
                    output_padding,
                } => {
                    g.in_size = parent(0);
                    g.pad_begin = Some(p);
                    g.pad_end = Some(p);
                    g.out_size = match g.in_size {
                        Some(n) => {
                            let o = (n - 1) * s - 2 * p + k + output_padding;
                            if o < 1 {
                                return Err(RfError::TooSmall {
                                    layer: node.name.clone(),
                                    axis: a.name(),
                                    input: n,
                                    kernel: k,
                                    padding: -2 * p,
                                });
                            }
                            Some(o)
                        }
                        None => None,
                    };
                }
                AxisOp::Merge => {
                    let sizes: Vec<Option<i64>> = (0..node.inputs.len()).map(parent).collect();
                    g.pad_begin = Some(0);
                    g.pad_end = Some(0);
                    g.in_size = sizes[0];
                    if sizes.iter().all(Option::is_some) {
                        if sizes.iter().any(|s| *s != sizes[0]) {
                            let names: Vec<String> = node
                                .inputs
                                .iter()
                                .zip(&sizes)
                                .map(|(i, s)| {
                                    format!("`{}` {}", graph.node(*i).name, s.unwrap_or(0))
                                })
                                .collect();
                            return Err(RfError::SizeMismatch {
                                layer: node.name.clone(),
                                axis: a.name(),
                                sizes: names.join(", "),
                            });
                        }
                        g.out_size = sizes[0];
                    }
                }
            }
        }
        out.push(both);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn window_out(
    layer: &str,
    a: Axis,
    n: i64,
    k: i64,
    s: i64,
    b: i64,
    e: i64,
    pad: AxisPadding,
    ceil_mode: bool,
) -> Result<i64> {
    if pad == AxisPadding::Same {
        return Ok((n + s - 1).div_euclid(s));
    }
    let span = n + b + e - k;
    if span < 0 {
        return Err(RfError::TooSmall {
            layer: layer.to_owned(),
            axis: a.name(),
            input: n,
            kernel: k,
            padding: b + e,
        });
    }
    if !ceil_mode {
        return Ok(span / s + 1);
    }
    // PyTorch: round up, but the last window must start inside the input or the left padding.
    let mut o = (span + s - 1) / s + 1;
    if (o - 1) * s >= n + b {
        o -= 1;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::layer::{Op, Padding};

    #[test]
    fn sizes_follow_tensorflow_and_pytorch_rules() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let c = b.layer("c", Op::conv(7, 2, Padding::SAME), x);
        let mut pool = Op::max_pool(3, 2, Padding::VALID);
        if let Op::Pool { ceil_mode, .. } = &mut pool {
            *ceil_mode = true;
        }
        let p = b.layer("p", pool, c);
        let v = b.layer("v", Op::conv(3, 1, Padding::VALID), p);
        b.layer("u", Op::Upsample { factor: [2, 3] }, v);
        let g = b.build().unwrap();
        let r = resolve(&g, Some([224, 225])).unwrap();
        assert_eq!(r[1][0].out_size, Some(112));
        assert_eq!((r[1][0].pad_begin, r[1][0].pad_end), (Some(2), Some(3)));
        assert_eq!(r[1][1].out_size, Some(113));
        assert_eq!((r[1][1].pad_begin, r[1][1].pad_end), (Some(3), Some(3)));
        // ceil_mode: (112 - 3) / 2 rounded up + 1 = 56.
        assert_eq!(r[2][0].out_size, Some(56));
        assert_eq!(r[3][0].out_size, Some(54));
        assert_eq!(r[4][1].out_size, Some(r[3][1].out_size.unwrap() * 3));
        let small = resolve(&g, Some([4, 4])).unwrap_err().to_string();
        assert!(small.contains("`p`"), "{small}");
    }

    #[test]
    fn absurd_graphs_are_rejected_not_overflowed() {
        let mut b = GraphBuilder::new("t");
        let mut x = b.input();
        for i in 0..5 {
            x = b.layer(&format!("c{i}"), Op::conv(3, 60_000, Padding::VALID), x);
        }
        let g = b.build().unwrap();
        let err = resolve(&g, None).unwrap_err().to_string();
        assert!(err.contains("`c2`") && err.contains("2^40"), "{err}");
    }

    #[test]
    fn merge_sizes_must_agree() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let a = b.layer("a", Op::conv(3, 2, Padding::VALID), x);
        let c = b.layer("c", Op::conv(3, 2, Padding::SAME), x);
        b.add("sum", Op::Add, &[a, c]);
        let g = b.build().unwrap();
        let err = resolve(&g, Some([10, 10])).unwrap_err().to_string();
        assert!(
            err.contains("`sum`") && err.contains("`a` 4") && err.contains("`c` 5"),
            "{err}"
        );
        assert!(resolve(&g, None).is_ok());
    }
}
