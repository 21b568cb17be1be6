//! PyTorch-style nets (explicit symmetric padding): torchvision ResNets and MobileNet v2, the
//! YOLO v1 trunk, FPN over ResNet-50. Node names follow the torchvision module paths.

use super::Net;
use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::layer::{Op, Padding};

fn p(n: i64) -> Padding {
    Padding::sym(n)
}

/// The body of a torchvision ResNet up to `layer4`; returns the `layer1..layer4` nodes.
///
/// `models/resnet.py`: conv1 7x7/2 pad 3, maxpool 3x3/2 pad 1; a stage's stride sits in its
/// *first* block, on the 3x3 conv (`Bottleneck`, "ResNet v1.5") or the first 3x3
/// (`BasicBlock`); the downsample shortcut is a 1x1 with that stride.
fn resnet_body(n: &mut Net, blocks: [usize; 4], bottleneck: bool) -> [NodeId; 4] {
    let x = n.input();
    let x = n.conv("conv1", x, 7, 2, p(3));
    n.endpoint(x);
    let mut x = n.max_pool("maxpool", x, 3, 2, p(1));
    n.endpoint(x);
    let expansion = if bottleneck { 4 } else { 1 };
    let mut in_planes = 64;
    let mut stages = [x; 4];
    for (l, &count) in blocks.iter().enumerate() {
        let planes = 64 << l;
        let stage_stride = if l == 0 { 1 } else { 2 };
        for i in 0..count {
            let s = if i == 0 { stage_stride } else { 1 };
            let pre = format!("layer{}.{i}", l + 1);
            let shortcut = if s != 1 || in_planes != planes * expansion {
                n.conv(&format!("{pre}.downsample.0"), x, 1, s, p(0))
            } else {
                x
            };
            let r = if bottleneck {
                let r = n.conv(&format!("{pre}.conv1"), x, 1, 1, p(0));
                let r = n.conv(&format!("{pre}.conv2"), r, 3, s, p(1));
                n.conv(&format!("{pre}.conv3"), r, 1, 1, p(0))
            } else {
                let r = n.conv(&format!("{pre}.conv1"), x, 3, s, p(1));
                n.conv(&format!("{pre}.conv2"), r, 3, 1, p(1))
            };
            x = n.sum(&pre, &[shortcut, r]);
            in_planes = planes * expansion;
        }
        x = n.identity(&format!("layer{}", l + 1), x);
        stages[l] = n.endpoint(x);
    }
    stages
}

/// torchvision `resnet18/34` (`BasicBlock`) and `resnet50/101/152` (`Bottleneck`).
pub fn resnet(name: &str, blocks: [usize; 4], bottleneck: bool) -> Result<Graph> {
    let mut n = Net::new(name);
    resnet_body(&mut n, blocks, bottleneck);
    n.build()
}

/// torchvision `mobilenet_v2` (`models/mobilenetv2.py`): inverted residuals, the stride on
/// the first block of a stage, a residual add where stride 1 keeps the channels.
pub fn mobilenet_v2() -> Result<Graph> {
    // (expansion t, channels c, repeats n, stride s)
    const SETTINGS: [(i64, i64, usize, i64); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let mut n = Net::new("mobilenet_v2");
    let x = n.input();
    let mut x = n.conv("features.0", x, 3, 2, p(1));
    n.endpoint(x);
    let mut c_in = 32;
    let mut idx = 1;
    for (t, c, count, stride) in SETTINGS {
        for i in 0..count {
            let s = if i == 0 { stride } else { 1 };
            let pre = format!("features.{idx}");
            let mut y = x;
            let mut j = 0;
            if t != 1 {
                y = n.conv(&format!("{pre}.conv.{j}"), y, 1, 1, p(0));
                j += 1;
            }
            y =
                n.b.layer(&format!("{pre}.conv.{j}"), Op::depthwise(3, s, p(1)), y);
            y = n.conv(&format!("{pre}.conv.{}", j + 1), y, 1, 1, p(0));
            x = if s == 1 && c_in == c {
                n.sum(&pre, &[x, y])
            } else {
                n.identity(&pre, y)
            };
            n.endpoint(x);
            c_in = c;
            idx += 1;
        }
    }
    let x = n.conv("features.18", x, 1, 1, p(0));
    n.endpoint(x);
    n.build()
}

/// The 24 convolutional layers of YOLO v1 (Redmon et al. 2016, Fig. 3) as Darknet runs
/// them: padding `k / 2`, 2x2 stride-2 max pools padded by one at the end.
pub fn yolo_v1() -> Result<Graph> {
    // (kernel, stride, channels); 0 = max pool.
    const LAYERS: [(i64, i64, i64); 28] = [
        (7, 2, 64),
        (0, 0, 0),
        (3, 1, 192),
        (0, 0, 0),
        (1, 1, 128),
        (3, 1, 256),
        (1, 1, 256),
        (3, 1, 512),
        (0, 0, 0),
        (1, 1, 256),
        (3, 1, 512),
        (1, 1, 256),
        (3, 1, 512),
        (1, 1, 256),
        (3, 1, 512),
        (1, 1, 256),
        (3, 1, 512),
        (1, 1, 512),
        (3, 1, 1024),
        (0, 0, 0),
        (1, 1, 512),
        (3, 1, 1024),
        (1, 1, 512),
        (3, 1, 1024),
        (3, 1, 1024),
        (3, 2, 1024),
        (3, 1, 1024),
        (3, 1, 1024),
    ];
    let mut n = Net::new("yolo_v1");
    let mut x = n.input();
    let (mut conv, mut pool) = (0, 0);
    for (k, s, c) in LAYERS {
        x = if k == 0 {
            pool += 1;
            let pad = Padding {
                h: crate::layer::AxisPadding::Explicit { begin: 0, end: 1 },
                w: crate::layer::AxisPadding::Explicit { begin: 0, end: 1 },
            };
            n.max_pool(&format!("pool{pool}"), x, 2, 2, pad)
        } else {
            conv += 1;
            n.b.layer(
                &format!("conv{conv}"),
                Op::conv(k, s, p(k / 2)).with_channels(c),
                x,
            )
        };
        n.endpoint(x);
    }
    n.build()
}

/// FPN over torchvision's ResNet-50 (`resnet_fpn_backbone`, `FeaturePyramidNetwork`):
/// laterals `inner_blocks` 1x1 on C2..C5, top-down nearest x2 upsampling added to the
/// lateral, `layer_blocks` 3x3 pad 1 giving P2..P5, and P6 = `max_pool2d(P5, 1, 2)`.
///
/// Nearest upsampling copies a coarse unit to two fine ones, so the top-down path is centred
/// differently on even and odd units: the merges are misaligned by design, and the preset
/// reports them instead of rejecting them. The input must be a multiple of 32 (Detectron pads
/// to one) for the x2 upsampling to meet the lateral's size.
pub fn fpn_resnet50() -> Result<Graph> {
    let mut n = Net::new("fpn_resnet50");
    n.b.allow_unaligned(true);
    let c = resnet_body(&mut n, [3, 4, 6, 3], true);
    let mut last = n.conv("fpn.inner_blocks.3", c[3], 1, 1, p(0));
    let mut outs = vec![(5, n.conv("P5", last, 3, 1, p(1)))];
    for level in (2..=4).rev() {
        let lateral = n.conv(
            &format!("fpn.inner_blocks.{}", level - 2),
            c[level - 2],
            1,
            1,
            p(0),
        );
        let up = n.b.layer(
            &format!("fpn.top_down.{level}"),
            Op::Upsample { factor: [2, 2] },
            last,
        );
        last = n.sum(&format!("fpn.merge.{level}"), &[lateral, up]);
        outs.push((level, n.conv(&format!("P{level}"), last, 3, 1, p(1))));
    }
    outs.sort_by_key(|(l, _)| *l);
    for (_, o) in &outs {
        n.endpoint(*o);
    }
    let p5 = outs[3].1;
    let p6 = n.max_pool("P6", p5, 1, 2, p(0));
    n.endpoint(p6);
    n.build()
}
