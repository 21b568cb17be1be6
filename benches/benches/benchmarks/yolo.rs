//! yolo on the bench device: the paper's loss on a batch (targets placed on the 7x7 grid from
//! padded boxes, forward and backward through the loss only), and decoding + class-wise NMS of
//! a batch of 7x7x30 predictions.

// A bench that cannot build its inputs has nothing to time.
#![allow(clippy::expect_used)]

use benches::{bench_device, device_label, timed};
use criterion::{BenchmarkId, Criterion};
use tch::{Device, Kind, Tensor};
use yolo::{decode, grid_targets, yolo_loss, DecodeConfig, LossConfig};

/// 16 images of 448 px with 12 random boxes each (two of them padding).
fn batch(device: Device) -> (Tensor, Tensor) {
    tch::manual_seed(0);
    let xy = Tensor::rand([16, 12, 2], (Kind::Float, device)) * 380.0;
    let wh = Tensor::rand([16, 12, 2], (Kind::Float, device)) * 60.0 + 8.0;
    let boxes = Tensor::cat(&[&xy, &(&xy + &wh)], 2);
    let classes = Tensor::randint(20, [16, 12], (Kind::Int64, device));
    let _ = classes.narrow(1, 10, 2).fill_(-1);
    (boxes, classes)
}

fn loss(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("yolo_loss/{}", device_label(device)));
    let (boxes, classes) = batch(device);
    let pred = Tensor::rand([16, 7, 7, 30], (Kind::Float, device)).set_requires_grad(true);
    let cfg = LossConfig::paper();
    group.bench_function(BenchmarkId::new("paper_fwd_bwd", "16x7x7x30"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                let t = grid_targets(&boxes, &classes, (448, 448), 7, 20, 0.0, Kind::Float)
                    .expect("targets");
                let l = yolo_loss(&pred, &t, 2, &cfg).expect("loss");
                l.total.backward();
            })
        })
    });
    group.finish();
}

fn decode_nms(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("yolo_decode_nms/{}", device_label(device)));
    tch::manual_seed(0);
    let pred = Tensor::rand([16, 7, 7, 30], (Kind::Float, device));
    let cfg = DecodeConfig::default();
    group.bench_function(BenchmarkId::new("thresh_0.005", "16x7x7x30"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                drop(decode(&pred, 2, (448, 448), &cfg).expect("decode"));
            })
        })
    });
    group.finish();
}

/// Every yolo group.
pub fn all(c: &mut Criterion) {
    loss(c);
    decode_nms(c);
}
