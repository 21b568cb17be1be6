//! A tch network built from a [`Graph`] at a given input size: every padding resolved by
//! rf-calc itself (so `SAME` and ceil-mode windows are laid out exactly as analysed), random
//! weights, optional ReLU after each convolution.

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::error::{Result, RfError};
use crate::graph::{Graph, NodeId};
use crate::layer::{Groups, Op, Pair, PoolKind};
use crate::sizes::{resolve, AxisGeom};

/// Non-linearity after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// ReLU after each convolution (Luo et al.'s nonlinear nets).
    Relu,
    /// None: the net is linear in its input, so the gradient does not depend on the input.
    Linear,
}

/// How to turn a graph into a net.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetConfig {
    /// Channels of the input image.
    pub in_channels: i64,
    /// Output channels of convolutions that do not set theirs.
    pub width: i64,
    /// Non-linearity after each convolution.
    pub activation: Activation,
    /// Average instead of max pooling (same geometry; the gradient then reaches every pixel of
    /// the window, which the support check needs).
    pub max_pool_as_avg: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            in_channels: 3,
            width: 32,
            activation: Activation::Relu,
            max_pool_as_avg: false,
        }
    }
}

enum Step {
    Input,
    /// Pads `[left, right, top, bottom]` (negative crops) then applies the op unpadded.
    Conv {
        ws: Tensor,
        bs: Tensor,
        pad: [i64; 4],
        stride: Pair,
        dilation: Pair,
        groups: i64,
    },
    Pool {
        kind: PoolKind,
        pad: [i64; 4],
        kernel: Pair,
        stride: Pair,
        dilation: Pair,
    },
    Upsample {
        out: Pair,
    },
    ConvT {
        ws: Tensor,
        bs: Tensor,
        stride: Pair,
        padding: Pair,
        output_padding: Pair,
    },
    Add,
    Concat,
    Identity,
}

/// The net.
pub struct ErfNet {
    graph: Graph,
    steps: Vec<Step>,
    channels: Vec<i64>,
    geoms: Vec<[AxisGeom; 2]>,
    activation: Activation,
    /// `[in_channels, height, width]` of the inputs it was built for.
    input: [i64; 3],
    device: Device,
}

fn param_name(s: &str) -> String {
    s.replace(['.', '/'], "_")
}

/// Padding before and after that makes an unpadded window of effective size `k` and stride `s`
/// give exactly `out` units from `n` (a negative end crops).
fn layout(g: &AxisGeom, k: i64, s: i64) -> Result<(i64, i64)> {
    match (g.in_size, g.out_size, g.pad_begin) {
        (Some(n), Some(o), Some(b)) => Ok((b, (o - 1) * s + k - n - b)),
        _ => Err(RfError::Invalid {
            what: "erf net".to_owned(),
            message: "sizes must be known".to_owned(),
        }),
    }
}

impl ErfNet {
    /// Builds the net for inputs of size `input`, variables under `vs`.
    pub fn new(vs: &nn::Path, graph: &Graph, input: Pair, cfg: &NetConfig) -> Result<ErfNet> {
        for (what, v) in [("in_channels", cfg.in_channels), ("width", cfg.width)] {
            if v < 1 {
                return Err(RfError::Invalid {
                    what: format!("NetConfig::{what}"),
                    message: format!("expected at least 1 channel, got {v}"),
                });
            }
        }
        let geoms = resolve(graph, Some(input))?;
        let kaiming = Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanIn,
            non_linearity: nn::init::NonLinearity::ReLU,
        };
        let mut steps = Vec::with_capacity(graph.len());
        let mut channels: Vec<i64> = Vec::with_capacity(graph.len());
        for (i, node) in graph.nodes().iter().enumerate() {
            let c_in = node
                .inputs
                .first()
                .map_or(cfg.in_channels, |p| channels[p.0]);
            let g = &geoms[i];
            let bad = |m: &str| RfError::layer(&node.name, format!("erf net: {m}"));
            let (step, c_out) = match &node.op {
                Op::Input => (Step::Input, cfg.in_channels),
                Op::Conv {
                    window,
                    channels: c,
                    groups,
                } => {
                    let (c_out, grp) = match groups {
                        Groups::Depthwise => (c_in, c_in),
                        Groups::Dense => (c.unwrap_or(cfg.width), 1),
                    };
                    let (t, b) = layout(&g[0], window.k_eff(crate::Axis::H), window.stride[0])?;
                    let (l, r) = layout(&g[1], window.k_eff(crate::Axis::W), window.stride[1])?;
                    let p = vs / param_name(&node.name);
                    let shape = [c_out, c_in / grp, window.kernel[0], window.kernel[1]];
                    let step = Step::Conv {
                        ws: p.var("weight", &shape, kaiming),
                        bs: p.var("bias", &[c_out], Init::Const(0.0)),
                        pad: [l, r, t, b],
                        stride: window.stride,
                        dilation: window.dilation,
                        groups: grp,
                    };
                    (step, c_out)
                }
                Op::Pool { kind, window, .. } => {
                    let (t, b) = layout(&g[0], window.k_eff(crate::Axis::H), window.stride[0])?;
                    let (l, r) = layout(&g[1], window.k_eff(crate::Axis::W), window.stride[1])?;
                    let kind = if cfg.max_pool_as_avg {
                        PoolKind::Avg
                    } else {
                        *kind
                    };
                    if kind == PoolKind::Avg && window.dilation != [1, 1] {
                        return Err(bad("dilated average pooling"));
                    }
                    let step = Step::Pool {
                        kind,
                        pad: [l, r, t, b],
                        kernel: window.kernel,
                        stride: window.stride,
                        dilation: window.dilation,
                    };
                    (step, c_in)
                }
                Op::Pad { h, w } => {
                    let step = Step::Pool {
                        kind: PoolKind::Avg,
                        pad: [w[0], w[1], h[0], h[1]],
                        kernel: [1, 1],
                        stride: [1, 1],
                        dilation: [1, 1],
                    };
                    (step, c_in)
                }
                Op::Upsample { .. } => {
                    let out = [g[0].out_size.unwrap_or(1), g[1].out_size.unwrap_or(1)];
                    (Step::Upsample { out }, c_in)
                }
                Op::ConvTranspose {
                    kernel,
                    stride,
                    padding,
                    output_padding,
                    channels: c,
                } => {
                    let c_out = c.unwrap_or(cfg.width);
                    let p = vs / param_name(&node.name);
                    let step = Step::ConvT {
                        ws: p.var("weight", &[c_in, c_out, kernel[0], kernel[1]], kaiming),
                        bs: p.var("bias", &[c_out], Init::Const(0.0)),
                        stride: *stride,
                        padding: *padding,
                        output_padding: *output_padding,
                    };
                    (step, c_out)
                }
                Op::Add => {
                    if node.inputs.iter().any(|p| channels[p.0] != c_in) {
                        return Err(bad("add of inputs with different channels"));
                    }
                    (Step::Add, c_in)
                }
                Op::Concat => (
                    Step::Concat,
                    node.inputs.iter().map(|p| channels[p.0]).sum(),
                ),
                Op::Identity => (Step::Identity, c_in),
            };
            steps.push(step);
            channels.push(c_out);
        }
        Ok(ErfNet {
            graph: graph.clone(),
            steps,
            channels,
            geoms,
            activation: cfg.activation,
            input: [cfg.in_channels, input[0], input[1]],
            device: vs.device(),
        })
    }

    /// `[in_channels, height, width]` of the inputs the net takes.
    pub fn input_shape(&self) -> [i64; 3] {
        self.input
    }

    /// Checks that `node` is a node of the net's graph.
    pub(crate) fn check_node(&self, node: NodeId) -> Result<()> {
        if node.0 < self.graph.len() {
            Ok(())
        } else {
            Err(RfError::Invalid {
                what: "node".to_owned(),
                message: format!(
                    "expected a node of `{}` (0..{}), got #{}",
                    self.graph.name(),
                    self.graph.len(),
                    node.0
                ),
            })
        }
    }

    /// Checks that `xs` is a `[batch >= 1, in_channels, height, width]` float tensor on the
    /// net's device.
    pub(crate) fn check_input(&self, what: &'static str, xs: &Tensor) -> Result<()> {
        let size = xs.size();
        let [c, h, w] = self.input;
        let shape_ok =
            matches!(size.as_slice(), [b, sc, sh, sw] if *b >= 1 && [*sc, *sh, *sw] == [c, h, w]);
        if !shape_ok {
            return Err(RfError::tensor(
                what,
                format!("shape [batch >= 1, {c}, {h}, {w}]"),
                format!("{size:?}"),
            ));
        }
        if xs.kind() != KIND {
            return Err(RfError::tensor(
                what,
                format!("{KIND:?}"),
                format!("{:?}", xs.kind()),
            ));
        }
        if xs.device() != self.device {
            return Err(RfError::tensor(
                what,
                format!("a tensor on {:?} (the net's device)", self.device),
                format!("{:?}", xs.device()),
            ));
        }
        Ok(())
    }

    /// The graph the net was built from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Output channels of a node.
    pub fn channels(&self, node: NodeId) -> i64 {
        self.channels[node.0]
    }

    /// Output `[height, width]` of a node.
    pub fn out_size(&self, node: NodeId) -> Pair {
        let g = &self.geoms[node.0];
        [g[0].out_size.unwrap_or(0), g[1].out_size.unwrap_or(0)]
    }

    /// Runs the net on `xs` (`[batch, in_channels, h, w]`, float, on the net's device) up to
    /// `node`.
    pub fn forward_to(&self, xs: &Tensor, node: NodeId) -> Result<Tensor> {
        self.check_node(node)?;
        self.check_input("xs", xs)?;
        let needed = self.graph.ancestors(node);
        let mut outs: Vec<Option<Tensor>> = (0..=node.0).map(|_| None).collect();
        for i in 0..=node.0 {
            if !needed[i] {
                continue;
            }
            let inputs: Vec<&Tensor> = self.graph.nodes()[i]
                .inputs
                .iter()
                .filter_map(|p| outs[p.0].as_ref())
                .collect();
            let relu = |t: Tensor| match self.activation {
                Activation::Relu => t.relu(),
                Activation::Linear => t,
            };
            let y = match &self.steps[i] {
                Step::Input => xs.shallow_clone(),
                Step::Conv {
                    ws,
                    bs,
                    pad,
                    stride,
                    dilation,
                    groups,
                } => relu(inputs[0].f_constant_pad_nd(pad)?.f_conv2d(
                    ws,
                    Some(bs),
                    stride,
                    [0, 0],
                    dilation,
                    *groups,
                )?),
                Step::Pool {
                    kind,
                    pad,
                    kernel,
                    stride,
                    dilation,
                } => match kind {
                    PoolKind::Max => inputs[0]
                        .f_pad(pad, "constant", f64::NEG_INFINITY)?
                        .f_max_pool2d(kernel, stride, [0, 0], dilation, false)?,
                    PoolKind::Avg => inputs[0].f_constant_pad_nd(pad)?.f_avg_pool2d(
                        kernel,
                        stride,
                        [0, 0],
                        false,
                        true,
                        None,
                    )?,
                },
                Step::Upsample { out } => inputs[0].f_upsample_nearest2d(out, None, None)?,
                Step::ConvT {
                    ws,
                    bs,
                    stride,
                    padding,
                    output_padding,
                } => relu(inputs[0].f_conv_transpose2d(
                    ws,
                    Some(bs),
                    stride,
                    padding,
                    output_padding,
                    1,
                    [1, 1],
                )?),
                Step::Add => {
                    let mut acc = inputs[0].shallow_clone();
                    for t in &inputs[1..] {
                        acc = acc.f_add(t)?;
                    }
                    acc
                }
                Step::Concat => Tensor::f_cat(&inputs, 1)?,
                Step::Identity => inputs[0].shallow_clone(),
            };
            outs[i] = Some(y);
        }
        outs[node.0].take().ok_or_else(|| RfError::Invalid {
            what: "erf net".to_owned(),
            message: "no output".to_owned(),
        })
    }
}

/// Kind used by the nets.
pub const KIND: Kind = Kind::Float;
