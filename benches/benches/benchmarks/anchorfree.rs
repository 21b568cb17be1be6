//! det-anchorfree (CenterNet) on the bench device: the stride-4 targets of a batch (8 images
//! of 512 px, 20 boxes each, 80 classes: heatmaps with Gaussians, sizes, offsets, indices,
//! masks; made on the CPU as the official data loader does) and the decode of a batch (3x3
//! max-pool peaks + top-100 over 80 classes + size / offset gathers on 128 x 128 maps).

// A bench that cannot build its inputs has nothing to time.
#![allow(clippy::expect_used)]

use benches::{bench_device, device_label, sync};
use criterion::{BenchmarkId, Criterion};
use det_anchorfree::centernet::{decode, CenterNetTargets, DecodeConfig, TargetConfig};
use tch::{Device, Kind, Tensor};

fn targets(c: &mut Criterion) {
    let mut group = c.benchmark_group("centernet_targets/cpu");
    group.sample_size(20);
    tch::manual_seed(0);
    let (b, m, size) = (8, 20, 512.0);
    let xy = Tensor::rand([b, m, 2], (Kind::Float, Device::Cpu)) * (size * 0.8);
    let wh = Tensor::rand([b, m, 2], (Kind::Float, Device::Cpu)) * 80.0 + 8.0;
    let boxes = Tensor::cat(&[&xy, &(&xy + &wh)], 2);
    let classes = Tensor::randint(80, [b, m], (Kind::Int64, Device::Cpu));
    let cfg = TargetConfig::new(80);
    group.bench_function(BenchmarkId::new("batch", "8x512_20boxes_80cls"), |bch| {
        bch.iter(|| {
            CenterNetTargets::from_padded(&boxes, &classes, (512, 512), &cfg, Device::Cpu)
                .expect("targets")
        })
    });
    group.finish();
}

fn decode_batch(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("centernet_decode/{}", device_label(device)));
    group.sample_size(20);
    tch::manual_seed(0);
    let heat = Tensor::rand([8, 80, 128, 128], (Kind::Float, device));
    let wh = Tensor::rand([8, 2, 128, 128], (Kind::Float, device)) * 20.0;
    let reg = Tensor::rand([8, 2, 128, 128], (Kind::Float, device));
    let cfg = DecodeConfig::default();
    let _guard = tch::no_grad_guard();
    group.bench_function(BenchmarkId::new("top100", "8x80x128x128"), |bch| {
        bch.iter(|| {
            let d = decode(&heat, &wh, Some(&reg), &cfg).expect("decode");
            sync(device);
            d
        })
    });
    group.finish();
}

/// Every anchorfree group.
pub fn all(c: &mut Criterion) {
    targets(c);
    decode_batch(c);
}
