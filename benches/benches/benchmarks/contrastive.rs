//! contrastive-nce on the bench device: each MI estimator's forward + backward on a 64 x 64
//! (the benchmark's batch) and a 1024 x 1024 score matrix, and one SimCLR NT-Xent loss
//! forward + backward on 2 x 256 embeddings of width 128.

use benches::{bench_device, device_label, timed};
use contrastive_nce::losses::simclr_loss;
use contrastive_nce::mi::{self, Estimator, Extras, MovingAverage};
use criterion::{BenchmarkId, Criterion};
use tch::{Kind, Tensor};

/// Every estimator, forward and backward, on two score-matrix sizes.
pub fn estimators(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("mi_estimators/{}", device_label(device)));
    let all = [
        Estimator::InfoNce,
        Estimator::Nwj,
        Estimator::Tuba,
        Estimator::Dv,
        Estimator::Mine { momentum: 0.9 },
        Estimator::Js,
        Estimator::Interpolated {
            alpha_logit: -4.595,
        },
        Estimator::Smile { clip: Some(1.0) },
    ];
    for n in [64i64, 1024] {
        tch::manual_seed(0);
        let scores = (Tensor::randn([n, n], (Kind::Float, device))
            + Tensor::eye(n, (Kind::Float, device)) * 2.0)
            .set_requires_grad(true);
        let baseline = Tensor::zeros([n], (Kind::Float, device)).set_requires_grad(true);
        for est in all {
            let mut avg = MovingAverage::default();
            group.bench_function(BenchmarkId::new(est.name(), format!("{n}x{n}")), |b| {
                b.iter_custom(|iters| {
                    timed(device, iters, || {
                        let v = mi::estimate(
                            est,
                            &scores,
                            Extras {
                                log_baseline: Some(&baseline),
                                mine_average: Some(&mut avg),
                            },
                        )
                        .expect("valid scores");
                        v.backward();
                    })
                })
            });
        }
    }
    group.finish();
}

/// SimCLR's loss on two views of 256 embeddings of width 128, forward + backward.
pub fn nt_xent(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("nt_xent/{}", device_label(device)));
    let z1 = Tensor::randn([256, 128], (Kind::Float, device)).set_requires_grad(true);
    let z2 = Tensor::randn([256, 128], (Kind::Float, device)).set_requires_grad(true);
    group.bench_function(BenchmarkId::new("simclr_loss", "2x256x128"), |b| {
        b.iter_custom(|iters| {
            timed(device, iters, || {
                simclr_loss(&z1, &z2, 0.5).expect("valid views").backward();
            })
        })
    });
    group.finish();
}

/// Every contrastive-nce bench group.
pub fn all(c: &mut Criterion) {
    estimators(c);
    nt_xent(c);
}
