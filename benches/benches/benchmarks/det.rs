//! det-core on the CPU (plain Rust): greedy NMS on 1k and 10k float32 boxes vs the same in f64,
//! batched (per-class) NMS and Gaussian soft-NMS on 1k boxes, a 1000 x 1000 IoU matrix, and the
//! COCO evaluator on a 500-image synthetic set with one worker thread vs all cores. The
//! comparison with pycocotools and torchvision is the side-by-side pair
//! `benches/src/bin/det_bench.rs` + `benches/python/det_bench.py`.

use criterion::{BenchmarkId, Criterion};
use det_core::synth::{coco_like, nms_boxes, SynthSpec};
use det_core::{batched_nms, box_iou, evaluate, nms, soft_nms, CocoParams, SoftNmsConfig};

pub fn nms_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("det_nms/cpu");
    for n in [1_000usize, 10_000] {
        let (boxes, scores) = nms_boxes(n, 7);
        group.bench_function(BenchmarkId::new("greedy_f32", n), |b| {
            b.iter(|| nms(&boxes, &scores, 0.5).expect("nms"))
        });
        let b64: Vec<[f64; 4]> = boxes.iter().map(|b| b.map(f64::from)).collect();
        let s64: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
        group.bench_function(BenchmarkId::new("greedy_f64", n), |b| {
            b.iter(|| nms(&b64, &s64, 0.5).expect("nms"))
        });
        if n == 1_000 {
            let classes: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
            group.bench_function(BenchmarkId::new("batched_10_classes", n), |b| {
                b.iter(|| batched_nms(&boxes, &scores, &classes, 0.5).expect("nms"))
            });
            let cfg = SoftNmsConfig::default();
            group.bench_function(BenchmarkId::new("soft_gaussian_f64", n), |b| {
                b.iter(|| soft_nms(&b64, &s64, &cfg).expect("soft-nms"))
            });
            group.bench_function(BenchmarkId::new("box_iou_1000x1000_f32", n), |b| {
                b.iter(|| box_iou(&boxes, &boxes))
            });
        }
    }
    group.finish();
}

pub fn coco_eval_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("det_coco_eval/cpu");
    let spec = SynthSpec {
        images: 500,
        ground_truth: 3_600,
        ..SynthSpec::coco_sized()
    };
    let (gt, dt) = coco_like(&spec);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, cores] {
        let params = CocoParams {
            threads,
            ..CocoParams::default()
        };
        group.bench_function(BenchmarkId::new("evaluate_500_images", threads), |b| {
            b.iter(|| evaluate(&gt, &dt, &params).expect("evaluate"))
        });
    }
    group.finish();
}
