//! TF-Slim nets (tensorflow/models `research/slim/nets`), node names as TF-Slim scopes, the
//! end-points of google-research/receptive_field's `rf_benchmark.py`.

use super::Net;
use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::layer::{Op, Padding};

const SAME: Padding = Padding::SAME;
const VALID: Padding = Padding::VALID;

/// `alexnet.py`: convs `SAME` except conv1, pools `VALID`.
pub fn alexnet_v2() -> Result<Graph> {
    let mut n = Net::new("alexnet_v2");
    let x = n.input();
    let x = n.conv("conv1", x, 11, 4, VALID);
    n.endpoint(x);
    let x = n.max_pool("pool1", x, 3, 2, VALID);
    n.endpoint(x);
    let x = n.conv("conv2", x, 5, 1, SAME);
    n.endpoint(x);
    let x = n.max_pool("pool2", x, 3, 2, VALID);
    let x = n.conv("conv3", x, 3, 1, SAME);
    n.endpoint(x);
    let x = n.conv("conv4", x, 3, 1, SAME);
    n.endpoint(x);
    let x = n.conv("conv5", x, 3, 1, SAME);
    n.endpoint(x);
    let x = n.max_pool("pool5", x, 3, 2, VALID);
    n.endpoint(x);
    n.build()
}

/// `vgg.py`: blocks of 3x3 `SAME` convs, 2x2 stride-2 `VALID` pools.
pub fn vgg(name: &str, convs: &[usize]) -> Result<Graph> {
    let mut n = Net::new(name);
    let mut x = n.input();
    for (b, &count) in convs.iter().enumerate() {
        let b = b + 1;
        for i in 1..=count {
            x = n.conv(&format!("conv{b}/conv{b}_{i}"), x, 3, 1, SAME);
            n.endpoint(x);
        }
        x = n.max_pool(&format!("pool{b}"), x, 2, 2, VALID);
        n.endpoint(x);
    }
    n.build()
}

/// Inception module with four branches: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool-1x1 (v2 style).
fn module_v2(n: &mut Net, name: &str, x: NodeId, max_pool_branch: bool) -> NodeId {
    let b0 = n.conv(&format!("{name}/Branch_0/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_0b_3x3"), b1, 3, 1, SAME);
    let b2 = n.conv(&format!("{name}/Branch_2/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b2 = n.conv(&format!("{name}/Branch_2/Conv2d_0b_3x3"), b2, 3, 1, SAME);
    let b2 = n.conv(&format!("{name}/Branch_2/Conv2d_0c_3x3"), b2, 3, 1, SAME);
    let b3 = if max_pool_branch {
        n.max_pool(&format!("{name}/Branch_3/MaxPool_0a_3x3"), x, 3, 1, SAME)
    } else {
        n.avg_pool(&format!("{name}/Branch_3/AvgPool_0a_3x3"), x, 3, 1, SAME)
    };
    let b3 = n.conv(&format!("{name}/Branch_3/Conv2d_0b_1x1"), b3, 1, 1, SAME);
    let m = n.concat(name, &[b0, b1, b2, b3]);
    n.endpoint(m)
}

/// Grid reduction of Inception v2 (`SAME`, stride 2 in every branch).
fn reduction_v2(n: &mut Net, name: &str, x: NodeId) -> NodeId {
    let b0 = n.conv(&format!("{name}/Branch_0/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b0 = n.conv(&format!("{name}/Branch_0/Conv2d_1a_3x3"), b0, 3, 2, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_0b_3x3"), b1, 3, 1, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_1a_3x3"), b1, 3, 2, SAME);
    let b2 = n.max_pool(&format!("{name}/Branch_2/MaxPool_1a_3x3"), x, 3, 2, SAME);
    let m = n.concat(name, &[b0, b1, b2]);
    n.endpoint(m)
}

/// `inception_v2.py` (`inception_v2_base`); `separable`: the 7x7 stem is depthwise + 1x1.
pub fn inception_v2(name: &str, separable: bool) -> Result<Graph> {
    let mut n = Net::new(name);
    let x = n.input();
    let x = if separable {
        let d =
            n.b.layer("Conv2d_1a_7x7/depthwise", Op::depthwise(7, 2, SAME), x);
        n.conv("Conv2d_1a_7x7", d, 1, 1, VALID)
    } else {
        n.conv("Conv2d_1a_7x7", x, 7, 2, SAME)
    };
    n.endpoint(x);
    let x = n.max_pool("MaxPool_2a_3x3", x, 3, 2, SAME);
    n.endpoint(x);
    let x = n.conv("Conv2d_2b_1x1", x, 1, 1, SAME);
    n.endpoint(x);
    let x = n.conv("Conv2d_2c_3x3", x, 3, 1, SAME);
    n.endpoint(x);
    let mut x = n.max_pool("MaxPool_3a_3x3", x, 3, 2, SAME);
    n.endpoint(x);
    for m in ["Mixed_3b", "Mixed_3c"] {
        x = module_v2(&mut n, m, x, false);
    }
    x = reduction_v2(&mut n, "Mixed_4a", x);
    for m in ["Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e"] {
        x = module_v2(&mut n, m, x, false);
    }
    x = reduction_v2(&mut n, "Mixed_5a", x);
    x = module_v2(&mut n, "Mixed_5b", x, false);
    module_v2(&mut n, "Mixed_5c", x, true);
    n.build()
}

/// Stem of Inception v3 and Inception-ResNet v2, with `pad` on the layers that the latter's
/// `align_feature_maps` switches to `SAME`.
fn stem_v3(n: &mut Net, pad: Padding) -> NodeId {
    let x = n.input();
    let x = n.conv("Conv2d_1a_3x3", x, 3, 2, pad);
    n.endpoint(x);
    let x = n.conv("Conv2d_2a_3x3", x, 3, 1, pad);
    n.endpoint(x);
    let x = n.conv("Conv2d_2b_3x3", x, 3, 1, SAME);
    n.endpoint(x);
    let x = n.max_pool("MaxPool_3a_3x3", x, 3, 2, pad);
    n.endpoint(x);
    let x = n.conv("Conv2d_3b_1x1", x, 1, 1, pad);
    n.endpoint(x);
    let x = n.conv("Conv2d_4a_3x3", x, 3, 1, pad);
    n.endpoint(x);
    let x = n.max_pool("MaxPool_5a_3x3", x, 3, 2, pad);
    n.endpoint(x)
}

/// Branch of `1 x k` / `k x 1` convs (`hw` lists `(kh, kw)`), after a 1x1.
fn factorised(n: &mut Net, prefix: &str, x: NodeId, hw: &[(i64, i64, &str)]) -> NodeId {
    let mut y = n.conv(&format!("{prefix}/Conv2d_0a_1x1"), x, 1, 1, SAME);
    for &(kh, kw, tag) in hw {
        y = n.conv_hw(&format!("{prefix}/{tag}"), y, kh, kw);
    }
    y
}

/// 17x17 module of Inception v3 / Inception-B of v4.
fn module_7x7(n: &mut Net, name: &str, x: NodeId) -> NodeId {
    let b0 = n.conv(&format!("{name}/Branch_0/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = factorised(
        n,
        &format!("{name}/Branch_1"),
        x,
        &[(1, 7, "Conv2d_0b_1x7"), (7, 1, "Conv2d_0c_7x1")],
    );
    let b2 = factorised(
        n,
        &format!("{name}/Branch_2"),
        x,
        &[
            (7, 1, "Conv2d_0b_7x1"),
            (1, 7, "Conv2d_0c_1x7"),
            (7, 1, "Conv2d_0d_7x1"),
            (1, 7, "Conv2d_0e_1x7"),
        ],
    );
    let b3 = n.avg_pool(&format!("{name}/Branch_3/AvgPool_0a_3x3"), x, 3, 1, SAME);
    let b3 = n.conv(&format!("{name}/Branch_3/Conv2d_0b_1x1"), b3, 1, 1, SAME);
    let m = n.concat(name, &[b0, b1, b2, b3]);
    n.endpoint(m)
}

/// Concat of a `1x3` and a `3x1` conv on `x` (the 8x8 modules' split branches).
fn split_1x3_3x1(n: &mut Net, prefix: &str, x: NodeId, tags: [&str; 2]) -> NodeId {
    let a = n.conv_hw(&format!("{prefix}/{}", tags[0]), x, 1, 3);
    let b = n.conv_hw(&format!("{prefix}/{}", tags[1]), x, 3, 1);
    n.concat(&format!("{prefix}/concat"), &[a, b])
}

/// 8x8 module; `v4` has the 3x1-1x3 pair of Inception-C in branch 2, v3 a 3x3.
fn module_8x8(n: &mut Net, name: &str, x: NodeId, v4: bool) -> NodeId {
    let b0 = n.conv(&format!("{name}/Branch_0/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = split_1x3_3x1(
        n,
        &format!("{name}/Branch_1"),
        b1,
        ["Conv2d_0b_1x3", "Conv2d_0c_3x1"],
    );
    let b2 = if v4 {
        factorised(
            n,
            &format!("{name}/Branch_2"),
            x,
            &[(3, 1, "Conv2d_0b_3x1"), (1, 3, "Conv2d_0c_1x3")],
        )
    } else {
        let y = n.conv(&format!("{name}/Branch_2/Conv2d_0a_1x1"), x, 1, 1, SAME);
        n.conv(&format!("{name}/Branch_2/Conv2d_0b_3x3"), y, 3, 1, SAME)
    };
    let b2 = split_1x3_3x1(
        n,
        &format!("{name}/Branch_2"),
        b2,
        ["Conv2d_0d_1x3", "Conv2d_0e_3x1"],
    );
    let b3 = n.avg_pool(&format!("{name}/Branch_3/AvgPool_0a_3x3"), x, 3, 1, SAME);
    let b3 = n.conv(&format!("{name}/Branch_3/Conv2d_0b_1x1"), b3, 1, 1, SAME);
    let m = n.concat(name, &[b0, b1, b2, b3]);
    n.endpoint(m)
}

/// 35x35 module of Inception v3: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-1x1.
fn module_5x5(n: &mut Net, name: &str, x: NodeId) -> NodeId {
    let b0 = n.conv(&format!("{name}/Branch_0/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b1 = n.conv(&format!("{name}/Branch_1/Conv2d_0b_5x5"), b1, 5, 1, SAME);
    let b2 = n.conv(&format!("{name}/Branch_2/Conv2d_0a_1x1"), x, 1, 1, SAME);
    let b2 = n.conv(&format!("{name}/Branch_2/Conv2d_0b_3x3"), b2, 3, 1, SAME);
    let b2 = n.conv(&format!("{name}/Branch_2/Conv2d_0c_3x3"), b2, 3, 1, SAME);
    let b3 = n.avg_pool(&format!("{name}/Branch_3/AvgPool_0a_3x3"), x, 3, 1, SAME);
    let b3 = n.conv(&format!("{name}/Branch_3/Conv2d_0b_1x1"), b3, 1, 1, SAME);
    let m = n.concat(name, &[b0, b1, b2, b3]);
    n.endpoint(m)
}

/// Reduction: `pre` 1x1/factorised convs then a 3x3 stride-2 conv per conv branch, and a
/// 3x3 stride-2 max pool; `pad` for the strided layers.
fn reduction(
    n: &mut Net,
    name: &str,
    x: NodeId,
    branches: &[&[(i64, i64)]],
    pad: Padding,
) -> NodeId {
    let mut outs = Vec::new();
    for (i, pre) in branches.iter().enumerate() {
        let mut y = x;
        for (j, &(kh, kw)) in pre.iter().enumerate() {
            let tag = format!(
                "{name}/Branch_{i}/Conv2d_0{}_{kh}x{kw}",
                (b'a' + j as u8) as char
            );
            y = n.b.layer(&tag, Op::conv_hw(kh, kw, SAME), y);
        }
        outs.push(n.conv(&format!("{name}/Branch_{i}/Conv2d_1a_3x3"), y, 3, 2, pad));
    }
    let i = branches.len();
    outs.push(n.max_pool(&format!("{name}/Branch_{i}/MaxPool_1a_3x3"), x, 3, 2, pad));
    let m = n.concat(name, &outs);
    n.endpoint(m)
}

/// `inception_v3.py` (`inception_v3_base`).
pub fn inception_v3() -> Result<Graph> {
    let mut n = Net::new("inception_v3");
    let mut x = stem_v3(&mut n, VALID);
    for m in ["Mixed_5b", "Mixed_5c", "Mixed_5d"] {
        x = module_5x5(&mut n, m, x);
    }
    x = reduction(&mut n, "Mixed_6a", x, &[&[], &[(1, 1), (3, 3)]], VALID);
    for m in ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"] {
        x = module_7x7(&mut n, m, x);
    }
    let pre: &[&[(i64, i64)]] = &[&[(1, 1)], &[(1, 1), (1, 7), (7, 1)]];
    x = reduction(&mut n, "Mixed_7a", x, pre, VALID);
    for m in ["Mixed_7b", "Mixed_7c"] {
        x = module_8x8(&mut n, m, x, false);
    }
    let _ = x;
    n.build()
}

/// `inception_v4.py` (`inception_v4_base`).
pub fn inception_v4() -> Result<Graph> {
    let mut n = Net::new("inception_v4");
    let x = n.input();
    let x = n.conv("Conv2d_1a_3x3", x, 3, 2, VALID);
    n.endpoint(x);
    let x = n.conv("Conv2d_2a_3x3", x, 3, 1, VALID);
    n.endpoint(x);
    let x = n.conv("Conv2d_2b_3x3", x, 3, 1, SAME);
    n.endpoint(x);
    let b0 = n.max_pool("Mixed_3a/Branch_0/MaxPool_0a_3x3", x, 3, 2, VALID);
    let b1 = n.conv("Mixed_3a/Branch_1/Conv2d_0a_3x3", x, 3, 2, VALID);
    let x = n.concat("Mixed_3a", &[b0, b1]);
    n.endpoint(x);
    let b0 = n.conv("Mixed_4a/Branch_0/Conv2d_0a_1x1", x, 1, 1, SAME);
    let b0 = n.conv("Mixed_4a/Branch_0/Conv2d_1a_3x3", b0, 3, 1, VALID);
    let b1 = factorised(
        &mut n,
        "Mixed_4a/Branch_1",
        x,
        &[(1, 7, "Conv2d_0b_1x7"), (7, 1, "Conv2d_0c_7x1")],
    );
    let b1 = n.conv("Mixed_4a/Branch_1/Conv2d_1a_3x3", b1, 3, 1, VALID);
    let x = n.concat("Mixed_4a", &[b0, b1]);
    n.endpoint(x);
    let b0 = n.conv("Mixed_5a/Branch_0/Conv2d_1a_3x3", x, 3, 2, VALID);
    let b1 = n.max_pool("Mixed_5a/Branch_1/MaxPool_1a_3x3", x, 3, 2, VALID);
    let mut x = n.concat("Mixed_5a", &[b0, b1]);
    n.endpoint(x);
    for m in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_5e"] {
        x = module_v2(&mut n, m, x, false);
    }
    x = reduction(&mut n, "Mixed_6a", x, &[&[], &[(1, 1), (3, 3)]], VALID);
    for c in 'b'..='h' {
        x = module_7x7(&mut n, &format!("Mixed_6{c}"), x);
    }
    let pre: &[&[(i64, i64)]] = &[&[(1, 1)], &[(1, 1), (1, 7), (7, 1)]];
    x = reduction(&mut n, "Mixed_7a", x, pre, VALID);
    for m in ["Mixed_7b", "Mixed_7c", "Mixed_7d"] {
        x = module_8x8(&mut n, m, x, true);
    }
    let _ = x;
    n.build()
}

/// A residual Inception block: branches of `(kh, kw)` convs after a 1x1, concat, 1x1 up,
/// added to the input.
fn res_block(n: &mut Net, name: &str, x: NodeId, branches: &[&[(i64, i64)]]) -> NodeId {
    let mut outs = Vec::new();
    for (i, convs) in branches.iter().enumerate() {
        let mut y = n.conv(&format!("{name}/Branch_{i}/Conv2d_0a_1x1"), x, 1, 1, SAME);
        for (j, &(kh, kw)) in convs.iter().enumerate() {
            let tag = format!(
                "{name}/Branch_{i}/Conv2d_0{}_{kh}x{kw}",
                (b'b' + j as u8) as char
            );
            y = n.b.layer(&tag, Op::conv_hw(kh, kw, SAME), y);
        }
        outs.push(y);
    }
    let m = n.concat(&format!("{name}/concat"), &outs);
    let up = n.conv(&format!("{name}/Conv2d_1x1"), m, 1, 1, SAME);
    n.sum(name, &[x, up])
}

/// `inception_resnet_v2.py` (`inception_resnet_v2_base`, output stride 32);
/// `same`: `align_feature_maps=True`.
pub fn inception_resnet_v2(name: &str, same: bool) -> Result<Graph> {
    let pad = if same { SAME } else { VALID };
    let mut n = Net::new(name);
    let x = stem_v3(&mut n, pad);
    let mut x = module_5x5(&mut n, "Mixed_5b", x);
    for i in 1..=10 {
        x = res_block(
            &mut n,
            &format!("Repeat/block35_{i}"),
            x,
            &[&[], &[(3, 3)], &[(3, 3), (3, 3)]],
        );
    }
    x = reduction(&mut n, "Mixed_6a", x, &[&[], &[(1, 1), (3, 3)]], pad);
    for i in 1..=20 {
        x = res_block(
            &mut n,
            &format!("Repeat_1/block17_{i}"),
            x,
            &[&[], &[(1, 7), (7, 1)]],
        );
    }
    x = n.identity("PreAuxLogits", x);
    n.endpoint(x);
    let pre: &[&[(i64, i64)]] = &[&[(1, 1)], &[(1, 1)], &[(1, 1), (3, 3)]];
    x = reduction(&mut n, "Mixed_7a", x, pre, pad);
    for i in 1..=10 {
        x = res_block(
            &mut n,
            &format!("Repeat_2/block8_{i}"),
            x,
            &[&[], &[(1, 3), (3, 1)]],
        );
    }
    let x = n.conv("Conv2d_7b_1x1", x, 1, 1, SAME);
    n.endpoint(x);
    n.build()
}

/// `mobilenet_v1.py` (`MOBILENETV1_CONV_DEFS`, `SAME` padding).
pub fn mobilenet_v1(name: &str) -> Result<Graph> {
    const STRIDES: [i64; 13] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1];
    let mut n = Net::new(name);
    let x = n.input();
    let mut x = n.conv("Conv2d_0", x, 3, 2, SAME);
    n.endpoint(x);
    for (i, &s) in STRIDES.iter().enumerate() {
        let i = i + 1;
        let d = n.b.layer(
            &format!("Conv2d_{i}_depthwise"),
            Op::depthwise(3, s, SAME),
            x,
        );
        x = n.conv(&format!("Conv2d_{i}_pointwise"), d, 1, 1, SAME);
        n.endpoint(x);
    }
    n.build()
}

/// `resnet_v1.py` / `resnet_v2.py` with `resnet_utils.py`: the stride of a block sits in its
/// *last* unit (`resnet_v1_block`), a strided 3x3 is `conv2d_same` (explicit pad then
/// `VALID`), pool1 is a `SAME` max pool (`resnet_arg_scope`). v1 and v2 differ only in where
/// batch norm and ReLU sit, not in geometry.
pub fn resnet(name: &str, units: [usize; 4]) -> Result<Graph> {
    let mut n = Net::new(name);
    let x = n.input();
    let x = n.b.layer(
        "conv1/pad",
        Op::Pad {
            h: [3, 3],
            w: [3, 3],
        },
        x,
    );
    let x = n.conv("conv1", x, 7, 2, VALID);
    let mut x = n.max_pool("pool1", x, 3, 2, SAME);
    let mut depth_in = 64;
    for (b, (&count, stride)) in units.iter().zip([2, 2, 2, 1]).enumerate() {
        let b = b + 1;
        let depth = 256 << (b - 1);
        for u in 1..=count {
            let s = if u == count { stride } else { 1 };
            let p = format!("block{b}/unit_{u}/bottleneck");
            let shortcut = if depth != depth_in {
                n.conv(&format!("{p}/shortcut"), x, 1, s, SAME)
            } else if s > 1 {
                n.max_pool(&format!("{p}/shortcut"), x, 1, s, SAME)
            } else {
                x
            };
            let r = n.conv(&format!("{p}/conv1"), x, 1, 1, SAME);
            let r = if s == 1 {
                n.conv(&format!("{p}/conv2"), r, 3, 1, SAME)
            } else {
                let r = n.b.layer(
                    &format!("{p}/conv2/pad"),
                    Op::Pad {
                        h: [1, 1],
                        w: [1, 1],
                    },
                    r,
                );
                n.conv(&format!("{p}/conv2"), r, 3, s, VALID)
            };
            let r = n.conv(&format!("{p}/conv3"), r, 1, 1, SAME);
            x = n.sum(&format!("block{b}/unit_{u}"), &[shortcut, r]);
            depth_in = depth;
        }
        x = n.identity(&format!("block{b}"), x);
        n.endpoint(x);
    }
    n.build()
}
