//! MAE pre-training step: the asymmetric encoder (visible patches only) against the encoder fed
//! mask tokens (paper Table 1c), same model, batch and device; and random masking alone
//! (argsort of noise + gather) against block masking.

use std::time::{Duration, Instant};

use benches::{bench_device, device_label, sync};
use criterion::{BenchmarkId, Criterion};
use mae::{MaeConfig, MaskKind, MaskedAutoencoder};
use tch::{nn, Kind, Tensor};

fn step_bench(c: &mut Criterion, name: &str, base: MaeConfig, batch: i64) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("mae_train_step/{}", device_label(device)));
    for mask_tokens in [false, true] {
        let mut cfg = base.clone();
        cfg.encoder_mask_tokens = mask_tokens;
        tch::manual_seed(0);
        let vs = nn::VarStore::new(device);
        let model = MaskedAutoencoder::new(&vs.root(), &cfg).expect("preset builds");
        let groups = mae::pretrain::pretrain_param_groups(&vs, 0.05, false);
        let mut opt = train_kit::AdamW::new(&vs, groups, train_kit::AdamWConfig::mae_pretrain())
            .expect("optimiser");
        let e = &cfg.encoder;
        let x = Tensor::randn(
            [batch, e.in_chans, e.img_size.0, e.img_size.1],
            (Kind::Float, device),
        );
        let bf16 = device != tch::Device::Cpu;
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
                    let out = train_kit::autocast_bf16(bf16, || model.forward_t(&x, true))
                        .expect("forward");
                    opt.zero_grad();
                    out.loss.backward();
                    opt.step().expect("step");
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
