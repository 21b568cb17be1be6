//! What the training loops share: run options (checkpoint folder, progress), the progress
//! display, the linear lr scaling rule, the schedule, the optimiser step and the checkpoints.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use serde_json::Value;
use tch::nn;
use train_kit::{AdamW, Checkpoint, CheckpointMeta, MetricsLog, Schedule};

use crate::error::Result;

/// Where a loop keeps its state and how it reports.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Checkpoints (`latest.json` + one safetensors file) and a `metrics.jsonl` log go here;
    /// a run finding a checkpoint here resumes from it. `None`: nothing is written.
    pub dir: Option<PathBuf>,
    /// Show a progress bar (rate and ETA; a plain line every 10% when stderr is not a terminal).
    pub progress: bool,
    /// Prefix of the progress message.
    pub label: String,
    /// Stop after this many micro-iterations in total (a checkpoint is written first, so the
    /// run can be resumed): for tests and time-boxed runs.
    pub stop_after: Option<u64>,
}

/// `lr = blr * effective_batch / 256` (Goyal et al. 2017), unless an absolute lr is given.
pub fn scaled_lr(blr: f64, lr: Option<f64>, effective_batch: usize) -> f64 {
    lr.unwrap_or(blr * effective_batch as f64 / 256.0)
}

/// Linear warmup over `warmup_epochs` (fractional allowed) then half-cycle cosine to `min_lr`,
/// set per micro-iteration as `engine_pretrain.py` / `engine_finetune.py` do.
pub(crate) fn warmup_cosine(
    base_lr: f64,
    min_lr: f64,
    warmup_epochs: f64,
    epochs: usize,
    iters_per_epoch: u64,
) -> Schedule {
    Schedule::WarmupCosine {
        base_lr,
        min_lr,
        warmup_steps: (warmup_epochs * iters_per_epoch as f64).round() as usize,
        total_steps: epochs * iters_per_epoch as usize,
    }
}

/// One optimiser step (with gradient-norm clipping when `clip` is set), then zeroed gradients.
pub(crate) fn optimizer_step(opt: &mut AdamW, clip: Option<f64>) -> Result<()> {
    match clip {
        Some(max) => {
            opt.step_with_clip(max)?;
        }
        None => opt.step()?,
    }
    opt.zero_grad();
    Ok(())
}

impl RunOptions {
    /// The run's `metrics.jsonl`, when it has a folder.
    pub(crate) fn metrics_log(&self) -> Result<Option<MetricsLog>> {
        Ok(match &self.dir {
            Some(dir) => Some(MetricsLog::create(dir.join("metrics.jsonl"))?),
            None => None,
        })
    }

    /// Whether `stop_after` micro-iterations are done.
    pub(crate) fn stop_reached(&self, iters: u64) -> bool {
        self.stop_after.is_some_and(|s| iters >= s)
    }
}

/// Writes a loop's checkpoints into `RunOptions::dir` (nothing without one).
pub(crate) struct Checkpoints<'a> {
    pub run: &'a RunOptions,
    pub iters_per_epoch: u64,
    pub seed: u64,
    /// The recipe, kept in every checkpoint.
    pub config: Value,
}

impl Checkpoints<'_> {
    /// Loads the latest checkpoint into `vs` and `opt`: its next micro-iteration and metrics.
    pub fn resume(&self, vs: &mut nn::VarStore, opt: &mut AdamW) -> Result<Option<(u64, Value)>> {
        let Some(dir) = &self.run.dir else {
            return Ok(None);
        };
        Ok(Checkpoint::load_latest(dir, vs, opt)?.map(|meta| (meta.step, meta.metrics)))
    }

    /// A checkpoint whose run goes on at micro-iteration `next`.
    pub fn save(&self, vs: &nn::VarStore, opt: &AdamW, next: u64, metrics: Value) -> Result<()> {
        if let Some(dir) = &self.run.dir {
            let meta = CheckpointMeta {
                step: next,
                epoch: next / self.iters_per_epoch,
                seed: self.seed,
                config: self.config.clone(),
                metrics,
                ..Default::default()
            };
            Checkpoint::save(dir, vs, opt, &meta)?;
        }
        Ok(())
    }

    /// After the optimiser step ending micro-iteration `i` of an epoch: whether to write a
    /// mid-epoch checkpoint (every `every` steps, or because the run stops here). The last
    /// step of an epoch is left to the epoch-end checkpoint, so no step is written twice.
    pub fn due_mid_epoch(&self, steps: usize, every: usize, stopping: bool, i: u64) -> bool {
        let periodic = every > 0 && steps % every == 0;
        (periodic || stopping) && i + 1 < self.iters_per_epoch
    }
}

/// A progress bar on terminals, plain lines in logs.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    start_pos: u64,
    started: Instant,
    label: String,
    next_plain: u64,
}

impl Progress {
    pub fn new(opts: &RunOptions, total: u64, start_pos: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (opts.progress && tty).then(|| {
            let b = train_kit::progress_bar(total, &opts.label);
            b.set_position(start_pos);
            b.reset_eta();
            b
        });
        Self {
            bar,
            plain: opts.progress && !tty,
            total,
            start_pos,
            started: Instant::now(),
            label: opts.label.clone(),
            next_plain: start_pos + total.div_ceil(10),
        }
    }

    pub fn update(&mut self, pos: u64, msg: impl FnOnce() -> String) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
            if pos % 10 == 0 || pos == self.total {
                b.set_message(format!("{} {}", self.label, msg()));
            }
        } else if self.plain && (pos >= self.next_plain || pos == self.total) {
            self.next_plain = pos + self.total.div_ceil(10);
            let line = train_kit::plain_progress_line(
                pos - self.start_pos,
                self.total - self.start_pos,
                self.started.elapsed(),
                &self.label,
            );
            eprintln!("{line} {}", msg());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
