//! `basics.bias`: a bias is a learnable threshold.
//!
//! Rosenblatt's perceptron fires when `w.x > T`. Moving the threshold to the left gives
//! `w.x + b > 0` with `b = -T`, and `b` becomes a weight like the others. A hand-picked `T` cannot
//! fit every data set: `T = 0` (no bias) only draws lines through the origin, and a fixed `T > 0`
//! only lines that leave the origin on the negative side.
//!
//! (a) `basics.bias`: two linearly separable 2-D sets whose separating lines miss the origin, one
//!     with the origin on each side. The perceptron with a learned bias reaches 100% on both; the
//!     best line through the origin (found exactly by an angle sweep, not by training) cannot.
//! (b) `basics.bias.mnist`: a linear softmax classifier on real MNIST with and without bias.

use anyhow::{ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tch::{nn, nn::Module, Device, Kind, Tensor};

use super::mnist::{train_classifier, Recipe, Split};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::plot::{decision_lines_png, Line2d, Panel};
use crate::report::Mode;

// The measurements the tolerances below check.
const WITH_BIAS: &str = "training accuracy with a learned bias, worst set";
const ORIGIN_LINE: &str = "best line through the origin, best set";
const MNIST_WITH_BIAS: &str = "test accuracy with bias";

/// `basics.bias`: the perceptron with and without a learnable bias on 2-D sets whose
/// separating line misses the origin.
pub fn perceptron() -> Claim {
    Claim {
        id: "basics.bias",
        claim: "A perceptron with a learnable bias reaches 100% training accuracy on linearly \
                separable 2-D data whose separating line misses the origin; without a bias \
                (threshold fixed at 0) no line can",
        source: "Rosenblatt 1958; the threshold-as-bias rewrite w.x > T <=> w.x + b > 0, b = -T",
        paper_value: "100% with bias; < 100% without",
        tolerance: Tolerance::new([
            Bound::equals(WITH_BIAS, 1.0).percent(),
            Bound::below(ORIGIN_LINE, 1.0).percent(),
        ])
        .note("exact"),
        smoke_tolerance: None,
        full_needs: None,
        run: run_perceptron,
    }
}

/// `basics.bias.mnist`: a linear softmax classifier on real MNIST with and without a bias.
pub fn mnist() -> Claim {
    Claim {
        id: "basics.bias.mnist",
        claim:
            "A linear classifier on MNIST reaches the published linear-classifier test accuracy; \
                with and without a bias",
        source: "LeCun et al. 1998, Gradient-based learning applied to document recognition, \
                 Table/Fig. 9: linear classifier (1-layer NN) 12.0% test error",
        paper_value: "88.0% test accuracy",
        tolerance: Tolerance::new([Bound::at_least(MNIST_WITH_BIAS, 0.88).percent()])
            .note("one-sided: softmax + AdamW is a stronger recipe"),
        smoke_tolerance: None,
        full_needs: None,
        run: run_mnist,
    }
}

// ---------------------------------------------------------------- (a) the perceptron

/// A separable 2-D set: label +1 where `normal . x > threshold`, with no point closer than
/// `margin` to the line.
struct Separable {
    name: &'static str,
    normal: [f64; 2],
    threshold: f64,
    xs: Vec<[f64; 2]>,
    ys: Vec<f64>,
}

impl Separable {
    fn sample(
        name: &'static str,
        angle_deg: f64,
        threshold: f64,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let a = angle_deg.to_radians();
        let normal = [a.cos(), a.sin()];
        let margin = 0.1;
        let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
        while xs.len() < n {
            let x = [rng.gen_range(-4.0..4.0), rng.gen_range(-4.0..4.0)];
            let s = normal[0] * x[0] + normal[1] * x[1] - threshold;
            if s.abs() < margin {
                continue;
            }
            xs.push(x);
            ys.push(if s > 0.0 { 1.0 } else { -1.0 });
        }
        Separable {
            name,
            normal,
            threshold,
            xs,
            ys,
        }
    }

    fn tensors(&self, device: Device) -> (Tensor, Tensor) {
        let flat: Vec<f64> = self.xs.iter().flat_map(|x| x.iter().copied()).collect();
        let x = Tensor::from_slice(&flat)
            .view([self.xs.len() as i64, 2])
            .to_device(device);
        let y = Tensor::from_slice(&self.ys).to_device(device);
        (x, y)
    }
}

/// How the threshold is treated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Threshold {
    /// `b` learned with the weights.
    Learned,
    /// `b = -t` fixed by hand (`t = 0` is "no bias").
    Fixed(f64),
}

struct PerceptronFit {
    w: [f64; 2],
    b: f64,
    /// Training accuracy of the final weights.
    accuracy: f64,
    /// Best training accuracy seen at the end of any epoch (Gallant's pocket).
    pocket_accuracy: f64,
    epochs: usize,
    converged: bool,
}

/// Rosenblatt's rule on the tensors: on a mistake `w += y x` (and `b += y` when learned).
fn fit_perceptron(
    x: &Tensor,
    y: &Tensor,
    threshold: Threshold,
    max_epochs: usize,
    seed: u64,
) -> Result<PerceptronFit> {
    let n = x.size()[0];
    let opts = (Kind::Double, x.device());
    let mut w = Tensor::zeros([2], opts);
    let mut b = match threshold {
        Threshold::Learned => 0.0,
        Threshold::Fixed(t) => -t,
    };
    let accuracy_of = |w: &Tensor, b: f64| -> Result<f64> {
        let pred = (x.mv(w) + b).gt(0.0).to_kind(Kind::Double) * 2.0 - 1.0;
        Ok(pred
            .eq_tensor(y)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]))
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut pocket, mut epochs, mut converged) = (0.0f64, 0, false);
    for epoch in 0..max_epochs {
        epochs = epoch + 1;
        let mut order: Vec<i64> = (0..n).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let mut mistakes = 0;
        for &i in &order {
            let (xi, yi) = (x.get(i), y.get(i).double_value(&[]));
            let s = xi.dot(&w).double_value(&[]) + b;
            if yi * s <= 0.0 {
                mistakes += 1;
                w += &xi * yi;
                if threshold == Threshold::Learned {
                    b += yi;
                }
            }
        }
        pocket = pocket.max(accuracy_of(&w, b)?);
        if mistakes == 0 {
            converged = true;
            break;
        }
    }
    let wv = [w.double_value(&[0]), w.double_value(&[1])];
    Ok(PerceptronFit {
        w: wv,
        b,
        accuracy: accuracy_of(&w, b)?,
        pocket_accuracy: pocket,
        epochs,
        converged,
    })
}

/// The best training accuracy of any line through the origin, `sign(u . x)` over all directions
/// `u`: exact, by visiting every interval between the angles where some point changes side.
fn best_origin_line_accuracy(xs: &[[f64; 2]], ys: &[f64]) -> (f64, [f64; 2]) {
    use std::f64::consts::PI;
    let mut angles: Vec<f64> = xs
        .iter()
        .flat_map(|x| {
            let a = x[1].atan2(x[0]);
            [a + PI / 2.0, a - PI / 2.0]
        })
        .map(|a| a.rem_euclid(2.0 * PI))
        .collect();
    angles.sort_by(f64::total_cmp);
    let mut best = (0.0, [1.0, 0.0]);
    for (k, a) in angles.iter().enumerate() {
        let next = if k + 1 < angles.len() {
            angles[k + 1]
        } else {
            angles[0] + 2.0 * PI
        };
        let mid = 0.5 * (a + next);
        let u = [mid.cos(), mid.sin()];
        let correct = xs
            .iter()
            .zip(ys)
            .filter(|(x, y)| (u[0] * x[0] + u[1] * x[1]) * **y > 0.0)
            .count();
        let acc = correct as f64 / xs.len() as f64;
        if acc > best.0 {
            best = (acc, u);
        }
    }
    best
}

fn run_perceptron(ctx: &Ctx) -> Result<Outcome> {
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
    let n = if ctx.mode == Mode::Smoke { 100 } else { 400 };
    // A: the origin lies on the negative side (T > 0); B: on the positive side (T < 0).
    let sets = [
        Separable::sample("A: 0.8x + 0.6y > 1.5", 36.87, 1.5, n, &mut rng),
        Separable::sample("B: -0.6x + 0.8y > -1.2", 126.87, -1.2, n, &mut rng),
    ];
    let max_epochs = if ctx.mode == Mode::Smoke { 100 } else { 1000 };
    let hand_picked = 1.0;
    let mut details = Vec::new();
    let mut panels = Vec::new();
    let (mut min_bias_acc, mut max_origin_acc) = (1.0f64, 0.0f64);
    let mut thresholds = Vec::new();
    for (k, set) in sets.iter().enumerate() {
        let (x, y) = set.tensors(ctx.device);
        let seed = ctx.seed + k as u64;
        let learned = fit_perceptron(&x, &y, Threshold::Learned, max_epochs, seed)?;
        let no_bias = fit_perceptron(&x, &y, Threshold::Fixed(0.0), max_epochs, seed)?;
        let fixed = fit_perceptron(&x, &y, Threshold::Fixed(hand_picked), max_epochs, seed)?;
        let (origin_best, origin_u) = best_origin_line_accuracy(&set.xs, &set.ys);
        let norm = learned.w[0].hypot(learned.w[1]);
        ensure!(
            norm > 0.0,
            "perceptron on {} learned a zero weight vector",
            set.name
        );
        // The learned line w.x + b = 0 lies at signed distance -b/|w| along w/|w|.
        let learned_threshold = -learned.b / norm;
        let cos = (learned.w[0] * set.normal[0] + learned.w[1] * set.normal[1]) / norm;
        thresholds.push(format!("{learned_threshold:.2} vs {}", set.threshold));
        min_bias_acc = min_bias_acc.min(learned.accuracy);
        max_origin_acc = max_origin_acc.max(origin_best);
        details.push(json!({
            "set": set.name,
            "points": set.xs.len(),
            "true_threshold": set.threshold,
            "learned_threshold_minus_b_over_norm_w": learned_threshold,
            "angle_to_true_normal_deg": cos.clamp(-1.0, 1.0).acos().to_degrees(),
            "with_bias": fit_json(&learned),
            "no_bias_perceptron": fit_json(&no_bias),
            "no_bias_best_possible_accuracy": origin_best,
            "hand_picked_threshold": hand_picked,
            "hand_picked_perceptron": fit_json(&fixed),
        }));
        panels.push(Panel {
            title: set.name.to_owned(),
            points: set
                .xs
                .iter()
                .zip(&set.ys)
                .map(|(x, y)| (x[0], x[1], *y > 0.0))
                .collect(),
            lines: vec![
                Line2d::new("true line", set.normal, -set.threshold, 0),
                Line2d::new(
                    &format!("learned bias ({:.1}%)", 100.0 * learned.accuracy),
                    learned.w,
                    learned.b,
                    1,
                ),
                Line2d::new(
                    &format!("best without bias ({:.1}%)", 100.0 * origin_best),
                    origin_u,
                    0.0,
                    2,
                ),
                Line2d::new(
                    &format!("fixed T = {hand_picked} ({:.1}%)", 100.0 * fixed.accuracy),
                    fixed.w,
                    fixed.b,
                    3,
                ),
            ],
        });
    }
    let plot = "decision_lines.png";
    decision_lines_png(&ctx.out_dir.join(plot), &panels).context("plotting decision lines")?;
    Ok(Outcome {
        value: min_bias_acc,
        value_text: format!(
            "{:.1}% with bias; best without {:.1}%; learned -b/|w| {}",
            100.0 * min_bias_acc,
            100.0 * max_origin_acc,
            thresholds.join(", ")
        ),
        measured: Measured::new()
            .number(WITH_BIAS, min_bias_acc)
            .number(ORIGIN_LINE, max_origin_acc),
        skipped: None,
        plots: vec![plot.to_owned()],
        details: json!({ "sets": details, "max_epochs": max_epochs }),
    })
}

fn fit_json(f: &PerceptronFit) -> serde_json::Value {
    json!({
        "w": f.w, "b": f.b, "accuracy": f.accuracy, "pocket_accuracy": f.pocket_accuracy,
        "epochs": f.epochs, "converged": f.converged,
    })
}

// ---------------------------------------------------------------- (b) MNIST

/// Test accuracy of a linear softmax classifier `x W^T (+ b)` on raw [0,1] pixels, after each
/// epoch, trained with the claims' shared MNIST loop ([`train_classifier`]).
///
/// Raw pixels on purpose: after mean/std normalisation the always-black border pixels become a
/// constant non-zero input, which is a bias in disguise.
fn train_linear(
    ctx: &Ctx,
    data: &datasets::mnist::Mnist,
    bias: bool,
    epochs: usize,
    tag: &str,
) -> Result<(nn::VarStore, Vec<f64>)> {
    tch::manual_seed(ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let cfg = nn::LinearConfig {
        bias,
        ..Default::default()
    };
    let fc = nn::linear(vs.root() / "fc", 784, 10, cfg);
    let groups = train_kit::ParamGroup::single(&vs, 0.0);
    let mut opt = train_kit::AdamW::new(
        &vs,
        groups,
        train_kit::AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let (train_x, test_x) = (
        data.train_images.flatten(1, -1),
        data.test_images.flatten(1, -1),
    );
    let recipe = Recipe {
        epochs,
        batch_size: 128,
        drop_last: false,
        base_lr: 2e-3,
        min_lr: 1e-5,
        warmup_steps: |per_epoch, _| per_epoch / 4,
        log_every: 50,
        eval_every: 1,
        eval_batch: None,
        dir: format!("train_{tag}"),
        label: format!("mnist linear {tag}"),
    };
    let train = Split {
        images: &train_x,
        labels: &data.train_labels,
    };
    let test = Split {
        images: &test_x,
        labels: &data.test_labels,
    };
    let forward = |x: &Tensor, _train: bool| -> Result<Tensor> { Ok(fc.forward(x)) };
    let fit = train_classifier(ctx, &mut vs, &mut opt, train, test, &recipe, forward)?;
    Ok((vs, fit.test_accuracy))
}

fn run_mnist(ctx: &Ctx) -> Result<Outcome> {
    let data = datasets::mnist::load("mnist", ctx.data_root.as_deref()).context("loading MNIST")?;
    let (data, epochs) = match ctx.mode {
        Mode::Smoke => (data.subset_train(5000)?, 1),
        Mode::Quick => (data, 10),
        Mode::Full => (data, 30),
    };
    // On the device once, shared by both runs.
    let data = data.f_to_device(ctx.device)?;
    let (_, with_bias) = train_linear(ctx, &data, true, epochs, "bias")?;
    let (_, without) = train_linear(ctx, &data, false, epochs, "no_bias")?;
    let (acc_b, acc_nb) = (
        *with_bias.last().unwrap_or(&0.0),
        *without.last().unwrap_or(&0.0),
    );
    let curve = |accs: &[f64]| {
        accs.iter()
            .enumerate()
            .map(|(e, a)| ((e + 1) as f64, 100.0 * a))
            .collect::<Vec<_>>()
    };
    let plot = "test_accuracy.png";
    train_kit::line_plot(
        &ctx.out_dir.join(plot),
        "Linear softmax classifier on MNIST",
        "epoch",
        "test accuracy (%)",
        &[
            train_kit::Series {
                name: "with bias".to_owned(),
                points: curve(&with_bias),
            },
            train_kit::Series {
                name: "without bias".to_owned(),
                points: curve(&without),
            },
            train_kit::Series {
                name: "LeCun 1998 linear (88.0%)".to_owned(),
                points: vec![(1.0, 88.0), (epochs as f64, 88.0)],
            },
        ],
    )?;
    let curves = "training_curves.png";
    train_kit::training_curves_png(
        &[
            (
                "with bias",
                &ctx.out_dir.join("train_bias").join("metrics.jsonl"),
            ),
            (
                "without bias",
                &ctx.out_dir.join("train_no_bias").join("metrics.jsonl"),
            ),
        ],
        &ctx.out_dir.join(curves),
        "basics.bias.mnist: linear classifier on MNIST",
    )?;
    Ok(Outcome {
        value: acc_b,
        value_text: format!(
            "{:.2}% with bias; {:.2}% without",
            100.0 * acc_b,
            100.0 * acc_nb
        ),
        measured: Measured::new().number(MNIST_WITH_BIAS, acc_b),
        skipped: None,
        plots: vec![plot.to_owned(), curves.to_owned()],
        details: json!({
            "test_accuracy_with_bias": acc_b,
            "test_accuracy_without_bias": acc_nb,
            "bias_gain_points": 100.0 * (acc_b - acc_nb),
            "per_epoch_with_bias": with_bias,
            "per_epoch_without_bias": without,
            "train_examples": data.train_images.size()[0],
            "test_examples": data.test_images.size()[0],
            "epochs": epochs,
            "recipe": "raw [0,1] pixels, Linear(784,10), AdamW lr 2e-3 warmup+cosine, wd 0, batch 128",
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::moved::{assert_same_weights, ctx, synthetic_mnist};

    /// `basics.bias.mnist`'s loop as it was before it moved onto train-kit's Trainer (the
    /// oracle of the move; its metrics log and bar are left out).
    fn train_linear_before(
        ctx: &Ctx,
        data: &datasets::mnist::Mnist,
        bias: bool,
        epochs: usize,
    ) -> Result<(nn::VarStore, Vec<f64>)> {
        tch::manual_seed(ctx.seed as i64);
        let vs = nn::VarStore::new(ctx.device);
        let cfg = nn::LinearConfig {
            bias,
            ..Default::default()
        };
        let fc = nn::linear(vs.root() / "fc", 784, 10, cfg);
        let groups = train_kit::ParamGroup::single(&vs, 0.0);
        let adamw = train_kit::AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = train_kit::AdamW::new(&vs, groups, adamw)?;
        let (train_x, train_y) = (data.train_images.flatten(1, -1), &data.train_labels);
        let (test_x, test_y) = (data.test_images.flatten(1, -1), &data.test_labels);
        let loader_cfg = datasets::loader::LoaderConfig {
            batch_size: 128,
            seed: ctx.seed,
            ..Default::default()
        };
        let loader = datasets::loader::Loader::new(&train_x, train_y, loader_cfg)?;
        let steps_per_epoch = loader.batches_per_epoch();
        let schedule = train_kit::Schedule::WarmupCosine {
            base_lr: 2e-3,
            min_lr: 1e-5,
            warmup_steps: steps_per_epoch / 4,
            total_steps: steps_per_epoch * epochs,
        };
        let mut accuracies = Vec::with_capacity(epochs);
        let mut step = 0usize;
        for epoch in 0..epochs {
            for batch in loader.epoch(epoch as u64) {
                let batch = batch?;
                opt.set_lr(schedule.lr_at(step));
                let loss = fc
                    .forward(&batch.images)
                    .cross_entropy_for_logits(&batch.labels);
                train_kit::check_finite(&loss, step as u64)?;
                opt.zero_grad();
                loss.backward();
                opt.step()?;
                step += 1;
            }
            let acc = tch::no_grad(|| {
                fc.forward(&test_x)
                    .argmax(-1, false)
                    .eq_tensor(test_y)
                    .to_kind(Kind::Double)
                    .mean(Kind::Double)
                    .double_value(&[])
            });
            accuracies.push(acc);
        }
        Ok((vs, accuracies))
    }

    #[test]
    fn the_trainer_loop_equals_the_loop_before_the_move() {
        let _lock = test_support::rng_lock();
        let data = synthetic_mnist(600, 100, 8);
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path(), 2);
        for bias in [true, false] {
            let (before, acc_before) = train_linear_before(&ctx, &data, bias, 2).unwrap();
            let (after, acc_after) = train_linear(&ctx, &data, bias, 2, "t").unwrap();
            assert_same_weights(&before, &after);
            assert_eq!(acc_before, acc_after);
        }
    }

    #[test]
    fn origin_line_sweep_finds_a_perfect_line_when_one_exists() {
        // Separable by the line x = 0 through the origin.
        let xs = [[-1.0, 0.5], [-2.0, -1.0], [1.0, 2.0], [3.0, -1.0]];
        let ys = [-1.0, -1.0, 1.0, 1.0];
        assert_eq!(best_origin_line_accuracy(&xs, &ys).0, 1.0);
        // Same side of every line through the origin: (1,1) and (2,2) with opposite labels.
        let xs = [[1.0, 1.0], [2.0, 2.0]];
        assert_eq!(best_origin_line_accuracy(&xs, &[1.0, -1.0]).0, 0.5);
    }

    #[test]
    fn learned_bias_separates_and_no_bias_cannot() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let set = Separable::sample("t", 30.0, 2.0, 120, &mut rng);
        let (x, y) = set.tensors(Device::Cpu);
        let learned = fit_perceptron(&x, &y, Threshold::Learned, 2000, 0).unwrap();
        assert!(learned.converged && learned.accuracy == 1.0);
        let no_bias = fit_perceptron(&x, &y, Threshold::Fixed(0.0), 50, 0).unwrap();
        assert!(!no_bias.converged && no_bias.accuracy < 1.0);
        assert!(best_origin_line_accuracy(&set.xs, &set.ys).0 < 1.0);
        // The learned threshold lies within the band where the data allow the line to be.
        let t = -learned.b / learned.w[0].hypot(learned.w[1]);
        assert!((t - 2.0).abs() < 1.5, "learned threshold {t}");
    }
}
