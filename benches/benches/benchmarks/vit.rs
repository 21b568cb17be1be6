//! ViT on the bench device: attention explicit (`softmax(q k^T * scale) v`) vs fused
//! (`scaled_dot_product_attention`), as a single op on ViT-S/16 shapes and inside the whole
//! model; and a no-grad forward of every preset (patch 16, 224, batch 1).

use benches::{bench_device, device_label, timed};
use criterion::{BenchmarkId, Criterion};
use tch::{nn, Kind, Tensor};
use vit_core::{AttnImpl, ForwardOpts, Size, ViTConfig, VisionTransformer};

pub fn attention(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("vit_attention/{}", device_label(device)));
    // ViT-S/16 at 224, batch 8: 6 heads of 64 over 197 tokens.
    let shape = [8i64, 6, 197, 64];
    let q = Tensor::randn(shape, (Kind::Float, device));
    let k = Tensor::randn(shape, (Kind::Float, device));
    let v = Tensor::randn(shape, (Kind::Float, device));
    let scale = 64f64.powf(-0.5);
    let _guard = tch::no_grad_guard();
    group.bench_function(BenchmarkId::new("explicit", "vit_s16_b8"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                let a = (&q * scale)
                    .matmul(&k.transpose(-2, -1))
                    .softmax(-1, Kind::Float);
                drop(a.matmul(&v));
            })
        })
    });
    group.bench_function(BenchmarkId::new("fused_sdpa", "vit_s16_b8"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                drop(Tensor::scaled_dot_product_attention(
                    &q,
                    &k,
                    &v,
                    None::<Tensor>,
                    0.0,
                    false,
                    None,
                    false,
                ))
            })
        })
    });
    let vs = nn::VarStore::new(device);
    let model = VisionTransformer::new(&vs.root(), &ViTConfig::small(16)).expect("ViT-S/16");
    let x = Tensor::randn([8, 3, 224, 224], (Kind::Float, device));
    for (label, attn) in [
        ("explicit", AttnImpl::Explicit),
        ("fused_sdpa", AttnImpl::Fused),
    ] {
        let opts = ForwardOpts {
            attn,
            ..Default::default()
        };
        group.bench_function(
            BenchmarkId::new(format!("model_{label}"), "vit_s16_b8"),
            |b| {
                b.iter_custom(|n| {
                    timed(device, n, || {
                        drop(model.forward_with(&x, &opts).expect("forward"));
                    })
                })
            },
        );
    }
    group.finish();
}

pub fn forward(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("vit_forward/{}", device_label(device)));
    group.sample_size(10);
    let _guard = tch::no_grad_guard();
    let x = Tensor::randn([1, 3, 224, 224], (Kind::Float, device));
    for size in Size::ALL {
        let vs = nn::VarStore::new(device);
        let model =
            VisionTransformer::new(&vs.root(), &ViTConfig::preset(size, 16)).expect("preset");
        group.bench_function(BenchmarkId::new(size.name(), "p16_224_b1"), |b| {
            b.iter_custom(|n| {
                timed(device, n, || {
                    drop(model.forward_t(&x, false).expect("forward"));
                })
            })
        });
    }
    group.finish();
}
