//! Layer graphs of classic networks, each citing the code it transcribes. Only the geometry is
//! kept (kernels, strides, dilations, paddings, merges); channels where a net needs them to
//! decide its shortcuts.
//!
//! - TF-Slim (tensorflow/models `research/slim/nets`), the nets of the published table of
//!   google-research/receptive_field: `alexnet_v2`, `vgg_a`, `vgg_16`, `inception_v2` (and
//!   `inception_v2-no-separable-conv`), `inception_v3`, `inception_v4`, `inception_resnet_v2`
//!   (and `inception_resnet_v2-same`, `align_feature_maps=True`), `mobilenet_v1` (and
//!   `mobilenet_v1_075`: width does not change the geometry), `resnet_v1_50/101/152/200` and
//!   `resnet_v2_50/101/152/200` (stride in the *last* unit of a block, `SAME` max pool).
//! - torchvision 0.26 `models/resnet.py`, `models/mobilenetv2.py`: `resnet18/34/50/101/152`
//!   (stride in the *first* block of a stage, explicit padding), `mobilenet_v2`.
//! - `yolo_v1`: the 24 convolutional layers of Redmon et al. 2016 (Fig. 3), Darknet padding.
//! - `fpn_resnet50`: FPN (Lin et al. 2017) over torchvision's ResNet-50 as in torchvision's
//!   `resnet_fpn_backbone`: 1x1 laterals, nearest x2 top-down, 3x3 outputs P2-P5, P6 by a
//!   1x1 stride-2 max pool.

mod slim;
mod torchvision;

use crate::error::{Result, RfError};
use crate::graph::{Graph, GraphBuilder, NodeId};
use crate::layer::{Op, Padding};

/// A named preset.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Name as `presets::by_name` takes it (the published table's, or torchvision's).
    pub name: &'static str,
    /// Where the architecture comes from.
    pub source: &'static str,
    build: fn() -> Result<Graph>,
}

impl Preset {
    /// Builds the preset's graph.
    pub fn build(&self) -> Result<Graph> {
        (self.build)()
    }
}

const SLIM: &str = "TF-Slim, tensorflow/models research/slim/nets";
const TV: &str = "torchvision 0.26 models";

/// Every preset, in the order of the published table, then the others.
pub fn all() -> Vec<Preset> {
    let p = |name, source, build| Preset {
        name,
        source,
        build,
    };
    vec![
        p("alexnet_v2", SLIM, slim::alexnet_v2),
        p("vgg_a", SLIM, || slim::vgg("vgg_a", &[1, 1, 2, 2, 2])),
        p("vgg_16", SLIM, || slim::vgg("vgg_16", &[2, 2, 3, 3, 3])),
        p("inception_v2", SLIM, || {
            slim::inception_v2("inception_v2", true)
        }),
        p("inception_v2-no-separable-conv", SLIM, || {
            slim::inception_v2("inception_v2-no-separable-conv", false)
        }),
        p("inception_v3", SLIM, slim::inception_v3),
        p("inception_v4", SLIM, slim::inception_v4),
        p("inception_resnet_v2", SLIM, || {
            slim::inception_resnet_v2("inception_resnet_v2", false)
        }),
        p("inception_resnet_v2-same", SLIM, || {
            slim::inception_resnet_v2("inception_resnet_v2-same", true)
        }),
        p("mobilenet_v1", SLIM, || slim::mobilenet_v1("mobilenet_v1")),
        p("mobilenet_v1_075", SLIM, || {
            slim::mobilenet_v1("mobilenet_v1_075")
        }),
        p("resnet_v1_50", SLIM, || {
            slim::resnet("resnet_v1_50", [3, 4, 6, 3])
        }),
        p("resnet_v1_101", SLIM, || {
            slim::resnet("resnet_v1_101", [3, 4, 23, 3])
        }),
        p("resnet_v1_152", SLIM, || {
            slim::resnet("resnet_v1_152", [3, 8, 36, 3])
        }),
        p("resnet_v1_200", SLIM, || {
            slim::resnet("resnet_v1_200", [3, 24, 36, 3])
        }),
        p("resnet_v2_50", SLIM, || {
            slim::resnet("resnet_v2_50", [3, 4, 6, 3])
        }),
        p("resnet_v2_101", SLIM, || {
            slim::resnet("resnet_v2_101", [3, 4, 23, 3])
        }),
        p("resnet_v2_152", SLIM, || {
            slim::resnet("resnet_v2_152", [3, 8, 36, 3])
        }),
        p("resnet_v2_200", SLIM, || {
            slim::resnet("resnet_v2_200", [3, 24, 36, 3])
        }),
        p("resnet18", TV, || {
            torchvision::resnet("resnet18", [2, 2, 2, 2], false)
        }),
        p("resnet34", TV, || {
            torchvision::resnet("resnet34", [3, 4, 6, 3], false)
        }),
        p("resnet50", TV, || {
            torchvision::resnet("resnet50", [3, 4, 6, 3], true)
        }),
        p("resnet101", TV, || {
            torchvision::resnet("resnet101", [3, 4, 23, 3], true)
        }),
        p("resnet152", TV, || {
            torchvision::resnet("resnet152", [3, 8, 36, 3], true)
        }),
        p("mobilenet_v2", TV, torchvision::mobilenet_v2),
        p(
            "yolo_v1",
            "Redmon et al. 2016, You Only Look Once, Fig. 3 (Darknet padding k/2)",
            torchvision::yolo_v1,
        ),
        p(
            "fpn_resnet50",
            "Lin et al. 2017 FPN; torchvision resnet_fpn_backbone('resnet50')",
            torchvision::fpn_resnet50,
        ),
    ]
}

/// Names of every preset.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name).collect()
}

/// Builds a preset by name.
pub fn by_name(name: &str) -> Result<Graph> {
    match all().into_iter().find(|p| p.name == name) {
        Some(p) => p.build(),
        None => Err(RfError::UnknownPreset {
            name: name.to_owned(),
            known: names().join(", "),
        }),
    }
}

/// A stack of `depth` `k x k` stride-1 convolutions with symmetric padding (the setting of
/// Luo et al.'s depth experiments), layers `conv1..conv{depth}`.
pub fn conv_stack(depth: usize, k: i64) -> Result<Graph> {
    let mut b = GraphBuilder::new(&format!("conv{k}x{k}_x{depth}"));
    let mut x = b.input();
    for i in 1..=depth {
        x = b.layer(&format!("conv{i}"), Op::conv(k, 1, Padding::sym(k / 2)), x);
    }
    b.build()
}

/// Shorthands shared by the preset files.
pub(crate) struct Net {
    pub b: GraphBuilder,
}

impl Net {
    pub fn new(name: &str) -> Net {
        Net {
            b: GraphBuilder::new(name),
        }
    }

    pub fn input(&self) -> NodeId {
        self.b.input()
    }

    pub fn conv(&mut self, name: &str, x: NodeId, k: i64, s: i64, p: Padding) -> NodeId {
        self.b.layer(name, Op::conv(k, s, p), x)
    }

    /// `kh x kw`, stride 1, `SAME`.
    pub fn conv_hw(&mut self, name: &str, x: NodeId, kh: i64, kw: i64) -> NodeId {
        self.b.layer(name, Op::conv_hw(kh, kw, Padding::SAME), x)
    }

    pub fn max_pool(&mut self, name: &str, x: NodeId, k: i64, s: i64, p: Padding) -> NodeId {
        self.b.layer(name, Op::max_pool(k, s, p), x)
    }

    pub fn avg_pool(&mut self, name: &str, x: NodeId, k: i64, s: i64, p: Padding) -> NodeId {
        self.b.layer(name, Op::avg_pool(k, s, p), x)
    }

    pub fn concat(&mut self, name: &str, xs: &[NodeId]) -> NodeId {
        self.b.add(name, Op::Concat, xs)
    }

    pub fn sum(&mut self, name: &str, xs: &[NodeId]) -> NodeId {
        self.b.add(name, Op::Add, xs)
    }

    pub fn identity(&mut self, name: &str, x: NodeId) -> NodeId {
        self.b.layer(name, Op::Identity, x)
    }

    pub fn endpoint(&mut self, x: NodeId) -> NodeId {
        self.b.endpoint(x);
        x
    }

    pub fn build(self) -> Result<Graph> {
        self.b.build()
    }
}
