//! The Trainer: exact resume mid-epoch for AdamW, SGD (Nesterov) and LARS, with accumulation,
//! clipping and dropout (torch's generator in use); the NaN guard names the step and leaves a
//! loadable checkpoint; evaluation metrics land in the log and the report; the curves plot;
//! data parallel over ranks as threads ([`train_kit::collective::ThreadGroup`]) takes the steps
//! of one process with the ranks' batches together, and resumes exactly.

use std::path::Path;

use datasets::{Loader, LoaderConfig};
use tch::{nn, nn::Module, Device, Kind, Tensor};
use train_kit::{
    AdamW, AdamWConfig, Checkpoint, Lars, LarsConfig, MetricsLog, Optimizer, RunOptions, Schedule,
    Seeding, Sgd, SgdConfig, TrainError, TrainReport, Trainer, TrainerConfig,
};

fn data() -> (Tensor, Tensor) {
    tch::manual_seed(1);
    let x = Tensor::randn([60, 8], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(3, [60], (Kind::Int64, Device::Cpu));
    (x, y)
}

fn loader(x: &Tensor, y: &Tensor) -> Loader {
    let cfg = LoaderConfig {
        batch_size: 6,
        seed: 4,
        prefetch: 0,
        ..Default::default()
    };
    Loader::new(x, y, cfg).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Opt {
    AdamW,
    Sgd,
    Lars,
}

fn optimizer(kind: Opt, vs: &nn::VarStore) -> Box<dyn Optimizer> {
    let groups = train_kit::ParamGroup::decay_no_decay(vs, 0.01);
    match kind {
        Opt::AdamW => Box::new(AdamW::new(vs, groups, AdamWConfig::default()).unwrap()),
        Opt::Sgd => {
            let cfg = SgdConfig {
                nesterov: true,
                ..Default::default()
            };
            Box::new(Sgd::new(vs, groups, cfg).unwrap())
        }
        Opt::Lars => Box::new(Lars::new(vs, groups, LarsConfig::default()).unwrap()),
    }
}

fn config() -> TrainerConfig {
    TrainerConfig {
        epochs: 3,
        schedule: Schedule::WarmupCosine {
            base_lr: 0.05,
            min_lr: 1e-4,
            warmup_steps: 4,
            total_steps: 30,
        },
        accum_iter: 2,
        clip_grad: Some(0.5),
        seeding: Seeding::PerStep(9),
        checkpoint_every: 1,
        log_every: 1,
        ..Default::default()
    }
}

/// A two-layer net with dropout, trained in `dir` (resumed if a checkpoint is there); the
/// step returns NaN at micro-iteration `nan_at`.
fn train(
    kind: Opt,
    dir: &Path,
    stop_after: Option<u64>,
    nan_at: Option<u64>,
) -> (nn::VarStore, Result<TrainReport, TrainError>) {
    tch::manual_seed(3);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let fc1 = nn::linear(&root / "fc1", 8, 16, Default::default());
    let fc2 = nn::linear(&root / "fc2", 16, 3, Default::default());
    let mut opt = optimizer(kind, &vs);
    let (x, y) = data();
    let run = RunOptions {
        dir: Some(dir.to_path_buf()),
        stop_after,
        ..Default::default()
    };
    let cfg = config();
    let step = |b: datasets::Batch, info: &train_kit::StepInfo| -> Result<Tensor, TrainError> {
        let h = fc1.forward(&b.images).relu().dropout(0.3, true);
        let loss = fc2.forward(&h).cross_entropy_for_logits(&b.labels);
        Ok(if Some(info.iter) == nan_at {
            loss * f64::NAN
        } else {
            loss
        })
    };
    let eval = |epoch: u64| -> Result<train_kit::EvalMetrics, TrainError> {
        let w = fc2.ws.abs().mean(Kind::Double).double_value(&[]);
        Ok(vec![
            ("mean_abs_w".into(), w),
            ("epoch_seen".into(), epoch as f64),
        ])
    };
    let r =
        Trainer::new(&cfg, &run)
            .unwrap()
            .fit(&mut vs, opt.as_mut(), &loader(&x, &y), step, eval);
    (vs, r)
}

fn assert_same(a: &nn::VarStore, b: &nn::VarStore) {
    let (va, vb) = (a.variables(), b.variables());
    assert_eq!(va.len(), vb.len());
    for (name, t) in &va {
        assert!(t.equal(&vb[name]), "{name} differs");
    }
}

#[test]
fn resume_is_exact_for_adamw_sgd_and_lars() {
    let _lock = test_support::rng_lock();
    for kind in [Opt::AdamW, Opt::Sgd, Opt::Lars] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (straight, full) = train(kind, a.path(), None, None);
        let full = full.unwrap();
        // 10 batches per epoch, 30 micro-iterations, 15 optimiser steps (accum 2).
        assert_eq!((full.iters, full.optimizer_steps), (30, 15), "{kind:?}");
        assert_eq!(full.epochs.len(), 3);
        // Stop mid-epoch 0, then mid-epoch 2, then finish.
        let (_, first) = train(kind, b.path(), Some(4), None);
        assert!(first.unwrap().stopped_early);
        let (_, second) = train(kind, b.path(), Some(18), None);
        let second = second.unwrap();
        assert_eq!((second.resumed_at, second.first_epoch), (Some(4), 0));
        assert!(second.stopped_early);
        let (resumed, third) = train(kind, b.path(), None, None);
        let third = third.unwrap();
        assert_eq!(third.resumed_at, Some(22), "{kind:?}");
        assert_eq!(third.epochs, full.epochs, "{kind:?}: history differs");
        assert_same(&straight, &resumed);
    }
}

#[test]
fn a_nan_names_its_step_and_the_last_checkpoint_loads() {
    let _lock = test_support::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = train(Opt::Sgd, dir.path(), None, Some(13));
    let err = r.unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { step: 13, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("step 13"), "{err}");
    // The last checkpoint is the one after the optimiser step ending micro-iteration 11.
    let meta = Checkpoint::read_meta(dir.path()).unwrap().unwrap();
    assert_eq!(meta.step, 12);
    // It loads, and a run without the NaN goes on from it to the straight run's weights.
    let (resumed, r) = train(Opt::Sgd, dir.path(), None, None);
    assert_eq!(r.unwrap().resumed_at, Some(12));
    let other = tempfile::tempdir().unwrap();
    let (straight, _) = train(Opt::Sgd, other.path(), None, None);
    assert_same(&straight, &resumed);
}

#[test]
fn evaluations_land_in_the_log_and_the_report() {
    let _lock = test_support::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = train(Opt::AdamW, dir.path(), None, None);
    let r = r.unwrap();
    let seen = r.eval_series("epoch_seen");
    assert_eq!(seen, vec![(1, 0.0), (2, 1.0), (3, 2.0)]);
    let rows = MetricsLog::read(dir.path().join("metrics.jsonl")).unwrap();
    let epoch_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.get("epoch_loss").is_some())
        .collect();
    assert_eq!(epoch_rows.len(), 3);
    assert!(epoch_rows
        .iter()
        .all(|r| r["mean_abs_w"].as_f64().is_some()));
    let iter_rows = rows.iter().filter(|r| r.get("iter").is_some()).count();
    assert_eq!(iter_rows, 30);
    let png = dir.path().join("curves.png");
    train_kit::training_curves_png(&[("run", &dir.path().join("metrics.jsonl"))], &png, "t")
        .unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1800, 560));
}

#[test]
fn bad_configs_are_typed_errors() {
    let run = RunOptions::default();
    for cfg in [
        TrainerConfig {
            epochs: 0,
            ..Default::default()
        },
        TrainerConfig {
            accum_iter: 0,
            ..Default::default()
        },
        TrainerConfig {
            clip_grad: Some(f64::NAN),
            ..Default::default()
        },
    ] {
        let err = Trainer::new(&cfg, &run).unwrap_err();
        assert!(matches!(err, TrainError::InvalidConfig(_)), "{err}");
    }
}

/// `world` ranks of batch `batch` (threads over a [`ThreadGroup`]; `world` 1 is a plain run),
/// each rank's model drawn from its own seed so that only rank 0's broadcast makes them agree.
/// No dropout: the ranks' steps and the one process's must see the same numbers.
fn dp_train(
    n: i64,
    kind: Opt,
    world: usize,
    batch: usize,
    accum: usize,
    dir: &Path,
    stop_after: Option<u64>,
) -> Vec<(nn::VarStore, TrainReport)> {
    use train_kit::collective::ThreadGroup;
    let (x, y) = {
        tch::manual_seed(1);
        let x = Tensor::randn([n, 8], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(3, [n], (Kind::Int64, Device::Cpu));
        (x, y)
    };
    let groups = ThreadGroup::new(world).unwrap();
    let stores: Vec<(nn::VarStore, nn::Linear, nn::Linear)> = (0..world)
        .map(|r| {
            tch::manual_seed(3 + r as i64);
            let vs = nn::VarStore::new(Device::Cpu);
            let fc1 = nn::linear(&vs.root() / "fc1", 8, 16, Default::default());
            let fc2 = nn::linear(&vs.root() / "fc2", 16, 3, Default::default());
            (vs, fc1, fc2)
        })
        .collect();
    let cfg = TrainerConfig {
        epochs: 2,
        schedule: Schedule::WarmupCosine {
            base_lr: 0.05,
            min_lr: 1e-4,
            warmup_steps: 2,
            total_steps: 16,
        },
        accum_iter: accum,
        clip_grad: Some(1.0),
        seeding: Seeding::Caller,
        checkpoint_every: 1,
        log_every: 1,
        ..Default::default()
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .into_iter()
            .zip(groups)
            .map(|((mut vs, fc1, fc2), group)| {
                let (x, y, cfg) = (x.copy(), y.copy(), cfg.clone());
                let dir = dir.to_path_buf();
                scope.spawn(move || {
                    let mut opt = optimizer(kind, &vs);
                    let lcfg = LoaderConfig {
                        batch_size: batch,
                        seed: 4,
                        prefetch: 0,
                        ..Default::default()
                    };
                    let data = Loader::new(&x, &y, lcfg).unwrap();
                    let run = RunOptions {
                        dir: Some(dir),
                        stop_after,
                        ..Default::default()
                    };
                    let step = |b: datasets::Batch, _: &train_kit::StepInfo| {
                        let h = fc1.forward(&b.images).relu();
                        Ok::<_, TrainError>(fc2.forward(&h).cross_entropy_for_logits(&b.labels))
                    };
                    let eval = |_: u64| -> Result<train_kit::EvalMetrics, TrainError> {
                        let w = fc2.ws.abs().mean(Kind::Double).double_value(&[]);
                        Ok(vec![("mean_abs_w".into(), w)])
                    };
                    let report = Trainer::new(&cfg, &run)
                        .unwrap()
                        .with_collective(&group)
                        .fit(&mut vs, opt.as_mut(), &data, step, eval)
                        .unwrap();
                    (vs, report)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn max_diff(a: &nn::VarStore, b: &nn::VarStore) -> f64 {
    let (va, vb) = (a.variables(), b.variables());
    assert_eq!(va.len(), vb.len());
    va.iter()
        .map(|(name, t)| (t - &vb[name]).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

#[test]
fn data_parallel_takes_the_steps_of_one_process_with_the_ranks_batches_together() {
    let _lock = test_support::rng_lock();
    for (kind, accum) in [
        (Opt::AdamW, 1),
        (Opt::AdamW, 2),
        (Opt::Sgd, 1),
        (Opt::Sgd, 2),
    ] {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let single = dp_train(64, kind, 1, 8, accum, one.path(), None);
        let ranks = dp_train(64, kind, 2, 4, accum, two.path(), None);
        let (vs1, r1) = &single[0];
        // 64 items: 8 steps of 8 per epoch in one process, 8 of 4 + 4 on two ranks.
        assert_eq!(ranks[0].1.iters, 16, "{kind:?} accum {accum}");
        for (rank, (vs, r)) in ranks.iter().enumerate() {
            let d = max_diff(vs1, vs);
            assert!(
                d < 1e-6,
                "{kind:?} accum {accum} rank {rank}: weights differ by {d}"
            );
            assert_eq!(r.optimizer_steps, r1.optimizer_steps);
            for (a, b) in r.epochs.iter().zip(&r1.epochs) {
                assert!(
                    (a.loss - b.loss).abs() < 1e-6,
                    "{kind:?} {accum}: {a:?} vs {b:?}"
                );
                // Rank 0 evaluated; every rank has its metrics.
                assert_eq!(a.eval.len(), 1);
                assert!((a.eval[0].1 - b.eval[0].1).abs() < 1e-6);
            }
        }
        // Rank 0 alone wrote the log, with the mean loss of the ranks' micro-batches.
        let rows1 = MetricsLog::read(one.path().join("metrics.jsonl")).unwrap();
        let rows2 = MetricsLog::read(two.path().join("metrics.jsonl")).unwrap();
        assert_eq!(rows1.len(), rows2.len());
        for (a, b) in rows1
            .iter()
            .zip(&rows2)
            .filter(|(a, _)| a.get("iter").is_some())
        {
            let (la, lb) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
            assert!(
                (la - lb).abs() < 1e-6,
                "{kind:?} {accum}: logged {lb} vs {la}"
            );
        }
    }
}

#[test]
fn a_data_parallel_run_stopped_and_resumed_equals_an_uninterrupted_one() {
    let _lock = test_support::rng_lock();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let straight = dp_train(64, Opt::AdamW, 2, 4, 2, a.path(), None);
    // Stop mid-epoch 0 (after 3 optimiser steps: local micro-step 6), then finish.
    let first = dp_train(64, Opt::AdamW, 2, 4, 2, b.path(), Some(6));
    assert!(first[0].1.stopped_early);
    let resumed = dp_train(64, Opt::AdamW, 2, 4, 2, b.path(), None);
    assert_eq!(
        resumed[1].1.resumed_at,
        Some(6),
        "rank 1 learns the start from rank 0"
    );
    for r in 0..2 {
        assert_same(&straight[r].0, &resumed[r].0);
        assert_eq!(straight[r].1.epochs, resumed[r].1.epochs);
    }
}

#[test]
fn ranks_whose_shards_differ_by_a_batch_take_the_same_steps() {
    let _lock = test_support::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    // 60 items in batches of 4: 15 batches, 8 for rank 0 and 7 for rank 1; each takes 7.
    let ranks = dp_train(60, Opt::Sgd, 2, 4, 1, dir.path(), None);
    assert_eq!((ranks[0].1.iters, ranks[1].1.iters), (14, 14));
    assert_same(&ranks[0].0, &ranks[1].0);
}
