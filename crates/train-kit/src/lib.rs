//! Training plumbing for the workspace's experiments, on LibTorch through `tch`.
//!
//! - [`AdamW`]: AdamW (Loshchilov & Hutter 2019, as in `torch.optim.AdamW`) whose parameters
//!   are views into one flat buffer per (group, dtype, device), so a step is a handful of
//!   kernels instead of ~10 per tensor; [`PerParamAdamW`] is the per-tensor reference.
//! - [`ParamGroup`] / [`GroupSpec`]: weight-decay and lr-scale groups (MAE/timm no-decay rule).
//! - [`Schedule`]: MAE's warmup + half-cycle cosine, step decay, constant.
//! - [`Checkpoint`]: one safetensors file (weights + optimiser state) plus `latest.json`,
//!   written atomically; exact resume on CPU with the per-step seeding contract of
//!   [`seed_step`].
//! - [`Optimizer`]: the trait AdamW, [`PerParamAdamW`], [`Sgd`] (momentum, Nesterov) and
//!   [`Lars`] implement, so loops, accumulation, clipping and checkpoints take any of them.
//! - [`Trainer`]: the one training loop (schedule, accumulation, clipping, bf16, NaN guard,
//!   metrics, progress, checkpoints with exact mid-epoch resume, evaluation per epoch) over
//!   any [`DataSource`]; the model part is one closure, batch in, loss out.
//! - [`Collective`]: what data-parallel training needs from a process group (the `dist` crate
//!   implements it on c10d); with one in [`RunOptions`], the Trainer trains data-parallel.
//! - [`parse_device`] / [`device_name`]: the one `--device` parser and namer.
//! - [`check_finite`], [`clip_grad_norm`], [`GradAccumulator`], [`autocast_bf16`],
//!   [`MetricsLog`], [`Progress`], [`line_plot`], [`training_curves_png`].

pub mod amp;
pub mod checkpoint;
pub mod collective;
pub mod device;
pub mod error;
pub mod grad;
pub mod guard;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod schedule;
pub mod trainer;

pub use amp::autocast_bf16;
pub use checkpoint::{seed_step, Checkpoint, CheckpointMeta};
pub use collective::{Collective, Pending};
pub use device::{device_description, device_name, parse_device};
pub use error::{Result, TrainError};
pub use grad::{clip_grad_norm, try_clip_grad_norm, GradAccumulator, GradSource};
pub use guard::check_finite;
pub use metrics::MetricsLog;
pub use optim::{
    AdamW, AdamWConfig, GroupSpec, Lars, LarsConfig, Optimizer, ParamGroup, PerParamAdamW, Sgd,
    SgdConfig,
};
pub use plot::{line_plot, loss_curve_png, register_fonts, training_curves_png, Series};
pub use progress::{plain_progress_line, progress_bar, Progress};
pub use schedule::{scaled_lr, Schedule};
pub use trainer::{
    no_eval, DataSource, EpochRecord, EvalMetrics, GradBuckets, RunOptions, Seeding, StepInfo,
    StepOutput, TrainReport, Trainer, TrainerConfig,
};
