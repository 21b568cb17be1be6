//! Pre-training and fine-tuning moved onto train-kit's `Trainer`: each gives, bit for bit, the
//! weights of the loop as it was before the move (written out here as the oracle: the
//! per-step seeding, the lr per micro-iteration, accumulation, clipping, zeroed gradients at
//! each epoch start; checkpoints, logs and progress left out, they touch no number).

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use datasets::Loader;
use mae::augment::{
    mixup_cutmix, normalize, random_erasing, random_resized_crop, soft_target_cross_entropy,
};
use mae::{FinetuneConfig, MaskedAutoencoder, PretrainConfig, RunOptions};
use tch::{nn, Device, Kind, Tensor};
use train_kit::{AdamW, AdamWConfig, Schedule};

mod common;

fn data(n: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let x = Tensor::rand([n, 1, 16, 16], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
    (x, y)
}

fn step_opt(opt: &mut AdamW, clip: Option<f64>) {
    match clip {
        Some(max) => {
            opt.step_with_clip(max).unwrap();
        }
        None => opt.step().unwrap(),
    }
    opt.zero_grad();
}

/// `mae::pretrain`'s loop before the move.
fn pretrain_before(
    model: &MaskedAutoencoder,
    vs: &nn::VarStore,
    loader: &Loader,
    cfg: &PretrainConfig,
) {
    let ipe = loader.batches_per_epoch() as u64;
    let base_lr = mae::scaled_lr(cfg.blr, cfg.lr, cfg.effective_batch());
    let schedule =
        Schedule::warmup_cosine_epochs(base_lr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs, ipe);
    let groups = mae::pretrain::pretrain_param_groups(vs, cfg.weight_decay, cfg.decay_tokens);
    let opt_cfg = AdamWConfig {
        lr: base_lr,
        beta1: cfg.betas.0,
        beta2: cfg.betas.1,
        eps: 1e-8,
        weight_decay: cfg.weight_decay,
    };
    let mut opt = AdamW::new(vs, groups, opt_cfg).unwrap();
    let size = model.config().encoder.img_size;
    let accum = cfg.accum_iter as u64;
    for epoch in 0..cfg.epochs as u64 {
        opt.zero_grad();
        for (i, batch) in (0..).zip(loader.epoch_from(epoch, 0)) {
            let it = epoch * ipe + i;
            train_kit::seed_step(cfg.seed, it);
            if i % accum == 0 {
                opt.set_lr(schedule.lr_at(it as usize));
            }
            let x = mae::pretrain::pretrain_view(&batch.unwrap().images, size, cfg).unwrap();
            let out = model.forward_t(&x, true).unwrap();
            train_kit::check_finite(&out.loss, it).unwrap();
            (&out.loss / cfg.accum_iter as f64).backward();
            if (i + 1) % accum == 0 {
                step_opt(&mut opt, cfg.clip_grad);
            }
        }
    }
}

#[test]
fn pretraining_on_the_trainer_equals_the_loop_before_the_move() {
    let _lock = test_support::rng_lock();
    let (x, y) = data(40, 1);
    let cfg = PretrainConfig {
        epochs: 2,
        warmup_epochs: 0.5,
        batch_size: 4,
        accum_iter: 2,
        blr: 1e-3,
        clip_grad: Some(0.5),
        mean: vec![0.5],
        std: vec![0.25],
        seed: 17,
        ..Default::default()
    };
    let build = || {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = MaskedAutoencoder::new(&vs.root(), &common::tiny(16, 1)).unwrap();
        (vs, model)
    };
    let (vs_before, model_before) = build();
    pretrain_before(
        &model_before,
        &vs_before,
        &common::loader(&x, &y, 4, 5),
        &cfg,
    );
    let (mut vs_after, model_after) = build();
    let dir = tempfile::tempdir().unwrap();
    let run = RunOptions {
        dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let report = mae::pretrain(
        &model_after,
        &mut vs_after,
        &common::loader(&x, &y, 4, 5),
        &cfg,
        &run,
    )
    .unwrap();
    assert_eq!((report.iters, report.optimizer_steps), (20, 10));
    common::assert_same_weights(&vs_before, &vs_after);
}

/// `mae::finetune`'s loop before the move (RandAugment off, to keep the oracle short; the
/// resume test in training.rs runs with it on).
fn finetune_before(
    vit: &vit_core::VisionTransformer,
    vs: &nn::VarStore,
    loader: &Loader,
    cfg: &FinetuneConfig,
) {
    let vcfg = vit.config();
    let ipe = loader.batches_per_epoch() as u64;
    let base_lr = mae::scaled_lr(cfg.blr, cfg.lr, cfg.batch_size * cfg.accum_iter);
    let schedule =
        Schedule::warmup_cosine_epochs(base_lr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs, ipe);
    let groups = mae::param_groups_lrd(vs, cfg.weight_decay, cfg.layer_decay, vcfg.depth as usize);
    let opt_cfg = AdamWConfig {
        lr: base_lr,
        weight_decay: cfg.weight_decay,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(vs, groups, opt_cfg).unwrap();
    let accum = cfg.accum_iter as u64;
    for epoch in 0..cfg.epochs as u64 {
        opt.zero_grad();
        for (i, batch) in (0..).zip(loader.epoch_from(epoch, 0)) {
            let batch = batch.unwrap();
            let it = epoch * ipe + i;
            train_kit::seed_step(cfg.seed, it);
            if i % accum == 0 {
                opt.set_lr(schedule.lr_at(it as usize));
            }
            let x = random_resized_crop(&batch.images, vcfg.img_size, &cfg.crop).unwrap();
            let x = normalize(&x, &cfg.mean, &cfg.std).unwrap();
            let (x, targets, _) =
                mixup_cutmix(&x, &batch.labels, vcfg.num_classes, &cfg.mixup).unwrap();
            let x = random_erasing(&x, cfg.reprob).unwrap();
            let loss =
                soft_target_cross_entropy(&vit.forward_t(&x, true).unwrap(), &targets).unwrap();
            train_kit::check_finite(&loss, it).unwrap();
            (&loss / cfg.accum_iter as f64).backward();
            if (i + 1) % accum == 0 {
                step_opt(&mut opt, cfg.clip_grad);
            }
        }
    }
}

#[test]
fn finetuning_on_the_trainer_equals_the_loop_before_the_move() {
    let _lock = test_support::rng_lock();
    let (x, y) = data(48, 3);
    let (tx, ty) = data(16, 4);
    let cfg = FinetuneConfig {
        epochs: 2,
        warmup_epochs: 0.5,
        batch_size: 8,
        accum_iter: 2,
        lr: Some(1e-3),
        layer_decay: 0.75,
        rand_augment: None,
        clip_grad: Some(1.0),
        mean: vec![0.5],
        std: vec![0.25],
        seed: 23,
        ..Default::default()
    };
    let vcfg = mae::classifier_config(&common::tiny(16, 1), 2, true, 0.1);
    let build = || {
        tch::manual_seed(6);
        let vs = nn::VarStore::new(Device::Cpu);
        let vit = vit_core::VisionTransformer::new(&vs.root(), &vcfg).unwrap();
        mae::finetune::init_head(&vs, 2e-5);
        (vs, vit)
    };
    let (vs_before, vit_before) = build();
    finetune_before(&vit_before, &vs_before, &common::loader(&x, &y, 8, 5), &cfg);
    let (mut vs_after, vit_after) = build();
    let eval = mae::EvalSet::Tensors {
        images: &tx,
        labels: &ty,
    };
    let report = mae::finetune(
        &vit_after,
        &mut vs_after,
        &common::loader(&x, &y, 8, 5),
        &eval,
        &cfg,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(report.accuracy.len(), 2);
    common::assert_same_weights(&vs_before, &vs_after);
}
