//! losses-smooth-metrics: every loss forward + backward on a typical batch (the gradient with
//! respect to the scores), beside the cross-entropy it replaces late in training.

// A bench on fixed, valid inputs: a failing loss is a bug to stop on.
#![allow(clippy::expect_used)]

use benches::{bench_device, device_label, timed};
use criterion::{BenchmarkId, Criterion};
use losses_smooth_metrics::{self as lsm, Average, Classes, LovaszSoftmax, SigmoidF1};
use tch::{Kind, Tensor};

fn grad(loss: &Tensor, x: &Tensor) {
    drop(Tensor::run_backward(&[loss], &[x], false, false));
}

/// Every loss of the crate, forward + backward.
pub fn all(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("smooth_metrics_fwd_bwd/{}", device_label(device)));
    tch::manual_seed(0);
    // Classification: 256 x 10 logits (multi-class), 256 x 20 (multi-label).
    let z = Tensor::randn([256, 10], (Kind::Float, device)).set_requires_grad(true);
    let y = Tensor::randint(10, [256], (Kind::Int64, device));
    let zm = Tensor::randn([256, 20], (Kind::Float, device)).set_requires_grad(true);
    let tm = Tensor::rand([256, 20], (Kind::Float, device))
        .gt(0.8)
        .to_kind(Kind::Float);
    type Loss<'a> = Box<dyn Fn() -> Tensor + 'a>;
    let cases: Vec<(&str, &str, &Tensor, Loss)> = vec![
        (
            "cross_entropy",
            "256x10",
            &z,
            Box::new(|| z.cross_entropy_for_logits(&y)),
        ),
        (
            "soft_accuracy",
            "256x10",
            &z,
            Box::new(|| lsm::soft_accuracy_loss(&z, &y, 1.0).expect("soft accuracy")),
        ),
        (
            "soft_f1_macro",
            "256x10",
            &z,
            Box::new(|| {
                lsm::soft_counts_multiclass(&z, &y, 1.0)
                    .expect("counts")
                    .f1_loss(Average::Macro)
            }),
        ),
        (
            "soft_f1_multilabel",
            "256x20",
            &zm,
            Box::new(|| {
                lsm::soft_counts_binary(&zm, &tm, 1.0)
                    .expect("counts")
                    .f1_loss(Average::Macro)
            }),
        ),
        (
            "sigmoid_f1",
            "256x20",
            &zm,
            Box::new(|| SigmoidF1::default().loss(&zm, &tm).expect("sigmoidF1")),
        ),
    ];
    for (name, shape, x, loss) in &cases {
        group.bench_function(BenchmarkId::new(*name, *shape), |b| {
            b.iter_custom(|n| timed(device, n, || grad(&loss(), x)))
        });
    }
    // Segmentation: 8 x 21 x 64 x 64 (Pascal VOC's classes at a small crop).
    let s = Tensor::randn([8, 21, 64, 64], (Kind::Float, device)).set_requires_grad(true);
    let sy = Tensor::randint(21, [8, 64, 64], (Kind::Int64, device));
    let sb = Tensor::randn([8, 64, 64], (Kind::Float, device)).set_requires_grad(true);
    let sby = sy.remainder(2).to_kind(Kind::Float);
    let opts = LovaszSoftmax::default();
    group.bench_function(BenchmarkId::new("lovasz_softmax", "8x21x64x64"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                grad(
                    &lsm::lovasz_softmax(&s.softmax(1, Kind::Float), &sy, &opts).expect("lovasz"),
                    &s,
                )
            })
        })
    });
    group.bench_function(BenchmarkId::new("soft_iou", "8x21x64x64"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                grad(
                    &lsm::soft_jaccard_loss(&s, &sy, 1.0, &Classes::Present).expect("iou"),
                    &s,
                )
            })
        })
    });
    group.bench_function(BenchmarkId::new("lovasz_hinge", "8x64x64"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                grad(
                    &lsm::lovasz_hinge(&sb, &sby, true, None).expect("hinge"),
                    &sb,
                )
            })
        })
    });
    // Retrieval: 128 embeddings of 128, 8 per class.
    let e = Tensor::randn([128, 128], (Kind::Float, device)).set_requires_grad(true);
    let ey = Tensor::arange(16, (Kind::Int64, device)).repeat_interleave_self_int(8, None, None);
    group.bench_function(BenchmarkId::new("smooth_ap", "128x128"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                grad(
                    &lsm::smooth_ap_loss(&e, &ey, lsm::SMOOTH_AP_TAU).expect("smooth-ap"),
                    &e,
                )
            })
        })
    });
    group.finish();
}
