//! One training loop for every crate: [`Trainer::fit`] owns what each loop used to repeat —
//! the per-iteration lr schedule, gradient accumulation, clipping, bf16 autocast on CUDA, the
//! NaN/inf guard naming the step, JSONL metrics, progress (a bar with rate and ETA on a
//! terminal, plain lines in logs), atomic checkpoints every N optimiser steps and at epoch
//! ends, exact resume mid-epoch, `stop_after`, and a per-epoch evaluation whose metrics land
//! in the log and the report. The model-specific part is one closure: batch in, loss out.
//!
//! The loop follows the official MAE engine (`engine_pretrain.py` / `engine_finetune.py`),
//! which the ViT and MAE recipes reproduce: the gradients are zeroed at each epoch start; the
//! lr is set from the schedule at the first micro-iteration of each accumulation window,
//! indexed by micro-iteration (`it = epoch * iters_per_epoch + i`); each micro-batch's loss is
//! divided by `accum_iter` before `backward`; the optimiser steps when `(i + 1) % accum_iter
//! == 0`.
//!
//! Exact resume: with [`Seeding::PerStep`] torch's generator is reseeded with `seed + it` at
//! each micro-iteration ([`crate::seed_step`]), the data source restarts an epoch at any batch
//! ([`DataSource`]), and a checkpoint holds weights, optimiser state and the loop's own state
//! (the running epoch loss and the history), so `k` steps + resume + the rest give the same
//! weights, bit for bit on the CPU, as a straight run. [`Seeding::Caller`] leaves torch's
//! generator alone (the caller seeds once before building the model): a resumed run then
//! draws different random numbers from an uninterrupted one.

mod dp;
mod source;

pub use dp::{GradBuckets, BUCKET_BYTES};
pub use source::DataSource;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tch::{nn, Device, Tensor};

use crate::checkpoint::{seed_step, Checkpoint, CheckpointMeta, LATEST};
use crate::collective::{default_group, default_writers, Collective, Writers};
use crate::error::{Result, TrainError};
use crate::guard::check_finite;
use crate::metrics::MetricsLog;
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::schedule::Schedule;

/// Where a run keeps its state and how it reports.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Checkpoints (`latest.json` + one safetensors file) and a `metrics.jsonl` log go here;
    /// a run finding a checkpoint here resumes from it. `None`: nothing is written.
    pub dir: Option<PathBuf>,
    /// Show progress: a bar with rate and ETA on a terminal; when stderr is not a terminal, a
    /// plain line at least every 10% of the run or every minute.
    pub progress: bool,
    /// Prefix of the progress message.
    pub label: String,
    /// Stop after this many micro-iterations in this call (a checkpoint is written at the last
    /// optimiser step, so the run can be resumed): for tests and time-boxed runs.
    pub stop_after: Option<u64>,
}

impl RunOptions {
    /// The run's `metrics.jsonl`, when it has a folder.
    pub fn metrics_log(&self) -> Result<Option<MetricsLog>> {
        Ok(match &self.dir {
            Some(dir) => Some(MetricsLog::create(dir.join("metrics.jsonl"))?),
            None => None,
        })
    }

    /// Whether `stop_after` micro-iterations are done.
    pub fn stop_reached(&self, iters: u64) -> bool {
        self.stop_after.is_some_and(|s| iters >= s)
    }
}

/// How torch's generator is seeded during training (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seeding {
    /// `manual_seed(seed + it)` at every micro-iteration: exact resume.
    PerStep(u64),
    /// The trainer never seeds; the caller seeds once. Resume is not bitwise exact when the
    /// step draws random numbers (dropout, augmentation).
    Caller,
}

/// What the loop does, independent of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerConfig {
    /// Epochs in the whole run (a resumed run counts the ones already done).
    pub epochs: usize,
    /// The lr per micro-iteration, applied at the start of each accumulation window.
    pub schedule: Schedule,
    /// Micro-batches per optimiser step (MAE's `accum_iter`).
    pub accum_iter: usize,
    /// Total gradient-norm clipping (`torch.nn.utils.clip_grad_norm_` semantics).
    pub clip_grad: Option<f64>,
    /// bf16 autocast around [`StepInfo::autocast`] (CUDA only; the CPU stays float32).
    pub bf16: bool,
    /// How torch's generator is seeded (exact resume needs `PerStep`).
    pub seeding: Seeding,
    /// Also checkpoint every this many optimiser steps (mid-epoch); 0 = epoch ends only.
    pub checkpoint_every: usize,
    /// A metrics line every this many micro-iterations (0 = none).
    pub log_every: usize,
    /// Evaluate every this many epochs, and always after the last; 0 = after the last only.
    pub eval_every: usize,
    /// The recipe, kept in every checkpoint's meta (`config`).
    pub recipe: Value,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            epochs: 1,
            schedule: Schedule::Constant { lr: 1e-3 },
            accum_iter: 1,
            clip_grad: None,
            bf16: false,
            seeding: Seeding::PerStep(0),
            checkpoint_every: 0,
            log_every: 20,
            eval_every: 1,
            recipe: Value::Null,
        }
    }
}

impl TrainerConfig {
    fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.accum_iter == 0 {
            return Err(TrainError::InvalidConfig(format!(
                "trainer: epochs {} and accum_iter {}: expected both >= 1",
                self.epochs, self.accum_iter
            )));
        }
        if let Some(c) = self.clip_grad {
            if !(c.is_finite() && c >= 0.0) {
                return Err(TrainError::InvalidConfig(format!(
                    "trainer: clip_grad {c}: expected a finite value >= 0"
                )));
            }
        }
        self.schedule.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_schedule_is_refused_before_the_run() {
        let cfg = TrainerConfig {
            schedule: Schedule::WarmupMultiStep {
                base_lr: 0.01,
                gamma: 0.1,
                milestones: vec![80, 60],
                warmup_steps: 10,
                warmup_factor: 0.001,
            },
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("milestones [80, 60]"), "{e}");
        assert!(TrainerConfig::default().validate().is_ok());
    }
}

/// Where the loop is, passed to the step function.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// The epoch, from 0.
    pub epoch: u64,
    /// Micro-iteration since the start of the run (`epoch * iters_per_epoch + index`).
    pub iter: u64,
    /// Micro-iteration within the epoch.
    pub index: u64,
    /// The lr in force.
    pub lr: f64,
    bf16: bool,
}

impl StepInfo {
    /// Runs `f` (the forward) under bf16 autocast when the run asks for it on CUDA; as is
    /// otherwise. Augmentation before it stays in float32.
    pub fn autocast<T>(&self, f: impl FnOnce() -> T) -> T {
        crate::amp::autocast_bf16(self.bf16, f)
    }

    /// Whether [`StepInfo::autocast`] enables bf16.
    pub fn bf16(&self) -> bool {
        self.bf16
    }
}

/// What a step returns: the loss to back-propagate, and optional named parts (e.g. box and
/// class losses) that go into the metrics lines (read only when a line is written).
#[derive(Debug)]
pub struct StepOutput {
    /// The micro-batch loss (one element) to back-propagate.
    pub loss: Tensor,
    /// Named loss parts (one element each), logged with the loss.
    pub parts: Vec<(String, Tensor)>,
}

impl From<Tensor> for StepOutput {
    fn from(loss: Tensor) -> Self {
        StepOutput {
            loss,
            parts: Vec::new(),
        }
    }
}

/// Named evaluation results of one epoch, in order.
pub type EvalMetrics = Vec<(String, f64)>;

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, from 0.
    pub epoch: u64,
    /// Mean micro-batch loss over the epoch (a resumed epoch counts from its start).
    pub loss: f64,
    /// The evaluation of this epoch, empty when it was not evaluated.
    pub eval: EvalMetrics,
}

/// What a [`Trainer::fit`] call did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Every finished epoch of the run, those restored from a checkpoint included.
    pub epochs: Vec<EpochRecord>,
    /// The epoch this call started in.
    pub first_epoch: u64,
    /// Micro-iterations run in this call.
    pub iters: u64,
    /// Micro-iteration a resumed run started at.
    pub resumed_at: Option<u64>,
    /// Optimiser steps in the whole run so far.
    pub optimizer_steps: i64,
    /// Wall time of this call.
    pub seconds: f64,
    /// Whether `stop_after` ended the run early.
    pub stopped_early: bool,
}

impl TrainReport {
    /// Mean loss of every finished epoch.
    pub fn epoch_loss(&self) -> Vec<f64> {
        self.epochs.iter().map(|e| e.loss).collect()
    }

    /// `(epochs done, value)` of one evaluation metric, for the epochs that were evaluated.
    pub fn eval_series(&self, key: &str) -> Vec<(u64, f64)> {
        let value = |e: &EpochRecord| e.eval.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        self.epochs
            .iter()
            .filter_map(|e| value(e).map(|v| (e.epoch + 1, v)))
            .collect()
    }
}

/// The loop's own part of a checkpoint (`meta.metrics["trainer"]`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct LoopState {
    epoch_loss_sum: f64,
    epoch_loss_count: u64,
    epochs: Vec<EpochRecord>,
}

/// An evaluation that evaluates nothing, for [`Trainer::fit`] without one.
pub fn no_eval<E>(_epoch: u64) -> std::result::Result<EvalMetrics, E> {
    Ok(EvalMetrics::new())
}

/// The training loop (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Trainer<'a> {
    cfg: &'a TrainerConfig,
    run: &'a RunOptions,
    group: Option<&'a dyn Collective>,
}

impl<'a> Trainer<'a> {
    /// A trainer of `cfg`'s loop writing where `run` says; checks the config.
    pub fn new(cfg: &'a TrainerConfig, run: &'a RunOptions) -> Result<Self> {
        cfg.validate()?;
        Ok(Trainer {
            cfg,
            run,
            group: None,
        })
    }

    /// Trains data-parallel over `group` (see `dp.rs`'s docs: rank 0 reads and writes the run
    /// folder, the others read their shard of each epoch and take the same steps). Without
    /// this, the process's default group ([`crate::collective::set_default_group`]) is used
    /// when there is one; a group of one rank trains as without.
    pub fn with_collective(mut self, group: &'a dyn Collective) -> Self {
        self.group = Some(group);
        self
    }

    /// Trains the variables of `vs` with `opt` on `source`: `step(batch, info)` returns the
    /// loss of one micro-batch, `eval(epoch)` evaluates after an epoch (see
    /// [`TrainerConfig::eval_every`]; use [`no_eval`] for none). With `RunOptions::dir`, an
    /// existing checkpoint there is resumed first.
    pub fn fit<S, O, E, R>(
        &self,
        vs: &mut nn::VarStore,
        opt: &mut O,
        source: &S,
        mut step: impl FnMut(S::Batch, &StepInfo) -> std::result::Result<R, E>,
        mut eval: impl FnMut(u64) -> std::result::Result<EvalMetrics, E>,
    ) -> std::result::Result<TrainReport, E>
    where
        S: DataSource,
        O: Optimizer + ?Sized,
        E: From<TrainError> + From<S::Error>,
        R: Into<StepOutput>,
    {
        let (cfg, run) = (self.cfg, self.run);
        let (group, writers): (Option<&dyn Collective>, _) = match self.group {
            Some(g) => (Some(g), Writers::RankZero),
            None => (
                default_group().map(|g| g as &dyn Collective),
                default_writers(),
            ),
        };
        let group = group.filter(|g| g.world_size() > 1);
        let mut dp = group.map(|g| dp::DataParallel::new(g, vs.device()));
        let (rank, world) = dp.as_ref().map_or((0, 1), |d| (d.rank() as u64, d.world()));
        let main = rank == 0;
        // Who writes the run's files: rank 0, or every rank in a folder of its own.
        let writes = main || writers == Writers::EveryRank;
        let batches = source.batches_per_epoch();
        let ipe = batches / world;
        if ipe == 0 {
            return Err(TrainError::InvalidConfig(format!(
                "trainer: the data source yields {batches} batches per epoch: expected at least \
                 one per rank ({world} ranks)"
            ))
            .into());
        }
        let epochs = cfg.epochs as u64;
        let total = epochs * ipe;
        let bf16 = cfg.bf16 && vs.device() != Device::Cpu;

        let mut start = 0u64;
        let mut state = LoopState::default();
        if let (Some(dir), true) = (&run.dir, main) {
            if let Some(meta) = Checkpoint::load_latest(dir, vs, opt)? {
                start = meta.step;
                state = read_state(dir, &meta)?;
            }
        }
        if let Some(dp) = &mut dp {
            (start, state) = dp.start(main.then(|| (start, state.clone())), vs, opt)?;
        }
        let log = if writes { run.metrics_log()? } else { None };
        let mut report = TrainReport {
            epochs: Vec::new(),
            first_epoch: start / ipe,
            iters: 0,
            resumed_at: (start > 0).then_some(start),
            optimizer_steps: 0,
            seconds: 0.0,
            stopped_early: false,
        };
        let save = |vs: &nn::VarStore, opt: &O, next: u64, state: &LoopState| -> Result<()> {
            let (Some(dir), true) = (&run.dir, writes) else {
                return Ok(());
            };
            let meta = CheckpointMeta {
                step: next,
                epoch: next / ipe,
                seed: match cfg.seeding {
                    Seeding::PerStep(s) => s,
                    Seeding::Caller => 0,
                },
                config: cfg.recipe.clone(),
                metrics: json!({ "trainer": state }),
                ..Default::default()
            };
            Checkpoint::save(dir, vs, opt, &meta)
        };

        let mut progress = Progress::new(run.progress && main, &run.label, total, start);
        let started = Instant::now();
        let accum = cfg.accum_iter as u64;
        'epochs: for epoch in start / ipe..epochs {
            let skip = if epoch == start / ipe { start % ipe } else { 0 };
            if skip == 0 {
                state.epoch_loss_sum = 0.0;
                state.epoch_loss_count = 0;
            }
            opt.zero_grad();
            // This rank's losses of the accumulation window, summed over the ranks at its end.
            let mut window_loss = 0.0;
            // A resumed epoch starts at its next batch without producing the ones before; rank r
            // of w reads the epoch's batches k * w + r.
            // (A shard may hold one batch more than the others: each rank takes `ipe`.)
            let batches = source
                .epoch_strided(epoch, skip * world + rank, world)
                .take(usize::try_from(ipe - skip).unwrap_or(usize::MAX));
            for (i, batch) in (skip..).zip(batches) {
                let it = epoch * ipe + i;
                if run.stop_reached(report.iters) {
                    report.stopped_early = true;
                    break 'epochs;
                }
                if let Seeding::PerStep(seed) = cfg.seeding {
                    // Each rank draws its own numbers (augmentations differ across ranks).
                    seed_step(seed.wrapping_add(rank << 40), it);
                }
                if i % accum == 0 {
                    opt.set_lr(cfg.schedule.lr_at(it as usize));
                }
                let info = StepInfo {
                    epoch,
                    iter: it,
                    index: i,
                    lr: opt.lr(),
                    bf16,
                };
                let out: StepOutput = step(batch?, &info)?.into();
                let value = check_finite(&out.loss, it)?;
                if accum == 1 {
                    out.loss.f_backward().map_err(TrainError::from)?;
                } else {
                    (&out.loss / accum as f64)
                        .f_backward()
                        .map_err(TrainError::from)?;
                }
                match &dp {
                    Some(_) => window_loss += value,
                    None => state.epoch_loss_sum += value,
                }
                state.epoch_loss_count += 1;
                report.iters += 1;
                if (i + 1) % accum == 0 {
                    if let Some(dp) = &dp {
                        state.epoch_loss_sum += dp.reduce_gradients(window_loss)?;
                        window_loss = 0.0;
                    }
                    match cfg.clip_grad {
                        Some(max) => {
                            opt.step_with_clip(max)?;
                        }
                        None => opt.step()?,
                    }
                    opt.zero_grad();
                    let steps = opt.step_count() as u64;
                    let every = cfg.checkpoint_every as u64;
                    let periodic = every > 0 && steps % every == 0;
                    let stopping = run.stop_reached(report.iters);
                    // The last step of an epoch is left to the epoch-end checkpoint.
                    if (periodic || stopping) && i + 1 < ipe {
                        save(vs, opt, it + 1, &state)?;
                    }
                }
                // Every rank takes part in a line's mean; rank 0 writes it.
                if cfg.log_every > 0
                    && it % cfg.log_every as u64 == 0
                    && (log.is_some() || dp.is_some())
                {
                    let mut values = vec![value];
                    for (_, t) in &out.parts {
                        values.push(t.f_double_value(&[]).map_err(TrainError::from)?);
                    }
                    if let Some(dp) = &dp {
                        values = dp.mean_values(&values)?;
                    }
                    if let Some(log) = &log {
                        let mut line = Map::new();
                        line.insert("iter".into(), json!(it));
                        line.insert("epoch".into(), json!(epoch));
                        line.insert("loss".into(), json!(values[0]));
                        line.insert("lr".into(), json!(info.lr));
                        for ((name, _), v) in out.parts.iter().zip(&values[1..]) {
                            line.insert(name.clone(), json!(v));
                        }
                        log.log(&Value::Object(line))?;
                    }
                }
                progress.update(it + 1, || format!("loss {value:.4} lr {:.2e}", info.lr));
            }
            if let Some(dp) = &dp {
                // A window the epoch ended inside (its gradients are dropped, as in MAE's loop).
                if ipe % accum != 0 {
                    state.epoch_loss_sum += dp.mean_values(&[window_loss])?[0];
                }
            }
            let loss = state.epoch_loss_sum / state.epoch_loss_count.max(1) as f64;
            let last = epoch + 1 == epochs;
            let due = cfg.eval_every > 0 && (epoch + 1) % cfg.eval_every as u64 == 0;
            let metrics = match (last || due, &dp) {
                (false, _) => Vec::new(),
                (true, None) => eval(epoch)?,
                // Rank 0 evaluates; the others take its metrics.
                (true, Some(dp)) => {
                    dp.share_metrics(if main { Some(eval(epoch)?) } else { None })?
                }
            };
            if let Some(log) = &log {
                let mut line = Map::new();
                line.insert("epoch".into(), json!(epoch));
                line.insert("epoch_loss".into(), json!(loss));
                for (k, v) in &metrics {
                    line.insert(k.clone(), json!(v));
                }
                log.log(&Value::Object(line))?;
            }
            if !metrics.is_empty() {
                let text: Vec<String> =
                    metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                progress.note(&format!("epoch {} {}", epoch + 1, text.join(" ")));
            }
            state.epochs.push(EpochRecord {
                epoch,
                loss,
                eval: metrics,
            });
            state.epoch_loss_sum = 0.0;
            state.epoch_loss_count = 0;
            save(vs, opt, (epoch + 1) * ipe, &state)?;
        }
        progress.finish();
        report.epochs = state.epochs;
        report.optimizer_steps = opt.step_count();
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}

fn read_state(dir: &Path, meta: &CheckpointMeta) -> Result<LoopState> {
    serde_json::from_value(meta.metrics["trainer"].clone()).map_err(|e| {
        TrainError::CorruptCheckpoint {
            path: dir.join(LATEST),
            expected: "a trainer checkpoint (meta.metrics.trainer with the epoch loss and history)"
                .into(),
            found: e.to_string(),
        }
    })
}
