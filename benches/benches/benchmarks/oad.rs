//! OadTR on the bench device: the per-frame cost of the live path (`OadStream::push`: one
//! projected row into the ring buffer, encoder + decoder on the window) against re-running the
//! batched model on the last window and against a GRU step, at the THUMOS'14 size; and one
//! training step (batch 128, THUMOS'14 configuration; 16 on the CPU to keep the bench short).

// A bench that cannot build its model has nothing to time: a panic is the report.
#![allow(clippy::expect_used)]

use benches::{bench_device, device_label, timed};
use criterion::{BenchmarkId, Criterion};
use tch::{nn, Device, Kind, Tensor};

use oad_transformer::{
    oad_loss, CellKind, OadConfig, OadStream, OadTR, RnnBaseline, RnnConfig, RnnStream,
};

/// Per-frame latency: live vs re-run vs GRU step.
pub fn per_frame(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("oad_per_frame/{}", device_label(device)));
    group.sample_size(20);
    let cfg = OadConfig::thumos_tsn();
    let vs = nn::VarStore::new(device);
    let model = OadTR::new(&vs.root(), &cfg).expect("OadTR THUMOS");
    let feats = Tensor::randn([256, cfg.feature_dim], (Kind::Float, device));
    let mut live = OadStream::new(&model);
    let mut i = 0i64;
    group.bench_function(BenchmarkId::new("oadtr_live_push", "thumos_tsn"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                drop(live.push(&feats.get(i % 256)).expect("push"));
                i += 1;
            })
        })
    });
    let window = Tensor::randn([1, cfg.enc_steps, cfg.feature_dim], (Kind::Float, device));
    group.bench_function(BenchmarkId::new("oadtr_rerun_window", "thumos_tsn"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                drop(tch::no_grad(|| model.forward_t(&window, false)).expect("forward"));
            })
        })
    });
    let gvs = nn::VarStore::new(device);
    let gru = RnnBaseline::new(
        &gvs.root(),
        &RnnConfig {
            feature_dim: cfg.feature_dim,
            hidden_dim: cfg.embed_dim,
            num_classes: cfg.num_classes,
            cell: CellKind::Gru,
            dropout: 0.1,
        },
    )
    .expect("GRU");
    let mut rnn = RnnStream::new(&gru);
    group.bench_function(BenchmarkId::new("gru_step", "thumos_tsn"), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                drop(rnn.push(&feats.get(i % 256)).expect("gru push"));
                i += 1;
            })
        })
    });
    group.finish();
}

/// One training step (forward, OadTR loss, backward, AdamW).
pub fn train_step(c: &mut Criterion) {
    let device = bench_device();
    let mut group = c.benchmark_group(format!("oad_train_step/{}", device_label(device)));
    group.sample_size(10);
    let cfg = OadConfig::thumos_tsn();
    let batch = if device == Device::Cpu { 16 } else { 128 };
    let vs = nn::VarStore::new(device);
    let model = OadTR::new(&vs.root(), &cfg).expect("OadTR THUMOS");
    let (c_, q) = (cfg.num_classes, cfg.num_queries());
    let x = Tensor::randn(
        [batch, cfg.enc_steps, cfg.feature_dim],
        (Kind::Float, device),
    );
    let onehot = |s: &[i64]| {
        Tensor::randint(c_, s, (Kind::Int64, device))
            .one_hot(c_)
            .to_kind(Kind::Float)
    };
    let (cur, fut) = (onehot(&[batch]), onehot(&[batch, q]));
    let mut opt = train_kit::AdamW::new(
        &vs,
        train_kit::ParamGroup::decay_no_decay(&vs, 1e-4),
        train_kit::AdamWConfig {
            lr: 1e-4,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )
    .expect("AdamW");
    group.bench_function(BenchmarkId::new("thumos_tsn", batch), |b| {
        b.iter_custom(|n| {
            timed(device, n, || {
                let out = model.forward_t(&x, true).expect("forward");
                let l = oad_loss(&cfg, &out, &cur, &fut).expect("loss");
                opt.zero_grad();
                l.total.backward();
                opt.step().expect("step");
            })
        })
    });
    group.finish();
}

/// Every oad-transformer bench group.
pub fn all(c: &mut Criterion) {
    per_frame(c);
    train_step(c);
}
