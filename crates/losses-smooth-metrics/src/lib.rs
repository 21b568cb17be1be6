//! losses-smooth-metrics: differentiable surrogates of accuracy, F1, IoU and AP, each beside the
//! hard metric it converges to, with limits, bounds and gradients tested.
//!
//! The argument (Su Jianlin, "函数光滑化杂谈", kexue.fm/archives/6620, 2019): the metrics people
//! report are discrete and give no useful gradient, and cross-entropy falling does not make
//! accuracy rise; smooth versions with a temperature are trainable, tend to the real metric as
//! the temperature goes to 0, and are best used after cross-entropy has done the early work.
//!
//! - [`primitives`]: smooth max / min (logsumexp), soft argmax (one-hot and index), smooth
//!   step, abs, ReLU, top-k indicator and ranks.
//! - [`classification`]: soft accuracy, soft precision / recall / F1 (binary, macro, micro,
//!   multi-label) and sigmoidF1 (Benedict et al. 2021, arXiv 2108.10566) with their hard counts.
//! - [`segmentation`]: soft IoU, the Lovasz hinge and Lovasz-Softmax (Berman et al. 2018,
//!   arXiv 1705.08790, `classes = present | all | list`), the hard IoU.
//! - [`ranking`]: Smooth-AP (Brown et al. 2020, arXiv 2007.12163, tau 0.01, exponent clamped),
//!   hard AP, mAP and recall at k.
//! - [`TemperatureSchedule`], [`Recipe`]: annealing and the CE-then-metric recipe for any
//!   `train_kit::Trainer` step closure.
//!
//! Bad input (empty batches, a temperature <= 0, labels out of range, NaN) is a
//! [`SmoothError`]; degenerate cases have documented values (F1 of an empty class is 0).

mod check;
pub mod classification;
mod error;
pub mod primitives;
pub mod ranking;
mod schedule;
pub mod segmentation;
#[cfg(test)]
mod testing;

pub use classification::{
    accuracy, counts_binary, counts_multiclass, soft_accuracy, soft_accuracy_loss,
    soft_counts_binary, soft_counts_multiclass, Average, Counts, SigmoidF1, SoftCounts,
};
pub use error::{Result, SmoothError};
pub use ranking::{
    average_precision, mean_average_precision, recall_at_k, smooth_ap, smooth_ap_loss,
    SMOOTH_AP_TAU,
};
pub use schedule::{LossWeights, Recipe, TemperatureSchedule};
pub use segmentation::{
    lovasz_hinge, lovasz_softmax, mean_iou, per_class_iou, soft_iou, soft_jaccard_loss, Classes,
    LovaszSoftmax,
};
