//! Empirical (effective) receptive field, Luo et al. 2016 (arXiv:1701.04128), through tch.
//!
//! Back-propagate a gradient of 1 from one output unit (all its channels) to the input, take
//! the absolute value summed over input channels, average over inputs and over random
//! initialisations: the effective receptive field. Its statistics ([`crate::erf_stats`]) are
//! compared with the theoretical field computed by [`crate::analyze`]. For a linear net with
//! average pooling the gradient is non-zero exactly on the theoretical field, which makes the
//! map an independent check of the theory.

mod net;

pub use net::{Activation, ErfNet, NetConfig, KIND};

use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use crate::analysis::{analyze, Options};
use crate::erf_stats::{ErfMap, ErfStats};
use crate::error::{Result, RfError};
use crate::graph::{Graph, NodeId};
use crate::layer::Pair;

/// How to average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErfConfig {
    /// Random initialisations.
    pub inits: usize,
    /// Random (standard normal) inputs per initialisation.
    pub batch: i64,
    /// Seed of init `t` is `seed + t`.
    pub seed: u64,
    /// Where the nets run.
    pub device: Device,
    /// How the nets are built.
    pub net: NetConfig,
}

impl Default for ErfConfig {
    fn default() -> Self {
        ErfConfig {
            inits: 8,
            batch: 8,
            seed: 0,
            device: Device::Cpu,
            net: NetConfig::default(),
        }
    }
}

/// An effective receptive field beside the theoretical one.
#[derive(Debug, Clone, Serialize)]
pub struct Erf {
    /// The node whose unit is measured.
    pub node: String,
    /// The output unit `[row, col]`.
    pub unit: Pair,
    #[serde(skip)]
    /// The averaged `|gradient|` over the input.
    pub map: ErfMap,
    /// The map's statistics (effective size, Gaussian fit).
    pub stats: ErfStats,
    /// Theoretical receptive field of the unit, `[[top, bottom], [left, right]]`, unclipped.
    pub theoretical: [[i64; 2]; 2],
    /// Theoretical size `[height, width]`.
    pub theoretical_size: Pair,
    /// Share of the gradient inside the theoretical box (1 up to rounding).
    pub mass_in_theoretical: f64,
    /// Effective size over theoretical size, `[height, width]`.
    pub fraction: [f64; 2],
}

/// The unit whose theoretical centre is nearest the centre of the input.
pub fn centre_unit(graph: &Graph, node: &str, input: Pair) -> Result<Pair> {
    let a = analyze(graph, Options::input(input))?;
    let n = a.node(node)?;
    let maps = n.unit_maps().ok_or_else(|| RfError::Invalid {
        what: node.to_owned(),
        message: "unknown padding".to_owned(),
    })?;
    let mut unit = [0, 0];
    for ax in 0..2 {
        let out = n.geom[ax].out_size.unwrap_or(1);
        let target = (input[ax] - 1) as f64 / 2.0;
        unit[ax] = (0..out)
            .min_by(|a, b| {
                let da = (maps[ax].centre(*a) - target).abs();
                let db = (maps[ax].centre(*b) - target).abs();
                da.total_cmp(&db)
            })
            .unwrap_or(0);
    }
    Ok(unit)
}

/// Sum over the batch of `|d y[:, :, unit] / d x|`, summed over input channels: `[h, w]`.
/// `xs` must be what [`ErfNet::forward_to`] takes and `unit` a unit of `node`'s output.
pub fn gradient_sum(net: &ErfNet, node: NodeId, xs: &Tensor, unit: Pair) -> Result<Tensor> {
    net.check_node(node)?;
    let out = net.out_size(node);
    if (0..2).any(|a| unit[a] < 0 || unit[a] >= out[a]) {
        return Err(RfError::Invalid {
            what: "unit".to_owned(),
            message: format!(
                "expected a unit of `{}`'s {}x{} output, got {unit:?}",
                net.graph().node(node).name,
                out[0],
                out[1]
            ),
        });
    }
    let x = xs.detach().f_set_requires_grad(true)?;
    let y = net.forward_to(&x, node)?;
    let target = y
        .f_select(2, unit[0])?
        .f_select(2, unit[1])?
        .f_sum(Kind::Float)?;
    let grads = Tensor::f_run_backward(&[target], &[&x], false, false)?;
    let g = grads.into_iter().next().ok_or_else(|| RfError::Invalid {
        what: "erf".to_owned(),
        message: "no gradient".to_owned(),
    })?;
    Ok(g.f_abs()?
        .f_sum_dim_intlist([0i64, 1].as_slice(), false, Kind::Double)?)
}

fn to_map(t: &Tensor) -> Result<ErfMap> {
    let size = t.size();
    let (h, w) = (size[0] as usize, size[1] as usize);
    let data: Vec<f64> = Vec::<f64>::try_from(t.f_to_kind(Kind::Double)?.f_flatten(0, -1)?)?;
    ErfMap::new(h, w, data).ok_or_else(|| RfError::Invalid {
        what: "erf".to_owned(),
        message: "non-finite gradient".to_owned(),
    })
}

/// Puts a map beside the theoretical field of `node`'s `unit`.
pub fn compare(graph: &Graph, node: &str, input: Pair, unit: Pair, map: ErfMap) -> Result<Erf> {
    let a = analyze(graph, Options::input(input))?;
    let n = a.node(node)?;
    let theoretical = n.rf_box(unit).ok_or_else(|| RfError::Invalid {
        what: node.to_owned(),
        message: "unknown padding".to_owned(),
    })?;
    let size = [
        theoretical[0][1] - theoretical[0][0] + 1,
        theoretical[1][1] - theoretical[1][0] + 1,
    ];
    let stats = map.stats(0.0);
    Ok(Erf {
        node: node.to_owned(),
        unit,
        mass_in_theoretical: map.mass_in(theoretical),
        fraction: [stats.h.size / size[0] as f64, stats.w.size / size[1] as f64],
        theoretical,
        theoretical_size: size,
        stats,
        map,
    })
}

/// The effective receptive field of `node`'s centre unit over random inputs and random
/// initialisations of the net built from `graph`.
pub fn random_erf(graph: &Graph, node: &str, input: Pair, cfg: &ErfConfig) -> Result<Erf> {
    if cfg.batch < 1 {
        return Err(RfError::Invalid {
            what: "ErfConfig::batch".to_owned(),
            message: format!("expected at least 1 input per init, got {}", cfg.batch),
        });
    }
    let id = graph.id(node)?;
    let unit = centre_unit(graph, node, input)?;
    let mut acc: Option<Tensor> = None;
    for t in 0..cfg.inits.max(1) {
        tch::manual_seed((cfg.seed + t as u64) as i64);
        let vs = nn::VarStore::new(cfg.device);
        let net = ErfNet::new(&vs.root(), graph, input, &cfg.net)?;
        let xs = Tensor::f_randn(
            [cfg.batch, cfg.net.in_channels, input[0], input[1]],
            (KIND, cfg.device),
        )?;
        let g = gradient_sum(&net, id, &xs, unit)?;
        acc = Some(match acc {
            Some(a) => a.f_add(&g)?,
            None => g,
        });
    }
    let n = (cfg.inits.max(1) as f64) * cfg.batch as f64;
    let mean = acc
        .ok_or_else(|| RfError::Invalid {
            what: "erf".to_owned(),
            message: "nothing averaged".to_owned(),
        })?
        .f_div_scalar(n)?;
    compare(graph, node, input, unit, to_map(&mean)?)
}

/// The effective receptive field of a given (e.g. trained) net on given inputs
/// (`[batch, channels, h, w]`, float, on the net's device, of the size it was built for), for
/// `node`'s centre unit.
pub fn erf_of(net: &ErfNet, node: &str, inputs: &Tensor) -> Result<Erf> {
    let graph = net.graph();
    let id = graph.id(node)?;
    net.check_input("inputs", inputs)?;
    let size = inputs.size();
    let input = [size[2], size[3]];
    let unit = centre_unit(graph, node, input)?;
    let g = gradient_sum(net, id, inputs, unit)?.f_div_scalar(size[0] as f64)?;
    compare(graph, node, input, unit, to_map(&g)?)
}
