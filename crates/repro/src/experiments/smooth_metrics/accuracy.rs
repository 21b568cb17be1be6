//! `smooth.accuracy`: soft-accuracy fine-tuning after cross-entropy against cross-entropy alone
//! on MNIST, and the source's observation measured on the cross-entropy runs: epochs where the
//! test cross-entropy falls while the test accuracy does not rise.

use anyhow::Result;
use serde_json::json;
use tch::{nn, nn::Module, Tensor};

use losses_smooth_metrics::{self as lsm, Recipe, TemperatureSchedule};

use super::{
    fit, load, mean, mean_series, mlp, paired, seeds, series, smoke_tolerance, Budget, PAIRED_NOTE,
};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::experiments::mnist::normalize;

const GAIN: &str = "soft-accuracy fine-tuning: test accuracy gain over CE (mean over seeds)";
const FALLS: &str = "CE runs: epochs where test CE falls while test accuracy does not rise";

/// The soft-accuracy temperature over the metric phase: 1 down to 0.5, geometrically.
const TAU: TemperatureSchedule = TemperatureSchedule::Exponential {
    start: 1.0,
    end: 0.5,
};

pub(super) fn claim() -> Claim {
    Claim {
        id: "smooth.accuracy",
        claim: "Cross-entropy falling does not guarantee accuracy rising (epochs where the loss \
                falls and the accuracy does not rise occur); fine-tuning with the soft accuracy \
                (the mean probability of the true class) after cross-entropy does not lose test \
                accuracy against cross-entropy trained as long",
        source: "Su Jianlin 2019, kexue.fm/archives/6620 (soft accuracy, and 'start with \
                 cross-entropy, finish with the smooth metric')",
        paper_value: "no number (an observation and a recipe)",
        tolerance: Tolerance::new([
            Bound::at_least(GAIN, 0.0).percent(),
            Bound::at_least(FALLS, 1.0),
        ])
        .note(PAIRED_NOTE),
        smoke_tolerance: smoke_tolerance(),
        full_needs: None,
        run,
    }
}

/// (train, test, cross-entropy epochs, metric epochs) in smoke, quick and full mode.
const BUDGETS: [[usize; 4]; 3] = [
    [3000, 2000, 2, 2],
    [10_000, 10_000, 8, 4],
    [60_000, 10_000, 12, 6],
];

const BATCH: usize = 128;

fn run(ctx: &Ctx) -> Result<Outcome> {
    let b = Budget::pick(ctx.mode, BUDGETS);
    let data = load(ctx, "mnist", b.train, b.test)?;
    let flat = |x: &Tensor| normalize(x).view([x.size()[0], -1]);
    let (x_train, y_train) = (flat(&data.train_images), data.train_labels.shallow_clone());
    let (x_test, y_test) = (flat(&data.test_images), data.test_labels.shallow_clone());
    let n = x_train.size()[0];
    let epochs = b.first_epochs + b.metric_epochs;
    let per_epoch = n as u64 / BATCH as u64;
    let switch_iter = b.first_epochs as u64 * per_epoch;
    let metric_iters = b.metric_epochs as u64 * per_epoch;
    let arms = [
        ("cross-entropy", Recipe::CrossEntropy),
        (
            "CE then soft accuracy",
            Recipe::Sequential {
                switch_epoch: b.first_epochs as u64,
            },
        ),
    ];
    let mut acc: [Vec<f64>; 2] = Default::default();
    let mut acc_curves: [Vec<Vec<(f64, f64)>>; 2] = Default::default();
    let mut ce_curves: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut falls = 0usize;
    let mut falls_at = Vec::new();
    for s in 0..seeds(ctx.mode) {
        let seed = ctx.seed + s as u64;
        for (a, (arm, recipe)) in arms.iter().enumerate() {
            tch::manual_seed(seed as i64);
            let mut vs = nn::VarStore::new(ctx.device);
            let model = mlp(&vs.root(), &[784, 128, 10]);
            let step = |idx: &Tensor, info: &train_kit::StepInfo| {
                let z = model.forward(&x_train.index_select(0, idx));
                let y = y_train.index_select(0, idx);
                let tau = TAU.at(info.iter.saturating_sub(switch_iter), metric_iters)?;
                Ok(recipe.combine(
                    info.epoch,
                    || Ok(z.cross_entropy_for_logits(&y)),
                    || lsm::soft_accuracy_loss(&z, &y, tau),
                )?)
            };
            let eval = |_| -> Result<train_kit::EvalMetrics> {
                let z = tch::no_grad(|| model.forward(&x_test));
                Ok(vec![
                    ("test_accuracy".into(), lsm::accuracy(&z, &y_test)?),
                    (
                        "test_ce".into(),
                        z.cross_entropy_for_logits(&y_test).double_value(&[]),
                    ),
                ])
            };
            let label = format!("smooth.accuracy {arm} seed {seed}");
            let report = fit(
                ctx,
                &mut vs,
                n,
                BATCH,
                epochs,
                1e-3,
                seed,
                &format!("runs/{a}_{s}"),
                &label,
                step,
                eval,
            )?;
            let a_series = series(&report, "test_accuracy");
            acc[a].push(a_series.last().map(|p| p.1).unwrap_or(f64::NAN));
            if a == 0 {
                let ce = series(&report, "test_ce");
                for e in 1..ce.len().min(a_series.len()) {
                    if ce[e].1 < ce[e - 1].1 && a_series[e].1 <= a_series[e - 1].1 {
                        falls += 1;
                        falls_at.push(json!({"seed": seed, "epoch": ce[e].0, "test_ce": [ce[e - 1].1, ce[e].1],
                                             "test_accuracy": [a_series[e - 1].1, a_series[e].1]}));
                    }
                }
                ce_curves.push(ce);
            }
            acc_curves[a].push(a_series);
        }
    }
    let gain = paired(&acc[1], &acc[0]);
    let plot = "accuracy.png";
    let mut s: Vec<train_kit::Series> = arms
        .iter()
        .enumerate()
        .map(|(a, (name, _))| {
            train_kit::Series::new(
                format!("{name}: test accuracy (%)"),
                mean_series(&acc_curves[a], 100.0),
            )
        })
        .collect();
    // Test CE of the CE runs on the same axes, scaled to fit (x 100 / 2 of the first epoch's).
    let ce = mean_series(&ce_curves, 1.0);
    let scale = ce.first().map(|p| 100.0 / p.1.max(1e-9)).unwrap_or(1.0);
    s.push(train_kit::Series::new(
        "cross-entropy: test CE (scaled, first epoch = 100)",
        ce.iter().map(|&(e, v)| (e, v * scale)).collect(),
    ));
    train_kit::line_plot(
        &ctx.out_dir.join(plot),
        "smooth.accuracy: MNIST MLP, mean over seeds",
        "epoch",
        "test accuracy (%) / scaled test CE",
        &s,
    )?;
    Ok(Outcome {
        value: gain.mean,
        value_text: format!(
            "test accuracy {:.2}% (CE) vs {:.2}% (CE then soft accuracy): {} over {} seeds; {falls} \
             CE epoch(s) where the test CE fell and the accuracy did not rise",
            100.0 * mean(&acc[0]), 100.0 * mean(&acc[1]), gain.points(), seeds(ctx.mode)
        ),
        measured: Measured::new().number(GAIN, gain.mean).number(FALLS, falls as f64),
        skipped: None,
        plots: vec![plot.into()],
        details: json!({
            "test_accuracy_per_seed": {"cross_entropy": acc[0], "ce_then_soft_accuracy": acc[1]},
            "gain": gain.json(), "loss_falls_accuracy_flat": falls_at,
            "recipe": {"model": "MLP 784 -> 128 -> 10, ReLU", "optimizer": "AdamW lr 1e-3, no decay, warmup + cosine",
                       "batch": BATCH, "ce_epochs": b.first_epochs, "metric_epochs": b.metric_epochs,
                       "soft_accuracy_tau": TAU, "train": b.train, "test": b.test},
        }),
    })
}
