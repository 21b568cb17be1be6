//! Property tests on random networks: the two Distill methods agree with each other and with
//! the exact per-unit maps (checked inside `analyze`, which fails loudly otherwise), and all of
//! them agree with a brute-force dependency pass that knows nothing of the formulas.
// Helpers of a test binary: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rf_calc::distill::{closed_form, top_down};
use rf_calc::sizes::resolve;
use rf_calc::{
    analyze, Graph, GraphBuilder, NodeId, Op, Options, Padding, PoolKind, RfError, Window,
};

/// A random layer: kind 0 conv, 1 max pool, 2 pad, 3 upsample, 4 transposed conv.
#[derive(Debug, Clone)]
struct L {
    kind: u8,
    k: i64,
    s: i64,
    d: i64,
    pad: u8,
    pb: i64,
    pe: i64,
}

fn layer() -> impl Strategy<Value = L> {
    (0u8..5, 1i64..6, 1i64..4, 1i64..3, 0u8..3, 0i64..3, 0i64..3).prop_map(
        |(kind, k, s, d, pad, pb, pe)| L {
            kind,
            k,
            s,
            d,
            pad,
            pb,
            pe,
        },
    )
}

fn op(l: &L, integer_only: bool) -> Op {
    let padding = match l.pad {
        0 => Padding::VALID,
        1 => Padding::SAME,
        _ => Padding {
            h: rf_calc::AxisPadding::Explicit {
                begin: l.pb,
                end: l.pe,
            },
            w: rf_calc::AxisPadding::Explicit {
                begin: l.pb,
                end: l.pe,
            },
        },
    };
    let window = Window {
        kernel: [l.k, l.k],
        stride: [l.s, l.s],
        dilation: [l.d, l.d],
        padding,
    };
    match (l.kind, integer_only) {
        (1, _) => Op::Pool {
            kind: PoolKind::Max,
            window,
            ceil_mode: l.pe == 2,
        },
        (2, _) => Op::Pad {
            h: [l.pb, l.pe],
            w: [l.pb, l.pe],
        },
        (3, false) => Op::Upsample { factor: [l.s, l.s] },
        (4, false) => Op::ConvTranspose {
            kernel: [l.k.max(l.s), l.k.max(l.s)],
            stride: [l.s, l.s],
            padding: [l.pb, l.pb],
            output_padding: [0, 0],
            channels: None,
        },
        _ => Op::Conv {
            window,
            channels: None,
            groups: rf_calc::Groups::Dense,
        },
    }
}

fn chain(layers: &[L], integer_only: bool) -> Graph {
    let mut b = GraphBuilder::new("random");
    let mut x = b.input();
    for (i, l) in layers.iter().enumerate() {
        x = b.layer(&format!("l{i}"), op(l, integer_only), x);
    }
    b.build().unwrap()
}

/// Hull `[lo, hi]` of the input pixels a unit depends on (`None`: none), and whether some tap
/// on the way fell into padding.
type Hull = (Option<(i64, i64)>, bool);

fn join(h: Hull, other: Hull) -> Hull {
    let range = match (h.0, other.0) {
        (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
        (x, None) | (None, x) => x,
    };
    (range, h.1 || other.1)
}

/// The hull of every unit of every node, along height, by following every tap through the
/// valid units only (padding reads nothing).
fn brute_force(g: &Graph, n_in: i64) -> Vec<Vec<Hull>> {
    let geoms = resolve(g, Some([n_in, n_in])).unwrap();
    let mut hulls: Vec<Vec<Hull>> = vec![(0..n_in).map(|i| (Some((i, i)), false)).collect()];
    for (id, node) in g.nodes().iter().enumerate().skip(1) {
        let parents: Vec<&Vec<Hull>> = node.inputs.iter().map(|p| &hulls[p.0]).collect();
        let prev = parents[0];
        let n_prev = prev.len() as i64;
        let out = geoms[id][0].out_size.unwrap();
        let pb = geoms[id][0].pad_begin.unwrap();
        let read = |taps: &mut dyn Iterator<Item = i64>| {
            let mut h: Hull = (None, false);
            for y in taps {
                if (0..n_prev).contains(&y) {
                    h = join(h, prev[y as usize]);
                } else {
                    h.1 = true;
                }
            }
            h
        };
        let units: Vec<Hull> = (0..out)
            .map(|o| match &node.op {
                Op::Conv { window: w, .. } | Op::Pool { window: w, .. } => {
                    let (s, d, k) = (w.stride[0], w.dilation[0], w.kernel[0]);
                    read(&mut (0..k).map(|t| s * o - pb + t * d))
                }
                Op::Pad { h, .. } => read(&mut std::iter::once(o - h[0])),
                Op::Upsample { factor } => read(&mut std::iter::once(o.div_euclid(factor[0]))),
                Op::ConvTranspose {
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let (k, s, p) = (kernel[0], stride[0], padding[0]);
                    read(
                        &mut (0..k)
                            .filter(|t| (o + p - t).rem_euclid(s) == 0)
                            .map(|t| (o + p - t).div_euclid(s)),
                    )
                }
                Op::Add | Op::Concat => parents
                    .iter()
                    .fold((None, false), |h, p| join(h, p[o as usize])),
                Op::Identity | Op::Input => prev[o as usize],
            })
            .collect();
        hulls.push(units);
    }
    hulls
}

/// The brute force never leaves the computed field, and equals it for every unit that reads no
/// padding on the way.
fn check_against_brute_force(g: &Graph, n_in: i64) -> Result<(), TestCaseError> {
    let a = match analyze(g, Options::input([n_in, n_in])) {
        Ok(a) => a,
        Err(
            RfError::TooSmall { .. }
            | RfError::EmptyReceptiveField { .. }
            | RfError::UnalignedMerge { .. },
        ) => return Ok(()),
        Err(RfError::PeriodTooLarge { .. }) => return Ok(()),
        Err(e) => return Err(TestCaseError::fail(e.to_string())),
    };
    let brute = brute_force(g, n_in);
    for (id, node) in a.nodes.iter().enumerate() {
        let m = &node.unit_maps().expect("known padding")[0];
        for (o, h) in brute[id].iter().enumerate() {
            let (lo, hi) = (m.lo_at(o as i64), m.hi_at(o as i64));
            if let Some((a, b)) = h.0 {
                prop_assert!(
                    lo <= a && b <= hi,
                    "{} unit {o}: brute [{a},{b}] outside [{lo},{hi}]",
                    node.name
                );
            }
            if !h.1 {
                prop_assert_eq!(h.0, Some((lo, hi)), "{} unit {}", node.name, o);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Integer-stride chains: closed form == top-down for every node, with or without an input
    /// size, and both == brute force.
    #[test]
    fn distill_methods_agree_on_random_chains(layers in prop::collection::vec(layer(), 1..8), n in 8i64..160) {
        let g = chain(&layers, true);
        let geoms = resolve(&g, None).unwrap();
        let cf = closed_form(&g, &geoms, true).unwrap();
        for i in 0..g.len() {
            let td = top_down(&g, &geoms, NodeId(i), true).unwrap();
            prop_assert_eq!(td, cf.rf[i]);
            // Closed form (Distill Eq. 2): r = 1 + sum (k_l - 1) prod_{j<l} s_j.
            let (mut r, mut s) = (1i64, 1i64);
            for node in &g.nodes()[1..=i] {
                let (k, st) = match &node.op {
                    Op::Conv { window, .. } | Op::Pool { window, .. } => (window.k_eff(rf_calc::Axis::H), window.stride[0]),
                    _ => (1, 1),
                };
                r += (k - 1) * s;
                s *= st;
            }
            prop_assert_eq!((cf.rf[i][0].size, cf.rf[i][0].stride), (r, s));
        }
        prop_assert!(analyze(&g, Options::default()).is_ok());
        check_against_brute_force(&g, n)?;
    }

    /// Chains with upsampling and transposed convolutions (fractional strides): the exact maps
    /// against brute force.
    #[test]
    fn exact_maps_match_brute_force_with_upsampling(layers in prop::collection::vec(layer(), 1..6), n in 8i64..96) {
        check_against_brute_force(&chain(&layers, false), n)?;
    }

    /// Two branches merged by an add: when `analyze` accepts the merge, brute force agrees.
    #[test]
    fn merges_match_brute_force(a in prop::collection::vec(layer(), 1..4), b in prop::collection::vec(layer(), 1..4), n in 8i64..96) {
        let mut gb = GraphBuilder::new("dag");
        let x = gb.input();
        let (mut p, mut q) = (x, x);
        for (i, l) in a.iter().enumerate() {
            p = gb.layer(&format!("a{i}"), op(l, false), p);
        }
        for (i, l) in b.iter().enumerate() {
            q = gb.layer(&format!("b{i}"), op(l, false), q);
        }
        gb.add("sum", Op::Add, &[p, q]);
        gb.allow_unaligned(true);
        let g = gb.build().unwrap();
        match analyze(&g, Options::input([n, n])) {
            Err(RfError::SizeMismatch { .. }) => {}
            _ => check_against_brute_force(&g, n)?,
        }
    }
}
