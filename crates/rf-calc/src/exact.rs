//! Exact receptive field of every unit, for graphs whose paddings are all known, including
//! upsampling and transposed convolutions (fractional strides) and misaligned merges.
//!
//! Along one axis, unit `x` of a node sees the input pixels `[lo(x), hi(x)]` (the hull of the
//! pixels it depends on). For every op of the crate these bounds are periodic-affine:
//! `lo(x) = A floor(x / q) + L[x mod q]` (likewise `hi`), so a node is described by its period
//! `q`, its shift per period `A` (effective stride `A / q`) and two tables of `q` offsets.
//! Integer-stride chains have `q = 1`, `L[0] = -P`, `H[0] - L[0] + 1 = r`: the Distill
//! quantities. Nearest upsampling by 2 makes `q = 2`: even and odd units see differently placed
//! windows, which is what makes FPN's top-down merges misaligned.

use serde::Serialize;
use std::fmt;

use crate::error::{Result, RfError};
use crate::graph::Graph;
use crate::layer::{Axis, AxisOp};
use crate::sizes::AxisGeom;

/// Largest period kept before giving up.
pub const MAX_PERIOD: i64 = 4096;

/// A non-negative rational, reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frac {
    /// Numerator.
    pub num: i64,
    /// Denominator (positive).
    pub den: i64,
}

impl Frac {
    /// `num / den`, reduced.
    pub fn new(num: i64, den: i64) -> Frac {
        let g = gcd(num.abs(), den.abs()).max(1);
        Frac {
            num: num / g,
            den: den / g,
        }
    }

    /// The integer `n`.
    pub fn int(n: i64) -> Frac {
        Frac { num: n, den: 1 }
    }

    /// As a float.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl fmt::Display for Frac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl Serialize for Frac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.den == 1 {
            s.serialize_i64(self.num)
        } else {
            s.serialize_f64(self.as_f64())
        }
    }
}

pub(crate) fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: i64, b: i64) -> i64 {
    a / gcd(a, b) * b
}

/// The exact receptive field of every unit of a node along one axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitMap {
    /// Period `q` in units.
    pub period: i64,
    /// Input pixels moved per period, `A`.
    pub shift: i64,
    /// First input pixel of units `0..q`.
    pub lo: Vec<i64>,
    /// Last input pixel of units `0..q`.
    pub hi: Vec<i64>,
}

impl UnitMap {
    /// The input itself: unit `x` is pixel `x`.
    pub fn identity() -> UnitMap {
        UnitMap {
            period: 1,
            shift: 1,
            lo: vec![0],
            hi: vec![0],
        }
    }

    /// First input pixel read by unit `x`.
    pub fn lo_at(&self, x: i64) -> i64 {
        self.shift * x.div_euclid(self.period) + self.lo[x.rem_euclid(self.period) as usize]
    }

    /// Last input pixel read by unit `x`.
    pub fn hi_at(&self, x: i64) -> i64 {
        self.shift * x.div_euclid(self.period) + self.hi[x.rem_euclid(self.period) as usize]
    }

    /// Effective stride `A / q`.
    pub fn stride(&self) -> Frac {
        Frac::new(self.shift, self.period)
    }

    /// Largest receptive-field size over the units of one period.
    pub fn size(&self) -> i64 {
        (0..self.period as usize)
            .map(|t| self.hi[t] - self.lo[t] + 1)
            .max()
            .unwrap_or(1)
    }

    /// Smallest receptive-field size over the units of one period.
    pub fn size_min(&self) -> i64 {
        (0..self.period as usize)
            .map(|t| self.hi[t] - self.lo[t] + 1)
            .min()
            .unwrap_or(1)
    }

    /// Effective padding: unit 0 starts at input pixel `-P`.
    pub fn padding(&self) -> i64 {
        -self.lo[0]
    }

    /// Centre of unit `x` in input pixels.
    pub fn centre(&self, x: i64) -> f64 {
        (self.lo_at(x) + self.hi_at(x)) as f64 / 2.0
    }

    fn build(
        layer: &str,
        period: i64,
        shift: i64,
        mut f: impl FnMut(i64) -> Result<(i64, i64)>,
    ) -> Result<UnitMap> {
        if period > MAX_PERIOD {
            return Err(RfError::PeriodTooLarge {
                layer: layer.to_owned(),
                period,
                limit: MAX_PERIOD,
            });
        }
        let (mut lo, mut hi) = (Vec::with_capacity(period as usize), Vec::new());
        for t in 0..period {
            let (l, h) = f(t)?;
            lo.push(l);
            hi.push(h);
        }
        Ok(UnitMap {
            period,
            shift,
            lo,
            hi,
        })
    }
}

/// Every node's unit maps, `None` where a padding upstream is unknown.
#[derive(Debug, Clone)]
pub struct Exact {
    /// Every node's unit maps `[height, width]`, `None` where a padding upstream is unknown.
    pub maps: Vec<Option<[UnitMap; 2]>>,
    /// Misaligned merges seen when not strict.
    pub warnings: Vec<String>,
}

/// Computes the unit maps of every node.
pub fn unit_maps(graph: &Graph, geoms: &[[AxisGeom; 2]], strict: bool) -> Result<Exact> {
    let mut maps: Vec<Option<[UnitMap; 2]>> = Vec::with_capacity(graph.len());
    let mut warnings = Vec::new();
    for (i, node) in graph.nodes().iter().enumerate() {
        if node.inputs.iter().any(|u| maps[u.0].is_none()) {
            maps.push(None);
            continue;
        }
        let mut both: Vec<UnitMap> = Vec::with_capacity(2);
        for a in Axis::BOTH {
            let ai = a.index();
            let parent = |k: usize| maps[node.inputs[k].0].as_ref().map(|m| &m[ai]);
            let name = node.name.as_str();
            let m = match node.op.axis(a) {
                AxisOp::Input => Some(UnitMap::identity()),
                AxisOp::Window { k, s, .. } => match (geoms[i][ai].pad_begin, parent(0)) {
                    (Some(pb), Some(p)) => {
                        let q = p.period / gcd(p.period, s);
                        let shift = p.shift * s * q / p.period;
                        Some(UnitMap::build(name, q, shift, |t| {
                            Ok((p.lo_at(s * t - pb), p.hi_at(s * t - pb + k - 1)))
                        })?)
                    }
                    _ => None,
                },
                AxisOp::Upsample { f } => match parent(0) {
                    Some(p) => Some(UnitMap::build(name, p.period * f, p.shift, |t| {
                        let y = t.div_euclid(f);
                        Ok((p.lo_at(y), p.hi_at(y)))
                    })?),
                    None => None,
                },
                AxisOp::Transposed { k, s, p: pad, .. } => match parent(0) {
                    Some(p) => Some(UnitMap::build(name, p.period * s, p.shift, |t| {
                        // Output t = i s - pad + j, j < k: inputs i in [ceil((t+pad-k+1)/s),
                        // floor((t+pad)/s)].
                        let first = (t + pad - k + 1).div_euclid(s)
                            + i64::from((t + pad - k + 1).rem_euclid(s) != 0);
                        let last = (t + pad).div_euclid(s);
                        if first > last {
                            return Err(RfError::EmptyReceptiveField {
                                layer: name.to_owned(),
                                axis: a.name(),
                                unit: t,
                            });
                        }
                        Ok((p.lo_at(first), p.hi_at(last)))
                    })?),
                    None => None,
                },
                AxisOp::Merge => {
                    let parents: Vec<(&UnitMap, &str)> = node
                        .inputs
                        .iter()
                        .enumerate()
                        .filter_map(|(k, u)| parent(k).map(|m| (m, graph.node(*u).name.as_str())))
                        .collect();
                    Some(merge(name, a, &parents, strict, &mut warnings)?)
                }
            };
            match m {
                Some(m) => both.push(m),
                None => break,
            }
        }
        maps.push(<[UnitMap; 2]>::try_from(both).ok());
    }
    Ok(Exact { maps, warnings })
}

fn merge(
    layer: &str,
    a: Axis,
    parents: &[(&UnitMap, &str)],
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<UnitMap> {
    let (first, first_via) = parents[0];
    let mut period = first.period;
    for (p, via) in &parents[1..] {
        if p.shift * first.period != first.shift * p.period {
            return Err(RfError::UnalignedMerge {
                layer: layer.to_owned(),
                axis: a.name(),
                detail: format!(
                    "effective stride {} via `{first_via}` but {} via `{via}`",
                    first.stride(),
                    p.stride()
                ),
            });
        }
        period = lcm(period, p.period);
    }
    let shift = first.shift * (period / first.period);
    // Misalignment: the largest distance between two paths' centres of the same unit.
    let mut worst: Option<(i64, &str, &str, f64, f64)> = None;
    let map = UnitMap::build(layer, period, shift, |t| {
        let (mut lo, mut hi) = (first.lo_at(t), first.hi_at(t));
        for (p, via) in &parents[1..] {
            lo = lo.min(p.lo_at(t));
            hi = hi.max(p.hi_at(t));
            let (c0, c1) = (first.centre(t), p.centre(t));
            let d = (c0 - c1).abs();
            if d > 0.0 && worst.is_none_or(|w| d > (w.3 - w.4).abs()) {
                worst = Some((t, first_via, via, c0, c1));
            }
        }
        Ok((lo, hi))
    })?;
    if let Some((t, v0, v1, c0, c1)) = worst {
        let detail = format!(
            "unit {t} is centred at input pixel {c0} via `{v0}` but {c1} via `{v1}` \
             (off by {})",
            (c0 - c1).abs()
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
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::layer::{Op, Padding};
    use crate::sizes::resolve;

    #[test]
    fn upsampling_makes_a_period() {
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let c = b.layer("c", Op::conv(3, 2, Padding::sym(1)), x);
        b.layer("u", Op::Upsample { factor: [2, 2] }, c);
        let g = b.build().unwrap();
        let ex = unit_maps(&g, &resolve(&g, None).unwrap(), true).unwrap();
        let u = &ex.maps[2].as_ref().unwrap()[0];
        assert_eq!((u.period, u.shift), (2, 2));
        assert_eq!(u.stride(), Frac::int(1));
        // Units 0 and 1 are copies of conv unit 0: pixels -1..1.
        assert_eq!(
            (u.lo_at(0), u.hi_at(0), u.lo_at(1), u.hi_at(1)),
            (-1, 1, -1, 1)
        );
        assert_eq!((u.lo_at(2), u.hi_at(3)), (1, 3));
    }

    #[test]
    fn transposed_conv_inverts_a_strided_conv_window() {
        // k 4 s 2 p 1 (the DCGAN upsampler): every output reads 2 inputs.
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        let op = Op::ConvTranspose {
            kernel: [4, 4],
            stride: [2, 2],
            padding: [1, 1],
            output_padding: [0, 0],
            channels: None,
        };
        b.layer("t", op, x);
        let g = b.build().unwrap();
        let ex = unit_maps(&g, &resolve(&g, None).unwrap(), true).unwrap();
        let m = &ex.maps[1].as_ref().unwrap()[1];
        // o = 2i - 1 + j: o 0 <- i 0 (j 1), i -1 (j 3)... bounds [ceil((o-2)/2), floor((o+1)/2)].
        assert_eq!((m.lo_at(0), m.hi_at(0)), (-1, 0));
        assert_eq!((m.lo_at(1), m.hi_at(1)), (0, 1));
        assert_eq!(m.stride(), Frac::new(1, 2));
        let bad = Op::ConvTranspose {
            kernel: [1, 1],
            stride: [2, 2],
            padding: [0, 0],
            output_padding: [0, 0],
            channels: None,
        };
        let mut b = GraphBuilder::new("t");
        let x = b.input();
        b.layer("gap", bad, x);
        let g = b.build().unwrap();
        let err = unit_maps(&g, &resolve(&g, None).unwrap(), true).unwrap_err();
        assert!(err.to_string().contains("`gap`"), "{err}");
    }
}
