//! Feature Pyramid Network (Lin et al. 2017, arXiv 1612.03144, Sec. 3): 1x1 laterals, nearest
//! top-down upsampling to the lateral's size, sum, 3x3 outputs; extra top levels P6 by
//! max-pool (kernel 1, stride 2) on P5 (Mask R-CNN's FPN) or RetinaNet's P6/P7 (3x3 stride-2
//! convs, ReLU before P7; Lin et al. 2017b, arXiv 1708.02002, Sec. 4). Names and init follow
//! torchvision `ops/feature_pyramid_network.py` (`inner_blocks.{i}.0`, `layer_blocks.{i}.0`,
//! `extra_blocks.p6` / `p7`, kaiming-uniform a = 1, zero bias), so its state dict loads.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::{PyramidError, Result};
use crate::resnet::Features;
use crate::weights::{load_named, path_prefix, read_tensors, LoadOptions, LoadReport};

/// Levels added above the last input level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopLevels {
    /// None: the pyramid has as many levels as inputs.
    None,
    /// P(top+1) = max_pool2d(P_top, kernel 1, stride 2) (torchvision `LastLevelMaxPool`).
    MaxPool,
    /// RetinaNet's P6 = conv3x3/2(C5 or P5), P7 = conv3x3/2(ReLU(P6)) (torchvision
    /// `LastLevelP6P7`). `from_p5`: take P5 rather than C5 (torchvision's choice when the
    /// input and output widths agree; detectron2's RetinaNet takes C5).
    P6P7 {
        /// Input of P6: P5 when true, C5 when false.
        from_p5: bool,
    },
}

/// An FPN's configuration. `Default`: C2-C5 of a ResNet-50, 256 channels, P6 by max-pool
/// (Lin et al. 2017, the Faster R-CNN FPN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpnConfig {
    /// Channels of each input level, finest first.
    pub in_channels: Vec<i64>,
    /// Channels of every output level (256 in the paper).
    pub out_channels: i64,
    /// The pyramid level of the first input (2 for C2, 3 for C3): stride 2^level.
    pub first_level: usize,
    /// Extra top levels.
    pub top: TopLevels,
}

impl Default for FpnConfig {
    fn default() -> Self {
        Self {
            in_channels: vec![256, 512, 1024, 2048],
            out_channels: 256,
            first_level: 2,
            top: TopLevels::MaxPool,
        }
    }
}

impl FpnConfig {
    /// P2-P6 (max-pool P6) over a trunk with C2 .. C5 channels `c`.
    pub fn p2_p6(c: [i64; 4], out_channels: i64) -> Self {
        Self {
            in_channels: c.to_vec(),
            out_channels,
            first_level: 2,
            top: TopLevels::MaxPool,
        }
    }

    /// A single level on C5 (stride 32): the same 1x1 lateral and 3x3 output, no pyramid. The
    /// "single-scale C5 features" baseline.
    pub fn c5_only(c: [i64; 4], out_channels: i64) -> Self {
        Self {
            in_channels: vec![c[3]],
            out_channels,
            first_level: 5,
            top: TopLevels::None,
        }
    }

    /// RetinaNet's P3-P7 over C3 .. C5 (P6 from C5, as the paper and detectron2).
    pub fn retinanet(c: [i64; 4], out_channels: i64) -> Self {
        Self {
            in_channels: c[1..].to_vec(),
            out_channels,
            first_level: 3,
            top: TopLevels::P6P7 { from_p5: false },
        }
    }

    /// The levels the pyramid returns (`[2, 3, 4, 5, 6]` for P2-P6).
    pub fn levels(&self) -> Vec<usize> {
        let extra = match self.top {
            TopLevels::None => 0,
            TopLevels::MaxPool => 1,
            TopLevels::P6P7 { .. } => 2,
        };
        (self.first_level..self.first_level + self.in_channels.len() + extra).collect()
    }
}

/// Feature maps, finest first: FPN levels, or TridentNet's branches (all of one stride).
#[derive(Debug)]
pub struct Pyramid {
    /// One `[B, C, H_l, W_l]` map per level.
    pub maps: Vec<Tensor>,
    /// The stride of each map in input pixels (2^level for an FPN).
    pub strides: Vec<i64>,
    /// Per map, its index in the detector's per-level settings (anchor sizes, valid ranges):
    /// `0..n` for a full pyramid, `[1]` for TridentNet's middle branch alone.
    pub ids: Vec<usize>,
}

fn conv(p: &nn::Path, cin: i64, cout: i64, k: i64, stride: i64) -> nn::Conv2D {
    // kaiming_uniform_(a=1): bound = sqrt(6 / ((1 + a^2) fan_in)) = sqrt(3 / fan_in).
    let bound = (3.0 / (cin * k * k) as f64).sqrt();
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        ws_init: nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, cfg)
}

/// The FPN.
#[derive(Debug)]
pub struct Fpn {
    cfg: FpnConfig,
    prefix: String,
    inner: Vec<nn::Conv2D>,
    layer: Vec<nn::Conv2D>,
    p6p7: Option<(nn::Conv2D, nn::Conv2D)>,
}

impl Fpn {
    /// Builds the FPN under `p` with torchvision's names.
    pub fn new(p: &nn::Path, cfg: &FpnConfig) -> Result<Self> {
        if cfg.in_channels.is_empty() || cfg.in_channels.iter().any(|&c| c < 1) {
            return Err(PyramidError::config(
                "FpnConfig.in_channels",
                "a non-empty list of positive channel counts",
                format!("{:?}", cfg.in_channels),
            ));
        }
        if cfg.out_channels < 1 || cfg.first_level < 1 {
            return Err(PyramidError::config(
                "FpnConfig",
                "out_channels >= 1 and first_level >= 1",
                format!("{} and {}", cfg.out_channels, cfg.first_level),
            ));
        }
        let d = cfg.out_channels;
        let inner = cfg
            .in_channels
            .iter()
            .enumerate()
            .map(|(i, &c)| conv(&(p / "inner_blocks" / i / 0), c, d, 1, 1))
            .collect();
        let layer = (0..cfg.in_channels.len())
            .map(|i| conv(&(p / "layer_blocks" / i / 0), d, d, 3, 1))
            .collect();
        let p6p7 = match cfg.top {
            TopLevels::P6P7 { from_p5 } => {
                let cin = if from_p5 {
                    d
                } else {
                    cfg.in_channels[cfg.in_channels.len() - 1]
                };
                let e = p / "extra_blocks";
                Some((
                    conv(&(&e / "p6"), cin, d, 3, 2),
                    conv(&(&e / "p7"), d, d, 3, 2),
                ))
            }
            _ => None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            prefix: path_prefix(p),
            inner,
            layer,
            p6p7,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FpnConfig {
        &self.cfg
    }

    /// Loads a torchvision `FeaturePyramidNetwork` state dict (safetensors); in a detector's
    /// state dict set `opts.file_prefix` to `backbone.fpn.`.
    pub fn load_safetensors(
        &self,
        vs: &nn::VarStore,
        path: impl AsRef<std::path::Path>,
        opts: &LoadOptions,
    ) -> Result<LoadReport> {
        let path = path.as_ref();
        load_named(vs, &self.prefix, path, &read_tensors(path)?, opts)
    }

    /// The pyramid of `inputs` (finest first, channels as configured).
    pub fn forward(&self, inputs: &[&Tensor]) -> Result<Pyramid> {
        let n = self.cfg.in_channels.len();
        if inputs.len() != n {
            return Err(PyramidError::config(
                "FPN inputs",
                format!("{n} feature maps"),
                inputs.len(),
            ));
        }
        for (x, &c) in inputs.iter().zip(&self.cfg.in_channels) {
            let s = x.size();
            if s.len() != 4 || s[1] != c {
                return Err(PyramidError::input(
                    "FPN input",
                    format!("a [B, {c}, H, W] map"),
                    s,
                ));
            }
        }
        let mut last = self.inner[n - 1].forward(inputs[n - 1]);
        let mut maps = vec![self.layer[n - 1].forward(&last)];
        for i in (0..n - 1).rev() {
            let lateral = self.inner[i].forward(inputs[i]);
            let s = lateral.size();
            let top_down = last.upsample_nearest2d([s[2], s[3]], None, None);
            last = lateral + top_down;
            maps.insert(0, self.layer[i].forward(&last));
        }
        match (&self.cfg.top, &self.p6p7) {
            (TopLevels::MaxPool, _) => {
                let p6 = maps[n - 1].max_pool2d([1, 1], [2, 2], [0, 0], [1, 1], false);
                maps.push(p6);
            }
            (TopLevels::P6P7 { from_p5 }, Some((c6, c7))) => {
                let src = if *from_p5 {
                    &maps[n - 1]
                } else {
                    inputs[n - 1]
                };
                let p6 = c6.forward(src);
                let p7 = c7.forward(&p6.relu());
                maps.push(p6);
                maps.push(p7);
            }
            _ => {}
        }
        let first = self.cfg.first_level;
        Ok(Pyramid {
            strides: (0..maps.len()).map(|i| 1i64 << (first + i)).collect(),
            ids: (0..maps.len()).collect(),
            maps,
        })
    }

    /// The pyramid of a trunk's features, from C`first_level` up.
    pub fn forward_features(&self, f: &Features) -> Result<Pyramid> {
        let all = f.all();
        let start = self
            .cfg
            .first_level
            .checked_sub(2)
            .filter(|s| s + self.cfg.in_channels.len() <= 4);
        let Some(start) = start else {
            return Err(PyramidError::config(
                "FpnConfig.first_level",
                "levels inside C2 .. C5",
                format!(
                    "first level {} with {} inputs",
                    self.cfg.first_level,
                    self.cfg.in_channels.len()
                ),
            ));
        };
        self.forward(&all[start..start + self.cfg.in_channels.len()])
    }
}
