//! The empirical receptive field through libtorch (feature `erf`): autograd's gradient support
//! equals the theoretical receptive field, unit by unit, on nets with `SAME` padding at odd
//! sizes, merges, factorised kernels, dilation, upsampling and transposed convolutions.
#![cfg(feature = "erf")]
// Helpers of a test binary: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rf_calc::erf::{gradient_sum, random_erf, Activation, ErfConfig, ErfNet, NetConfig};
use rf_calc::spec::{parse, Format};
use rf_calc::RfError;
use rf_calc::{analyze, presets, Graph, Options, Pair};
use tch::{nn, Device, Kind, Tensor};
use test_support::{assert_close, rng_lock, Tol};

const LINEAR: NetConfig = NetConfig {
    in_channels: 2,
    width: 4,
    activation: Activation::Linear,
    max_pool_as_avg: true,
};

/// Support of the gradient of `node`'s `unit`, `[[top, bottom], [left, right]]`.
fn support(g: &Graph, node: &str, input: Pair, unit: Pair) -> [[i64; 2]; 2] {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = ErfNet::new(&vs.root(), g, input, &LINEAR).unwrap();
    let xs = Tensor::randn([1, 2, input[0], input[1]], (Kind::Float, Device::Cpu));
    let map = gradient_sum(&net, g.id(node).unwrap(), &xs, unit).unwrap();
    let nz = map.gt(0.0);
    let rows = nz.any_dim(1, false);
    let cols = nz.any_dim(0, false);
    let span = |t: &Tensor| {
        let idx = t.nonzero();
        let n = idx.size()[0];
        [idx.int64_value(&[0, 0]), idx.int64_value(&[n - 1, 0])]
    };
    [span(&rows), span(&cols)]
}

fn check(g: &Graph, node: &str, input: Pair, units: &[Pair]) {
    let a = analyze(g, Options::input(input)).unwrap();
    let n = a.node(node).unwrap();
    for &u in units {
        let b = n.rf_box(u).unwrap();
        let clipped = [
            [b[0][0].max(0), b[0][1].min(input[0] - 1)],
            [b[1][0].max(0), b[1][1].min(input[1] - 1)],
        ];
        assert_eq!(
            support(g, node, input, u),
            clipped,
            "{} `{node}` unit {u:?}",
            g.name()
        );
    }
}

#[test]
fn gradient_support_is_the_theoretical_field() {
    let _rng = rng_lock();
    // TF-Slim ResNet-50's stem and first block at an odd size (SAME pool pads 1 before).
    let r = presets::by_name("resnet_v1_50").unwrap();
    check(&r, "block1", [97, 97], &[[6, 6], [7, 5]]);
    // Inception v3 stem and a 1x7/7x1 module, non-square input.
    let i = presets::by_name("inception_v3").unwrap();
    check(&i, "Mixed_5b", [75, 79], &[[3, 4]]);
    // FPN-style upsample + merge: even and odd units see different windows.
    let spec = r#"
        allow_unaligned = true
        [[layer]]
        name = "c1"
        op = "conv"
        kernel = 3
        stride = 2
        padding = "same"
        [[layer]]
        name = "c2"
        op = "conv"
        kernel = 3
        stride = 2
        padding = 2
        dilation = 2
        [[layer]]
        name = "up"
        op = "upsample"
        factor = 2
        [[layer]]
        name = "lat"
        op = "conv"
        kernel = [1, 3]
        padding = [0, 1]
        input = "c1"
        [[layer]]
        name = "merge"
        op = "add"
        inputs = ["lat", "up"]
        [[layer]]
        name = "t"
        op = "conv_transpose"
        kernel = 4
        stride = 2
        padding = 1
    "#;
    let g = parse(spec, Format::Toml, "fpn_toy").unwrap();
    check(&g, "merge", [31, 32], &[[4, 4], [5, 5], [6, 7]]);
    check(&g, "t", [31, 32], &[[8, 8], [9, 11]]);
}

#[test]
fn random_relu_nets_have_a_gaussian_like_erf_smaller_than_the_theory() {
    let _rng = rng_lock();
    let g = presets::conv_stack(8, 3).unwrap();
    let cfg = ErfConfig {
        inits: 4,
        batch: 4,
        net: NetConfig {
            in_channels: 1,
            width: 8,
            ..NetConfig::default()
        },
        ..ErfConfig::default()
    };
    let e = random_erf(&g, "conv8", [33, 33], &cfg).unwrap();
    assert_eq!(e.theoretical_size, [17, 17]);
    assert_close(e.mass_in_theoretical, 1.0, Tol::abs(1e-9));
    for (s, f) in [(e.stats.h, e.fraction[0]), (e.stats.w, e.fraction[1])] {
        assert!(s.gaussian_r2 > 0.9, "{s:?}");
        assert!(f < 0.8, "{f}");
        assert_close(s.centroid, 16.0, Tol::abs(1.0));
    }
}

#[test]
fn tensor_entry_points_check_their_inputs() {
    let _rng = rng_lock();
    let g = presets::conv_stack(2, 3).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = ErfNet::new(&vs.root(), &g, [9, 9], &LINEAR).unwrap();
    assert_eq!(net.input_shape(), [2, 9, 9]);
    let id = g.id("conv2").unwrap();
    let tensor_err = |r: rf_calc::Result<Tensor>| match r {
        Err(RfError::Tensor {
            expected, actual, ..
        }) => (expected, actual),
        other => panic!("{other:?}"),
    };
    // Wrong size, wrong channels, missing batch axis, wrong kind.
    let (expected, actual) =
        tensor_err(net.forward_to(&Tensor::zeros([1, 2, 8, 9], (Kind::Float, Device::Cpu)), id));
    assert!(
        expected.contains("2, 9, 9") && actual.contains("8, 9"),
        "{expected} / {actual}"
    );
    let (_, actual) =
        tensor_err(net.forward_to(&Tensor::zeros([1, 3, 9, 9], (Kind::Float, Device::Cpu)), id));
    assert!(actual.contains("3, 9, 9"), "{actual}");
    tensor_err(net.forward_to(&Tensor::zeros([2, 9, 9], (Kind::Float, Device::Cpu)), id));
    let (expected, actual) = tensor_err(net.forward_to(
        &Tensor::zeros([1, 2, 9, 9], (Kind::Double, Device::Cpu)),
        id,
    ));
    assert!(
        expected.contains("Float") && actual.contains("Double"),
        "{expected} / {actual}"
    );
    let ok = Tensor::zeros([1, 2, 9, 9], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_to(&ok, id).unwrap().size(), [1, 4, 9, 9]);
    // A node outside the graph, a unit outside the output.
    assert!(net.forward_to(&ok, rf_calc::NodeId(99)).is_err());
    let e = gradient_sum(&net, id, &ok, [9, 0]).unwrap_err().to_string();
    assert!(e.contains("9x9") && e.contains("[9, 0]"), "{e}");
    let e = rf_calc::erf::erf_of(
        &net,
        "conv2",
        &Tensor::zeros([0, 2, 9, 9], (Kind::Float, Device::Cpu)),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("batch >= 1"), "{e}");
    // Configs a user controls.
    let zero = NetConfig { width: 0, ..LINEAR };
    let e = ErfNet::new(&vs.root(), &g, [9, 9], &zero)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("width") && e.contains("got 0"), "{e}");
    let cfg = ErfConfig {
        batch: 0,
        ..ErfConfig::default()
    };
    assert!(random_erf(&g, "conv2", [9, 9], &cfg)
        .unwrap_err()
        .to_string()
        .contains("batch"));
}
