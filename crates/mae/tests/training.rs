//! The recipes on tiny models: exact resume of pre-training, the NaN guard, layer-wise lr decay
//! for ViT-B and ViT-L, fine-tuning and probing that learn a separable toy problem.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mae::{
    layer_id_for_vit, lrd_spec, param_groups_lrd, pretrain, FinetuneConfig, MaeConfig, MaeError,
    MaskedAutoencoder, PretrainConfig, ProbeConfig, RunOptions,
};
use tch::{nn, Device, Kind, Tensor};

mod common;

fn tiny() -> MaeConfig {
    common::tiny(16, 1)
}

fn recipe() -> PretrainConfig {
    PretrainConfig {
        epochs: 2,
        warmup_epochs: 1.0,
        batch_size: 8,
        accum_iter: 2,
        blr: 1e-3,
        mean: vec![0.5],
        std: vec![0.25],
        ..Default::default()
    }
}

/// Two classes: horizontal or vertical stripes (period 4, random phase) plus noise; pixels
/// in [0, 1]. Patch-local, so average pooling sees it.
fn toy(n: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let labels = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
    let phase = Tensor::randint(4, [n, 1, 1, 1], (Kind::Float, Device::Cpu));
    let idx = Tensor::arange(16, (Kind::Float, Device::Cpu));
    let rows = (idx.view([1, 1, 16, 1]) + &phase)
        .remainder(4.0)
        .lt(2.0)
        .to_kind(Kind::Float);
    let cols = (idx.view([1, 1, 1, 16]) + &phase)
        .remainder(4.0)
        .lt(2.0)
        .to_kind(Kind::Float);
    let lab = labels.view([n, 1, 1, 1]).to_kind(Kind::Float);
    let x: Tensor = rows * (lab.ones_like() - &lab) + cols * &lab;
    let noise = Tensor::rand([n, 1, 16, 16], (Kind::Float, Device::Cpu));
    ((x * 0.7 + noise * 0.3).contiguous(), labels)
}

fn train(dir: &std::path::Path, stop_after: Option<u64>) -> (nn::VarStore, mae::PretrainReport) {
    tch::manual_seed(11);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = MaskedAutoencoder::new(&vs.root(), &tiny()).unwrap();
    let (x, y) = toy(64, 5);
    let run = RunOptions {
        dir: Some(dir.to_path_buf()),
        stop_after,
        ..Default::default()
    };
    let report = pretrain(
        &model,
        &mut vs,
        &common::loader(&x, &y, 8, 3),
        &recipe(),
        &run,
    )
    .unwrap();
    (vs, report)
}

#[test]
fn pretraining_resumes_exactly() {
    let _lock = test_support::rng_lock();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (straight, full) = train(a.path(), None);
    assert_eq!(
        (full.iters, full.optimizer_steps, full.epoch_loss.len()),
        (16, 8, 2)
    );
    assert!(full.epoch_loss.iter().all(|l| l.is_finite()));
    // lr = blr * 8 * 2 / 256.
    test_support::assert_close(
        full.base_lr,
        1e-3 * 16.0 / 256.0,
        test_support::Tol::abs(1e-15),
    );
    let (_, first) = train(b.path(), Some(6));
    assert!(first.stopped_early && first.iters == 6);
    let (resumed, second) = train(b.path(), None);
    assert_eq!((second.resumed_at, second.iters), (Some(6), 10));
    assert_eq!(second.epoch_loss, full.epoch_loss);
    common::assert_same_weights(&straight, &resumed);
    assert!(b.path().join("latest.json").is_file() && b.path().join("metrics.jsonl").is_file());
}

#[test]
fn nan_loss_stops_pretraining_with_a_typed_error() {
    let _lock = test_support::rng_lock();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = MaskedAutoencoder::new(&vs.root(), &tiny()).unwrap();
    let x = Tensor::full([16, 1, 16, 16], f64::NAN, (Kind::Float, Device::Cpu));
    let y = Tensor::zeros([16], (Kind::Int64, Device::Cpu));
    let err = pretrain(
        &model,
        &mut vs,
        &common::loader(&x, &y, 8, 3),
        &recipe(),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, MaeError::NonFinite { step: 0, .. }), "{err}");
    let bad_batch = common::loader(&x, &y, 4, 3);
    let err = pretrain(
        &model,
        &mut vs,
        &bad_batch,
        &recipe(),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("batch size 4"), "{err}");
}

#[test]
fn layer_decay_scales_follow_the_formula_for_b_and_l() {
    // Building a model draws from torch's generator, which a concurrent trainer reseeds.
    let _lock = test_support::rng_lock();
    for (depth, decay) in [(12usize, 0.65f64), (24, 0.75)] {
        let n = depth + 1;
        assert_eq!(layer_id_for_vit("cls_token", n), 0);
        assert_eq!(layer_id_for_vit("patch_embed.proj.weight", n), 0);
        assert_eq!(layer_id_for_vit("blocks.0.norm1.weight", n), 1);
        assert_eq!(
            layer_id_for_vit(&format!("blocks.{}.mlp.fc2.bias", depth - 1), n),
            depth
        );
        assert_eq!(layer_id_for_vit("fc_norm.weight", n), n);
        let scale = |name: &str, ndim| lrd_spec(name, ndim, 0.05, decay, depth);
        let close = |a: f64, b: f64| assert!((a - b).abs() <= 1e-15 * b.max(1e-300), "{a} vs {b}");
        close(scale("pos_embed", 3).lr_scale, decay.powi(n as i32));
        close(
            scale("blocks.4.attn.qkv.weight", 2).lr_scale,
            decay.powi((n - 5) as i32),
        );
        close(scale("head.weight", 2).lr_scale, 1.0);
        assert_eq!(scale("pos_embed", 3).weight_decay, 0.0);
        assert_eq!(scale("cls_token", 3).weight_decay, 0.0);
        assert_eq!(scale("blocks.4.attn.qkv.bias", 1).weight_decay, 0.0);
        assert_eq!(scale("blocks.4.attn.qkv.weight", 2).weight_decay, 0.05);
        assert_eq!(scale("head.weight", 2).weight_decay, 0.05);
    }
    // ViT-B with layer decay 0.65: the embedding learns at 0.65^13 = 0.0037 of the head's lr.
    assert!(
        (lrd_spec("cls_token", 3, 0.05, 0.65, 12).lr_scale - 0.003_697_205_891_018_715).abs()
            < 1e-15
    );
    // On a built model: depth + 2 lr levels, each split into decay / no decay.
    let cfg = mae::classifier_config(&tiny(), 2, true, 0.0);
    let vs = nn::VarStore::new(Device::Cpu);
    let _vit = vit_core::VisionTransformer::new(&vs.root(), &cfg).unwrap();
    let groups = param_groups_lrd(&vs, 0.05, 0.75, 2);
    let mut scales: Vec<f64> = groups.iter().map(|g| g.spec.lr_scale).collect();
    scales.sort_by(f64::total_cmp);
    scales.dedup();
    assert_eq!(scales.len(), 4);
    let total: usize = groups.iter().map(|g| g.names.len()).sum();
    assert_eq!(total, vs.trainable_variables().len());
}

#[test]
fn finetuning_and_probing_learn_a_toy_problem() {
    let _lock = test_support::rng_lock();
    let (x, y) = toy(256, 7);
    let (tx, ty) = toy(128, 8);
    let mae_cfg = tiny();
    let vcfg = mae::classifier_config(&mae_cfg, 2, true, 0.1);
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let vit = vit_core::VisionTransformer::new(&vs.root(), &vcfg).unwrap();
    mae::finetune::init_head(&vs, 2e-5);
    let cfg = FinetuneConfig {
        epochs: 6,
        warmup_epochs: 1.0,
        batch_size: 16,
        accum_iter: 1,
        lr: Some(5e-3),
        layer_decay: 0.75,
        mean: vec![0.5],
        std: vec![0.25],
        crop: mae::augment::CropConfig {
            scale: (0.8, 1.0),
            ..Default::default()
        },
        ..Default::default()
    };
    let eval = mae::EvalSet::Tensors {
        images: &tx,
        labels: &ty,
    };
    let r = mae::finetune(
        &vit,
        &mut vs,
        &common::loader(&x, &y, 16, 3),
        &eval,
        &cfg,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(r.accuracy.len(), 6);
    let acc = r.accuracy.last().unwrap().1;
    assert!(acc > 0.9, "fine-tuned accuracy {acc}: {r:?}");

    // Features of an encoder without head: fc_norm of the mean patch token.
    let pcfg = mae::classifier_config(&mae_cfg, 0, true, 0.0);
    let ps = nn::VarStore::new(Device::Cpu);
    let enc = vit_core::VisionTransformer::new(&ps.root(), &pcfg).unwrap();
    let f = mae::extract_features(&enc, &x, &[0.5], &[0.25], 64, Device::Cpu).unwrap();
    assert_eq!(f.size(), [256, 32]);
    let mean = f
        .mean_dim(-1, false, None::<Kind>)
        .abs()
        .max()
        .double_value(&[]);
    assert!(mean < 1e-4, "fc_norm output has mean {mean}");
    assert!(mae::extract_features(&vit, &x, &[0.5], &[0.25], 64, Device::Cpu).is_err());

    // The probe (BatchNorm without affine + LARS) on features separable along one direction.
    let feats = |labels: &Tensor| {
        let n = labels.size()[0];
        Tensor::randn([n, 32], (Kind::Float, Device::Cpu))
            + labels.to_kind(Kind::Float).view([n, 1]) * 1.5
    };
    let (f, tf) = (feats(&y), feats(&ty));
    let probe = ProbeConfig {
        epochs: 20,
        warmup_epochs: 2.0,
        batch_size: 32,
        // LARS steps are `lr * trust (0.001)` relative to the weight norm: the official lr is
        // 6.4 (blr 0.1 at batch 16384).
        lr: Some(5.0),
        ..Default::default()
    };
    let r = mae::linear_probe((&f, &y), (&tf, &ty), 2, &probe).unwrap();
    assert!(r.final_accuracy > 0.95, "probe accuracy {r:?}");
    assert!(mae::linear_probe((&f, &ty), (&tf, &ty), 2, &probe).is_err());
}

/// Fine-tuning with every random part on (crops, flip, RandAugment, mixup / CutMix, erasing,
/// drop path) and accumulation, stopped mid-epoch, mid-run checkpoints every 2 steps.
fn try_finetune_run(
    dir: &std::path::Path,
    stop_after: Option<u64>,
) -> mae::Result<(nn::VarStore, mae::FinetuneReport)> {
    tch::manual_seed(21);
    let (x, y) = toy(96, 9);
    let (tx, ty) = toy(32, 10);
    let vcfg = mae::classifier_config(&tiny(), 2, true, 0.1);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let vit = vit_core::VisionTransformer::new(&vs.root(), &vcfg).unwrap();
    mae::finetune::init_head(&vs, 2e-5);
    let cfg = FinetuneConfig {
        epochs: 2,
        warmup_epochs: 0.5,
        batch_size: 8,
        accum_iter: 2,
        lr: Some(1e-3),
        layer_decay: 0.75,
        mean: vec![0.5],
        std: vec![0.25],
        checkpoint_every: 2,
        ..Default::default()
    };
    let eval = mae::EvalSet::Tensors {
        images: &tx,
        labels: &ty,
    };
    let run = RunOptions {
        dir: Some(dir.to_path_buf()),
        stop_after,
        ..Default::default()
    };
    let r = mae::finetune(
        &vit,
        &mut vs,
        &common::loader(&x, &y, 8, 3),
        &eval,
        &cfg,
        &run,
    )?;
    Ok((vs, r))
}

fn finetune_run(
    dir: &std::path::Path,
    stop_after: Option<u64>,
) -> (nn::VarStore, mae::FinetuneReport) {
    try_finetune_run(dir, stop_after).unwrap()
}

#[test]
fn finetuning_resumes_exactly_mid_epoch() {
    let _lock = test_support::rng_lock();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (straight, full) = finetune_run(a.path(), None);
    assert_eq!((full.epoch_loss.len(), full.accuracy.len()), (2, 2));
    // 12 batches per epoch: stop after 6 micro-iterations (3 optimiser steps) of epoch 0, then
    // after 16 more (into epoch 1), then finish.
    let (_, first) = finetune_run(b.path(), Some(6));
    assert!(first.stopped_early && first.epoch_loss.is_empty());
    let (_, second) = finetune_run(b.path(), Some(16));
    assert!(second.stopped_early);
    assert_eq!(second.resumed_at, Some(6));
    assert_eq!(second.epoch_loss, full.epoch_loss[..1].to_vec());
    let (resumed, third) = finetune_run(b.path(), None);
    assert_eq!(third.resumed_at, Some(22));
    assert!(!third.stopped_early);
    assert_eq!(third.epoch_loss, full.epoch_loss);
    assert_eq!(third.accuracy, full.accuracy);
    common::assert_same_weights(&straight, &resumed);
    // A pre-training checkpoint is not taken for a fine-tuning one.
    let c = tempfile::tempdir().unwrap();
    train(c.path(), Some(2));
    let err = try_finetune_run(c.path(), None).unwrap_err().to_string();
    assert!(err.contains("missing from checkpoint"), "{err}");
}
