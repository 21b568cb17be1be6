//! Criterion benches of the workspace (`cargo bench -p benches`). Groups carry the device
//! in their name (`adamw_step/cpu`, `vit_forward/cuda0`).

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;

mod benchmarks;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = benchmarks::adamw::adamw_step, benchmarks::vit::attention, benchmarks::vit::forward, benchmarks::det::nms_cpu, benchmarks::det::coco_eval_cpu, benchmarks::mae::train_step, benchmarks::mae::masking, benchmarks::mae::rand_augment, benchmarks::det_pyramid::all, benchmarks::contrastive::all, benchmarks::smooth_metrics::all, benchmarks::oad::all, benchmarks::anchorfree::all, benchmarks::yolo::all
}
criterion_main!(benches);
