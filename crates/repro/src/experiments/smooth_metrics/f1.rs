//! `smooth.f1-imbalanced`: soft-F1 and sigmoidF1 fine-tuning after cross-entropy against
//! cross-entropy alone, measured in test F1 at the default threshold (probability 0.5), on two
//! real imbalanced tasks: Fashion-MNIST "shirt" against the nine other classes (1:9, the test
//! split's own ratio) and multi-label MNIST digit pairs (two digits side by side, ten labels,
//! each positive in ~19% of the images, macro F1).

use anyhow::Result;
use serde_json::{json, Value};
use tch::{nn, nn::Module, Kind, Tensor};

use losses_smooth_metrics::{self as lsm, Average, Recipe, SigmoidF1};

use super::{
    fit, load, mean, mean_series, mlp, paired, seeds, series, smoke_tolerance, Budget, Paired,
    PAIRED_NOTE,
};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};

const FASHION_SOFT: &str = "Fashion shirt-vs-rest: soft-F1 gain in test F1 (mean over seeds)";
const FASHION_SIGMOID: &str = "Fashion shirt-vs-rest: sigmoidF1 gain in test F1 (mean over seeds)";
const PAIRS_SOFT: &str = "digit pairs: soft-F1 gain in test macro F1 (mean over seeds)";
const PAIRS_SIGMOID: &str = "digit pairs: sigmoidF1 gain in test macro F1 (mean over seeds)";

/// The Fashion-MNIST class taken as positive: 6, "shirt", the one CE classifies worst.
const POSITIVE: i64 = 6;

/// sigmoidF1 as run here: the reference's slope `S = -10` with `E = 0`, so that its decision
/// threshold stays at the default (logit 0) the test F1 is measured at.
const SIGMOID_F1: SigmoidF1 = SigmoidF1 { s: -10.0, e: 0.0 };

pub(super) fn claim() -> Claim {
    Claim {
        id: "smooth.f1-imbalanced",
        claim: "On imbalanced tasks, fine-tuning with a soft F1 (or sigmoidF1) after \
                cross-entropy raises test F1 at the default threshold over cross-entropy alone \
                trained as long",
        source: "Su Jianlin 2019, kexue.fm/archives/6620 (soft F1 = 2 sum tp / sum(t + p), \
                 metric losses for the late phase); Benedict et al. 2021, sigmoidF1, arXiv \
                 2108.10566, Sec. 3",
        paper_value: "F1 rises after the switch (no number for these data)",
        tolerance: Tolerance::new([
            Bound::above(FASHION_SOFT, 0.0).percent(),
            Bound::above(FASHION_SIGMOID, 0.0).percent(),
            Bound::above(PAIRS_SOFT, 0.0).percent(),
            Bound::above(PAIRS_SIGMOID, 0.0).percent(),
        ])
        .note(PAIRED_NOTE),
        smoke_tolerance: smoke_tolerance(),
        full_needs: None,
        run,
    }
}

/// (train, test, cross-entropy epochs, metric epochs) in smoke, quick and full mode.
const BUDGETS: [[usize; 4]; 3] = [
    [2000, 1000, 1, 1],
    [20_000, 10_000, 6, 4],
    [60_000, 10_000, 10, 6],
];

/// One task: flattened inputs and 0/1 targets (`[N]` binary or `[N, C]` multi-label).
struct Task {
    name: &'static str,
    x_train: Tensor,
    t_train: Tensor,
    x_test: Tensor,
    t_test: Tensor,
}

impl Task {
    fn outputs(&self) -> i64 {
        if self.t_train.dim() == 1 {
            1
        } else {
            self.t_train.size()[1]
        }
    }
}

/// The arms of every seed: name and recipe (cross-entropy, then the metric loss).
fn arms(switch: u64) -> [(&'static str, Recipe, Option<bool>); 3] {
    [
        ("cross-entropy", Recipe::CrossEntropy, None),
        (
            "CE then soft F1",
            Recipe::Sequential {
                switch_epoch: switch,
            },
            Some(false),
        ),
        (
            "CE then sigmoidF1",
            Recipe::Sequential {
                switch_epoch: switch,
            },
            Some(true),
        ),
    ]
}

struct TaskResult {
    f1: [Vec<f64>; 3],
    curves: [Vec<Vec<(f64, f64)>>; 3],
}

fn test_f1(model: &nn::Sequential, task: &Task) -> Result<f64> {
    let z = tch::no_grad(|| model.forward(&task.x_test));
    let z = if task.t_test.dim() == 1 {
        z.squeeze_dim(1)
    } else {
        z
    };
    Ok(lsm::counts_binary(&z, &task.t_test)?.f1(Average::Macro))
}

fn run_task(ctx: &Ctx, task: &Task, b: &Budget) -> Result<TaskResult> {
    let mut f1: [Vec<f64>; 3] = Default::default();
    let mut curves: [Vec<Vec<(f64, f64)>>; 3] = Default::default();
    let epochs = b.first_epochs + b.metric_epochs;
    let n = task.x_train.size()[0];
    let d = task.x_train.size()[1];
    for s in 0..seeds(ctx.mode) {
        let seed = ctx.seed + s as u64;
        for (a, (arm, recipe, sigmoid)) in arms(b.first_epochs as u64).into_iter().enumerate() {
            tch::manual_seed(seed as i64);
            let mut vs = nn::VarStore::new(ctx.device);
            let model = mlp(&vs.root(), &[d, 256, task.outputs()]);
            let step = |idx: &Tensor, info: &train_kit::StepInfo| {
                let x = task.x_train.index_select(0, idx);
                let t = task.t_train.index_select(0, idx);
                let z = model.forward(&x);
                let z = if t.dim() == 1 { z.squeeze_dim(1) } else { z };
                let out = recipe.combine(
                    info.epoch,
                    || {
                        Ok(z.binary_cross_entropy_with_logits::<Tensor>(
                            &t,
                            None,
                            None,
                            tch::Reduction::Mean,
                        ))
                    },
                    || match sigmoid {
                        Some(true) => SIGMOID_F1.loss(&z, &t),
                        _ => Ok(lsm::soft_counts_binary(&z, &t, 1.0)?.f1_loss(Average::Macro)),
                    },
                )?;
                Ok(out)
            };
            let eval = |_| -> Result<train_kit::EvalMetrics> {
                Ok(vec![("test_f1".into(), test_f1(&model, task)?)])
            };
            let label = format!("{} {arm} seed {seed}", task.name);
            let dir = format!("runs/{}_{a}_{s}", task.name.replace(' ', "_"));
            let report = fit(
                ctx, &mut vs, n, 256, epochs, 1e-3, seed, &dir, &label, step, eval,
            )?;
            f1[a].push(test_f1(&model, task)?);
            curves[a].push(series(&report, "test_f1"));
        }
    }
    Ok(TaskResult { f1, curves })
}

fn fashion_task(ctx: &Ctx, b: &Budget) -> Result<Task> {
    let data = load(ctx, "fashion-mnist", b.train, b.test)?;
    let flat = |x: &Tensor| x.view([x.size()[0], -1]);
    let pos = |y: &Tensor| y.eq(POSITIVE).to_kind(Kind::Float);
    Ok(Task {
        name: "fashion shirt",
        x_train: flat(&data.train_images),
        t_train: pos(&data.train_labels),
        x_test: flat(&data.test_images),
        t_test: pos(&data.test_labels),
    })
}

/// Two digits side by side (`[N, 28 * 56]`) with the multi-hot of both labels; the second
/// digit of each pair is a fixed permutation of the split (seed 0: the same pairs every run).
fn pairs(images: &Tensor, labels: &Tensor, n: i64) -> (Tensor, Tensor) {
    tch::manual_seed(0);
    let m = images.size()[0];
    let n = n.min(m);
    let first = Tensor::arange(n, (Kind::Int64, images.device()));
    let second = Tensor::randperm(m, (Kind::Int64, tch::Device::Cpu))
        .narrow(0, 0, n)
        .to_device(images.device());
    let x = Tensor::cat(
        &[
            images.index_select(0, &first),
            images.index_select(0, &second),
        ],
        3,
    );
    let hot = |i: &Tensor| labels.index_select(0, i).one_hot(10);
    let t = hot(&first).maximum(&hot(&second)).to_kind(Kind::Float);
    (x.view([n, -1]), t)
}

fn pairs_task(ctx: &Ctx, b: &Budget) -> Result<Task> {
    let data = load(ctx, "mnist", b.train, b.test)?;
    let (x_train, t_train) = pairs(&data.train_images, &data.train_labels, b.train as i64);
    let (x_test, t_test) = pairs(&data.test_images, &data.test_labels, b.test as i64);
    Ok(Task {
        name: "digit pairs",
        x_train,
        t_train,
        x_test,
        t_test,
    })
}

fn summary(r: &TaskResult) -> (Paired, Paired, Value) {
    let soft = paired(&r.f1[1], &r.f1[0]);
    let sig = paired(&r.f1[2], &r.f1[0]);
    let v = json!({
        "test_f1_per_seed": {"cross_entropy": r.f1[0], "ce_then_soft_f1": r.f1[1], "ce_then_sigmoid_f1": r.f1[2]},
        "mean_test_f1": {"cross_entropy": mean(&r.f1[0]), "ce_then_soft_f1": mean(&r.f1[1]), "ce_then_sigmoid_f1": mean(&r.f1[2])},
        "soft_f1_gain": soft.json(), "sigmoid_f1_gain": sig.json(),
    });
    (soft, sig, v)
}

fn plot(ctx: &Ctx, file: &str, title: &str, r: &TaskResult, switch: usize) -> Result<()> {
    let names = ["cross-entropy", "CE then soft F1", "CE then sigmoidF1"];
    let mut s: Vec<train_kit::Series> = (0..3)
        .map(|a| train_kit::Series::new(names[a], mean_series(&r.curves[a], 100.0)))
        .collect();
    let ys: Vec<f64> = s
        .iter()
        .flat_map(|x| x.points.iter().map(|p| p.1))
        .collect();
    let (lo, hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &y| (l.min(y), h.max(y)));
    s.push(train_kit::Series::new(
        "switch to the metric loss",
        vec![(switch as f64, lo), (switch as f64, hi)],
    ));
    train_kit::line_plot(
        &ctx.out_dir.join(file),
        title,
        "epoch",
        "test F1 (%), mean over seeds",
        &s,
    )?;
    Ok(())
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let b = Budget::pick(ctx.mode, BUDGETS);
    let fashion = run_task(ctx, &fashion_task(ctx, &b)?, &b)?;
    let digit_pairs = run_task(ctx, &pairs_task(ctx, &b)?, &b)?;
    let (fs, fg, fj) = summary(&fashion);
    let (ps, pg, pj) = summary(&digit_pairs);
    plot(
        ctx,
        "f1_fashion.png",
        "smooth.f1-imbalanced: Fashion-MNIST shirt vs rest (1:9)",
        &fashion,
        b.first_epochs,
    )?;
    plot(
        ctx,
        "f1_pairs.png",
        "smooth.f1-imbalanced: MNIST digit pairs, macro F1 over 10 labels",
        &digit_pairs,
        b.first_epochs,
    )?;
    Ok(Outcome {
        value: fs.mean,
        value_text: format!(
            "Fashion shirt-vs-rest F1 {:.1}% (CE) -> soft F1 {} / sigmoidF1 {}; digit pairs macro F1 \
             {:.1}% -> soft F1 {} / sigmoidF1 {} ({} seeds, 95% t-intervals)",
            100.0 * mean(&fashion.f1[0]), fs.points(), fg.points(),
            100.0 * mean(&digit_pairs.f1[0]), ps.points(), pg.points(), seeds(ctx.mode)
        ),
        measured: Measured::new()
            .number(FASHION_SOFT, fs.mean)
            .number(FASHION_SIGMOID, fg.mean)
            .number(PAIRS_SOFT, ps.mean)
            .number(PAIRS_SIGMOID, pg.mean),
        skipped: None,
        plots: vec!["f1_fashion.png".into(), "f1_pairs.png".into()],
        details: json!({
            "fashion_shirt_vs_rest": fj, "digit_pairs": pj,
            "recipe": {"model": "MLP 784 (or 1568) -> 256 -> 1 (or 10), ReLU", "optimizer": "AdamW lr 1e-3, no decay, warmup + cosine",
                       "batch": 256, "ce_epochs": b.first_epochs, "metric_epochs": b.metric_epochs,
                       "soft_f1": "sigmoid(z / 1) counts, macro over labels", "sigmoid_f1": {"S": SIGMOID_F1.s, "E": SIGMOID_F1.e},
                       "train": b.train, "pairs": b.train as i64, "test": b.test, "positive_class": POSITIVE},
        }),
    })
}
