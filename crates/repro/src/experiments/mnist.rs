//! What the claims' MNIST classifiers share (`basics.bias.mnist`'s linear classifier,
//! `vit.mnist`'s ViT, `rf.erf`'s CNN): the MNIST normalisation, test accuracy in batches, and
//! the train-and-accuracy loop on train-kit's [`train_kit::Trainer`] (loader, `TrainerConfig`
//! with warmup + cosine and torch's generator seeded once by the caller, `RunOptions` in a
//! fresh folder, the test accuracy after the epochs the recipe says).
//!
//! The model stays the caller's: it builds the variables and the optimiser and hands over its
//! forward as a closure `forward(images, train) -> logits`.

use anyhow::{bail, Context, Result};
use tch::{nn, Kind, Tensor};

/// MNIST's normalisation: `(x - mean) / std` with the training set's pixel mean and std.
pub fn normalize(x: &Tensor) -> Tensor {
    (x - datasets::mnist::MNIST_MEAN) / datasets::mnist::MNIST_STD
}

/// Images and labels of one split.
#[derive(Clone, Copy)]
pub struct Split<'a> {
    /// `[N, ...]` inputs, as the forward takes them.
    pub images: &'a Tensor,
    /// `[N]` class indices.
    pub labels: &'a Tensor,
}

/// How a claim's classifier trains: the parts of the loop the three claims set differently.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Epochs over the training split.
    pub epochs: usize,
    /// Loader batch size.
    pub batch_size: usize,
    /// Drop the last, incomplete batch of an epoch.
    pub drop_last: bool,
    /// Peak learning rate of the warmup + cosine schedule.
    pub base_lr: f64,
    /// Learning rate at the end of the cosine.
    pub min_lr: f64,
    /// Warmup steps from (batches per epoch, epochs).
    pub warmup_steps: fn(usize, usize) -> usize,
    /// A metrics line every this many steps.
    pub log_every: usize,
    /// Test accuracy every this many epochs (and after the last); 0 = after the last only.
    pub eval_every: usize,
    /// Test images per forward when measuring accuracy; `None`: the whole test split at once.
    pub eval_batch: Option<i64>,
    /// Folder under the claim's `out_dir` for checkpoints and `metrics.jsonl` (removed first:
    /// a claim runs fresh).
    pub dir: String,
    /// Prefix of the progress line.
    pub label: String,
}

/// What a training run gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The test accuracy after each evaluated epoch, in order.
    pub test_accuracy: Vec<f64>,
    /// Wall-clock seconds of the loop.
    pub seconds: f64,
}

impl Fit {
    /// The accuracy after the last epoch.
    pub fn last_accuracy(&self) -> Result<f64> {
        self.test_accuracy
            .last()
            .copied()
            .context("the classifier ran no epoch")
    }
}

/// The fraction of `test` that `logits` classifies right (argmax), `batch` images per forward
/// (`None`: all at once), in inference mode.
pub fn test_accuracy(
    logits: impl Fn(&Tensor) -> Result<Tensor>,
    test: Split<'_>,
    batch: Option<i64>,
) -> Result<f64> {
    let n = test.images.size().first().copied().unwrap_or(0);
    if n == 0 {
        bail!("test accuracy of an empty test split");
    }
    let batch = batch.unwrap_or(n).max(1);
    let mut correct = 0i64;
    tch::no_grad(|| -> Result<()> {
        for start in (0..n).step_by(batch as usize) {
            let len = batch.min(n - start);
            let y = test.labels.narrow(0, start, len);
            correct += logits(&test.images.narrow(0, start, len))?
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[]);
        }
        Ok(())
    })?;
    Ok(correct as f64 / n as f64)
}

/// Trains the variables of `vs` with `opt` on `train` by cross-entropy on
/// `forward(images, true)`, measuring [`test_accuracy`] of `forward(images, false)` on `test`
/// after the epochs `recipe.eval_every` says. The caller seeds torch's generator
/// (`Seeding::Caller`) and builds the model before.
pub fn train_classifier<F>(
    ctx: &crate::claim::Ctx,
    vs: &mut nn::VarStore,
    opt: &mut train_kit::AdamW,
    train: Split<'_>,
    test: Split<'_>,
    recipe: &Recipe,
    forward: F,
) -> Result<Fit>
where
    F: Fn(&Tensor, bool) -> Result<Tensor>,
{
    let loader = datasets::loader::Loader::new(
        train.images,
        train.labels,
        datasets::loader::LoaderConfig {
            batch_size: recipe.batch_size,
            seed: ctx.seed,
            drop_last: recipe.drop_last,
            ..Default::default()
        },
    )?;
    let per_epoch = loader.batches_per_epoch();
    let trainer_cfg = train_kit::TrainerConfig {
        epochs: recipe.epochs,
        schedule: train_kit::Schedule::WarmupCosine {
            base_lr: recipe.base_lr,
            min_lr: recipe.min_lr,
            warmup_steps: (recipe.warmup_steps)(per_epoch, recipe.epochs),
            total_steps: per_epoch * recipe.epochs,
        },
        seeding: train_kit::Seeding::Caller,
        log_every: recipe.log_every,
        eval_every: recipe.eval_every,
        ..Default::default()
    };
    let run = train_kit::RunOptions {
        dir: Some(super::fresh_dir(&ctx.out_dir.join(&recipe.dir))?),
        progress: true,
        label: recipe.label.clone(),
        stop_after: None,
    };
    let step = |batch: datasets::Batch, _: &train_kit::StepInfo| -> Result<Tensor> {
        Ok(forward(&batch.images, true)?.cross_entropy_for_logits(&batch.labels))
    };
    let eval = |_| -> Result<train_kit::EvalMetrics> {
        let acc = test_accuracy(|x| forward(x, false), test, recipe.eval_batch)?;
        Ok(vec![("test_accuracy".into(), acc)])
    };
    let report = train_kit::Trainer::new(&trainer_cfg, &run)?.fit(vs, opt, &loader, step, eval)?;
    Ok(Fit {
        test_accuracy: report
            .eval_series("test_accuracy")
            .into_iter()
            .map(|(_, a)| a)
            .collect(),
        seconds: report.seconds,
    })
}
