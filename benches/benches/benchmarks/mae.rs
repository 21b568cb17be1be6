//! MAE pre-training step: the asymmetric encoder (visible patches only) against the encoder fed
//! mask tokens (paper Table 1c), same model, batch and device; and random masking alone
//! (argsort of noise + gather) against block masking.

use std::time::{Duration, Instant};

use benches::{bench_device, device_label, sync};
use criterion::{BenchmarkId, Criterion};
use mae::{MaeConfig, MaskKind};
use tch::{nn, Kind, Tensor};

fn step_bench(c: &mut Criterion, name: &str, base: MaeConfig, batch: i64) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("mae_train_step/{}", device_label(device)));
    for mask_tokens in [false, true] {
        let mut cfg = base.clone();
        cfg.encoder_mask_tokens = mask_tokens;
        tch::manual_seed(0);
        let mut step = mae::SyntheticStep::new(&cfg, device, batch, true).expect("preset builds");
        let design = if mask_tokens {
            "encoder_with_mask_tokens"
        } else {
            "asymmetric"
        };
        group.bench_function(BenchmarkId::new(format!("{name}_b{batch}"), design), |b| {
            b.iter_custom(|iters| {
                sync(device);
                let t0 = Instant::now();
                for _ in 0..iters {
                    step.run().expect("step");
                }
                sync(device);
                t0.elapsed()
            })
        });
    }
    group.finish();
}

/// One step of the small CPU MAE, and of MAE-B on a GPU.
pub fn train_step(c: &mut Criterion) {
    step_bench(
        c,
        "mae_vit_mini_patch4_32",
        MaeConfig::mae_vit_mini_patch4_32(),
        64,
    );
    if tch::Cuda::is_available() {
        step_bench(
            c,
            "mae_vit_base_patch16",
            MaeConfig::mae_vit_base_patch16(),
            64,
        );
    }
}

/// Masking of 256 x 196 tokens of width 768: noise, argsort, gather, mask.
pub fn masking(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("mae_masking/{}", device_label(device)));
    group.measurement_time(Duration::from_secs(2));
    let x = Tensor::randn([256, 196, 768], (Kind::Float, device));
    for kind in [MaskKind::Random, MaskKind::Block, MaskKind::Grid] {
        group.bench_function(format!("{kind:?}").to_lowercase(), |b| {
            b.iter_custom(|iters| {
                sync(device);
                let t0 = Instant::now();
                for _ in 0..iters {
                    let noise =
                        mae::masking::noise(kind, 256, (14, 14), 0.75, device).expect("noise");
                    let m = mae::masking::mask_by_noise(&x, &noise, 49).expect("mask");
                    drop(m);
                }
                sync(device);
                t0.elapsed()
            })
        });
    }
    group.finish();
}

/// timm's RandAugment (`rand-m9-mstd0.5-inc1`) on a fine-tuning batch of 128 ImageNet crops,
/// beside a ViT-B/16 forward of 2 of them for scale (the fine-tuning step it precedes costs about
/// three forwards of the whole batch, 192x this one).
pub fn rand_augment(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("mae_randaugment/{}", device_label(device)));
    tch::manual_seed(0);
    let x = Tensor::rand([128, 3, 224, 224], (Kind::Float, device));
    let cfg = mae::RandAugmentConfig::default();
    group.bench_function("rand_m9_mstd0.5_inc1_b128", |b| {
        b.iter_custom(|iters| {
            sync(device);
            let t0 = Instant::now();
            for _ in 0..iters {
                drop(mae::rand_augment(&x, &cfg).expect("rand_augment"));
            }
            sync(device);
            t0.elapsed()
        })
    });
    let vs = nn::VarStore::new(device);
    let vcfg = vit_core::ViTConfig::by_name("vit_base_patch16_224").expect("preset");
    let vit = vit_core::VisionTransformer::new(&vs.root(), &vcfg).expect("ViT-B/16");
    let x2 = x.narrow(0, 0, 2);
    group.bench_function("vit_base_patch16_forward_b2", |b| {
        b.iter_custom(|iters| {
            sync(device);
            let t0 = Instant::now();
            for _ in 0..iters {
                drop(tch::no_grad(|| vit.forward_t(&x2, false)).expect("forward"));
            }
            sync(device);
            t0.elapsed()
        })
    });
    group.finish();
}
