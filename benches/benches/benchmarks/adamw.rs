//! One AdamW step: train-kit's flat-buffer `AdamW` vs its per-parameter loop
//! `PerParamAdamW` vs tch's `nn::AdamW` (libtorch C++ `torch::optim::AdamW`), on a ViT-Tiny
//! parameter set (d=192, 12 blocks, ~5.7M params in 152 tensors) and on 2000 tensors of 256
//! elements. `flat_unsegmented` is the flat optimiser with one kernel batch per buffer (its
//! GPU mode) instead of the CPU default of cache-sized segments. Gradients are fixed once;
//! each iteration is `step()` only. Timed with `iter_custom` and a CUDA synchronisation
//! around the loop when on a GPU.

use benches::{
    bench_device, device_label, fill_grads, many_small_store, num_params, timed, vit_like_store,
};
use criterion::{BenchmarkId, Criterion};
use tch::nn::{self, OptimizerConfig};
use tch::Device;
use train_kit::{AdamW, AdamWConfig, ParamGroup, PerParamAdamW};

pub fn adamw_step(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("adamw_step/{}", device_label(device)));
    let cfg = AdamWConfig::mae_pretrain();
    type Maker = fn(Device) -> nn::VarStore;
    let sets: [(&str, Maker); 2] = [
        ("vit_tiny_d192x12", |d| vit_like_store(d, 192, 12)),
        ("small_2000x256", |d| many_small_store(d, 2000, 256)),
    ];
    for (label, make) in sets {
        let vs = make(device);
        eprintln!(
            "{label}: {} tensors, {} params",
            vs.trainable_variables().len(),
            num_params(&vs)
        );
        fill_grads(&vs);
        let mut opt = AdamW::new(&vs, ParamGroup::decay_no_decay(&vs, cfg.weight_decay), cfg)
            .expect("flat AdamW");
        group.bench_function(BenchmarkId::new("flat", label), |b| {
            b.iter_custom(|iters| timed(device, iters, || opt.step().expect("step")))
        });
        // The same without cache-sized segments (one kernel batch per buffer, the GPU mode).
        opt.set_segment_elems(0);
        group.bench_function(BenchmarkId::new("flat_unsegmented", label), |b| {
            b.iter_custom(|iters| timed(device, iters, || opt.step().expect("step")))
        });
        drop(opt);

        let vs = make(device);
        fill_grads(&vs);
        let mut opt =
            PerParamAdamW::new(&vs, ParamGroup::decay_no_decay(&vs, cfg.weight_decay), cfg)
                .expect("PerParamAdamW");
        group.bench_function(BenchmarkId::new("per_param", label), |b| {
            b.iter_custom(|iters| timed(device, iters, || opt.step().expect("step")))
        });
        drop(opt);

        let vs = make(device);
        fill_grads(&vs);
        let mut opt = nn::AdamW::default().build(&vs, cfg.lr).expect("tch AdamW");
        group.bench_function(BenchmarkId::new("tch_nn_adamw", label), |b| {
            b.iter_custom(|iters| timed(device, iters, || opt.step()))
        });
    }
    group.finish();
}
