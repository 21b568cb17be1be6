//! losses-smooth-metrics claims: smooth surrogates of the metric, used after cross-entropy (the
//! recipe of Su Jianlin, kexue.fm/archives/6620), against cross-entropy alone, on real data,
//! each arm run over several seeds and compared seed by seed (paired differences with a 95%
//! t-interval).
//!
//! - `smooth.f1-imbalanced` ([`f1`]): Fashion-MNIST one class against the rest at 1:9 and
//!   multi-label MNIST digit pairs; soft F1 and sigmoidF1 fine-tuning after cross-entropy.
//! - `smooth.accuracy` ([`accuracy`]): soft-accuracy fine-tuning on MNIST, and the epochs of
//!   cross-entropy training where the test loss falls while the test accuracy does not rise.
//! - `smooth.iou` ([`iou`]): Lovasz-Softmax fine-tuning of a small FCN on MNIST digit masks.
//! - `smooth.ap` ([`ap`]): Smooth-AP fine-tuning of an embedding after a contrastive loss on
//!   Fashion-MNIST retrieval.
//!
//! Every arm of a seed starts from the same initialisation and sees the same batches; the
//! metric arms switch loss at the same epoch through [`losses_smooth_metrics::Recipe`].

mod accuracy;
mod ap;
mod f1;
mod iou;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tch::{nn, Kind, Tensor};

use crate::claim::{Claim, Ctx, Tolerance};
use crate::report::Mode;

/// The claims of this module, in report order.
pub fn claims() -> Vec<Claim> {
    vec![f1::claim(), accuracy::claim(), iou::claim(), ap::claim()]
}

/// What every claim here says of its tolerance.
const PAIRED_NOTE: &str = "paired over seeds, same init and batches; 95% intervals in the details";

/// The smoke tolerance of every claim here: none, the recipe only has to run.
fn smoke_tolerance() -> Option<Tolerance> {
    Some(Tolerance::new([]).note("none: tiny subsets and 2 seeds, the recipe only has to run"))
}

/// A claim's data and epochs in one mode: training and test items, epochs of the first loss
/// (cross-entropy; the contrastive loss for `smooth.ap`) and of the metric loss after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    train: usize,
    test: usize,
    first_epochs: usize,
    metric_epochs: usize,
}

impl Budget {
    /// The row of `table` ((train, test, first epochs, metric epochs) for smoke, quick and
    /// full) for `mode`.
    fn pick(mode: Mode, table: [[usize; 4]; 3]) -> Self {
        let [train, test, first_epochs, metric_epochs] = match mode {
            Mode::Smoke => table[0],
            Mode::Quick => table[1],
            Mode::Full => table[2],
        };
        Self {
            train,
            test,
            first_epochs,
            metric_epochs,
        }
    }
}

/// How many seeds a mode runs.
fn seeds(mode: Mode) -> usize {
    match mode {
        Mode::Smoke => 2,
        Mode::Quick => 5,
        Mode::Full => 10,
    }
}

/// The two-sided 95% Student t quantile with `n - 1` degrees of freedom.
fn t_quantile(n: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match n {
        0 | 1 => f64::INFINITY,
        n if n - 2 < T.len() => T[n - 2],
        _ => 1.96,
    }
}

/// The mean of paired differences `a - b` over seeds with its 95% t-interval.
#[derive(Debug, Clone, PartialEq)]
struct Paired {
    mean: f64,
    lo: f64,
    hi: f64,
    diffs: Vec<f64>,
}

fn paired(a: &[f64], b: &[f64]) -> Paired {
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = diffs.len();
    let mean = diffs.iter().sum::<f64>() / n.max(1) as f64;
    let var = if n > 1 {
        diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let half = t_quantile(n) * (var / n.max(1) as f64).sqrt();
    Paired {
        mean,
        lo: mean - half,
        hi: mean + half,
        diffs,
    }
}

impl Paired {
    fn json(&self) -> Value {
        json!({"mean": self.mean, "ci95": [self.lo, self.hi], "per_seed": self.diffs})
    }

    /// `+1.23 [-0.4, +2.9] points` for fractions shown in percent.
    fn points(&self) -> String {
        format!(
            "{:+.2} [{:+.2}, {:+.2}] points",
            100.0 * self.mean,
            100.0 * self.lo,
            100.0 * self.hi
        )
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// A ReLU MLP `dims[0] -> ... -> dims[last]` (no activation after the last layer).
fn mlp(p: &nn::Path, dims: &[i64]) -> nn::Sequential {
    let mut s = nn::seq();
    for (i, w) in dims.windows(2).enumerate() {
        s = s.add(nn::linear(
            p / format!("fc{i}"),
            w[0],
            w[1],
            Default::default(),
        ));
        if i + 2 < dims.len() {
            s = s.add_fn(|x| x.relu());
        }
    }
    s
}

/// One arm's training run: `epochs` over `n_train` items in batches of `batch` (the last,
/// incomplete one dropped), AdamW at `lr` with a warmup + cosine schedule, torch's generator
/// seeded by the caller before the model is built; the step closure receives the batch's item
/// indices and returns the loss, `eval` runs after every epoch.
#[allow(clippy::too_many_arguments)]
fn fit(
    ctx: &Ctx,
    vs: &mut nn::VarStore,
    n_train: i64,
    batch: usize,
    epochs: usize,
    lr: f64,
    seed: u64,
    dir: &str,
    label: &str,
    mut step: impl FnMut(&Tensor, &train_kit::StepInfo) -> Result<train_kit::StepOutput>,
    eval: impl FnMut(u64) -> Result<train_kit::EvalMetrics>,
) -> Result<train_kit::TrainReport> {
    let idx = Tensor::arange(n_train, (Kind::Int64, tch::Device::Cpu));
    let loader = datasets::loader::Loader::new(
        &idx,
        &idx,
        datasets::loader::LoaderConfig {
            batch_size: batch,
            seed,
            drop_last: true,
            prefetch: 0,
            ..Default::default()
        },
    )?;
    let per_epoch = loader.batches_per_epoch();
    let cfg = train_kit::TrainerConfig {
        epochs,
        schedule: train_kit::Schedule::WarmupCosine {
            base_lr: lr,
            min_lr: lr / 100.0,
            warmup_steps: per_epoch / 2,
            total_steps: per_epoch * epochs,
        },
        seeding: train_kit::Seeding::Caller,
        log_every: 50,
        eval_every: 1,
        recipe: json!({"lr": lr, "batch": batch, "epochs": epochs, "seed": seed}),
        ..Default::default()
    };
    let run = train_kit::RunOptions {
        dir: Some(super::fresh_dir(&ctx.out_dir.join(dir))?),
        progress: true,
        label: label.to_owned(),
        stop_after: None,
    };
    let groups = train_kit::ParamGroup::single(vs, 0.0);
    let mut opt = train_kit::AdamW::new(
        vs,
        groups,
        train_kit::AdamWConfig {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let device = ctx.device;
    let step =
        |b: datasets::Batch, info: &train_kit::StepInfo| step(&b.labels.to_device(device), info);
    train_kit::Trainer::new(&cfg, &run)?
        .fit(vs, &mut opt, &loader, step, eval)
        .with_context(|| format!("training {label}"))
}

/// The per-epoch series `key` of a report, as `(epoch, value)`.
fn series(report: &train_kit::TrainReport, key: &str) -> Vec<(f64, f64)> {
    report
        .eval_series(key)
        .into_iter()
        .map(|(e, v)| (e as f64, v))
        .collect()
}

/// The mean over seeds of several runs' per-epoch series (same epochs), scaled.
fn mean_series(runs: &[Vec<(f64, f64)>], scale: f64) -> Vec<(f64, f64)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let v: Vec<f64> = runs.iter().filter_map(|r| r.get(i).map(|p| p.1)).collect();
            (first[i].0, scale * mean(&v))
        })
        .collect()
}

/// MNIST or Fashion-MNIST from the cache (or `--data-root`), `train` / `test` images as
/// `[N, 1, 28, 28]` floats in [0, 1] on the device.
fn load(ctx: &Ctx, name: &str, train: usize, test: usize) -> Result<datasets::mnist::Mnist> {
    let data = datasets::mnist::load(name, ctx.data_root.as_deref())
        .with_context(|| format!("loading {name}"))?;
    Ok(data
        .subset_train(train)?
        .subset_test(test)?
        .f_to_device(ctx.device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_interval_by_hand() {
        let p = paired(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0]);
        assert!((p.mean - 2.0).abs() < 1e-12);
        // sd 1, n 3: half width 4.303 / sqrt 3.
        assert!((p.hi - 2.0 - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(t_quantile(1).is_infinite());
    }
}
