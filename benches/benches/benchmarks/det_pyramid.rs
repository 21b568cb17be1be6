//! det-pyramid on the bench device: a ResNet + FPN forward (reduced ResNet-18, P2-P6), anchor
//! generation plus IoU assignment of 100 boxes on a 512 image (P3-P7, 9 anchors per
//! location), and a RetinaNet detection pass per image-pyramid scale set (1x against 1x + 2x:
//! the cost ratio of the image pyramid over the feature pyramid on the same images).

use benches::{bench_device, device_label, timed};
use criterion::{BenchmarkId, Criterion};
use det_pyramid::anchors::{grid_anchors, AnchorConfig};
use det_pyramid::assign::{assign, MatcherConfig};
use det_pyramid::inference::{pyramid_detect, Merge, PyramidInferenceConfig};
use det_pyramid::{
    Depth, Fpn, FpnConfig, ResNet, ResNetConfig, ResNetFpn, RetinaNet, RetinaNetConfig, ValidRange,
};
use tch::{nn, Kind, Tensor};

fn fpn_forward(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("fpn_forward/{}", device_label(device)));
    group.sample_size(10);
    let vs = nn::VarStore::new(device);
    let cfg = ResNetConfig::small(Depth::R18, 16);
    let trunk = ResNet::new(&(vs.root() / "body"), &cfg).expect("trunk");
    let fpn = Fpn::new(&(vs.root() / "fpn"), &FpnConfig::p2_p6(cfg.channels(), 64)).expect("fpn");
    let x = Tensor::rand([2, 3, 256, 256], (Kind::Float, device));
    let _guard = tch::no_grad_guard();
    group.bench_function(BenchmarkId::new("r18w16_p2p6", "2x256"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                let f = trunk.forward_t(&x, false).expect("trunk forward");
                drop(fpn.forward_features(&f).expect("fpn forward"));
            })
        })
    });
    group.finish();
}

fn anchors_assign(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("anchors_assign/{}", device_label(device)));
    let cfg = AnchorConfig::default();
    let maps: Vec<(i64, i64)> = [8, 16, 32, 64, 128]
        .iter()
        .map(|s| (512 / s, 512 / s))
        .collect();
    tch::manual_seed(0);
    let xy = Tensor::rand([100, 2], (Kind::Float, device)) * 400.0;
    let wh = Tensor::rand([100, 2], (Kind::Float, device)) * 100.0 + 8.0;
    let gt = Tensor::cat(&[&xy, &(&xy + &wh)], 1);
    let m = MatcherConfig::default();
    group.bench_function(BenchmarkId::new("p3p7_100_boxes", "512"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                let a = Tensor::cat(
                    &grid_anchors(&cfg, (512, 512), &maps, device).expect("anchors"),
                    0,
                );
                drop(assign(&a, &gt, &ValidRange::ALL, 1.0, &m).expect("assign"));
            })
        })
    });
    group.finish();
}

fn pyramid_inference(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("pyramid_inference/{}", device_label(device)));
    group.sample_size(10);
    let vs = nn::VarStore::new(device);
    let trunk = ResNetConfig::small(Depth::R18, 8);
    let fpn = FpnConfig::retinanet(trunk.channels(), 16);
    let bb = ResNetFpn::new(&(vs.root() / "backbone"), &trunk, &fpn).expect("backbone");
    let cfg = RetinaNetConfig {
        num_classes: 10,
        anchors: AnchorConfig::retinanet(&[12.0, 24.0, 48.0, 96.0, 192.0]),
        head_convs: 2,
        ..Default::default()
    };
    let model = RetinaNet::new(&vs.root(), Box::new(bb), &cfg).expect("RetinaNet");
    let x = Tensor::rand([4, 3, 128, 128], (Kind::Float, device));
    for (label, scales) in [
        ("fpn_1x", vec![1.0]),
        ("image_pyramid_1x_2x", vec![1.0, 2.0]),
    ] {
        let p = PyramidInferenceConfig {
            ranges: Vec::new(),
            merge: Merge::Nms { iou: 0.5 },
            max_detections: 100,
            scales,
        };
        group.bench_function(BenchmarkId::new(label, "4x128"), |b| {
            b.iter_custom(|n| {
                timed(device, n, || {
                    drop(pyramid_detect(&model, &x, &p).expect("detect"))
                })
            })
        });
    }
    group.finish();
}

/// Every det-pyramid bench group.
pub fn all(c: &mut Criterion) {
    fpn_forward(c);
    anchors_assign(c);
    pyramid_inference(c);
}
