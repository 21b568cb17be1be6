//! OadTR online action detection (Wang et al. 2021, "OadTR: Online Action Detection with
//! Transformers", arXiv 2106.11149; official code wangxiang1230/OadTR) on LibTorch.
//!
//! - [`OadConfig`] / [`DecoderConfig`]: the official THUMOS'14 setting (TSN-ANet 3072-d or
//!   Kinetics 4096-d features, 22 classes, encoder 3 x 8 heads at width 1024, decoder 5 x 4 heads
//!   with 8 queries) and a small preset for CPU streams; [`param_count`] /
//!   [`official_param_count`].
//! - [`OadTR`]: the model with the official state_dict names; [`OadOutput`] holds the
//!   current-frame and the anticipation logits. [`oad_loss`]: encoder 1.0 + decoder 0.5
//!   soft-target cross-entropy, the ambiguous class ignored.
//! - [`FeatureStream`], [`WindowSpec`], [`WindowSet`], [`WindowLoader`]: per-frame feature
//!   streams (`.npy` through `datasets::npy`), the official windowing (64 steps, stride 1,
//!   ambiguous targets dropped) with optional zero padding at the stream's start, and seeded
//!   batches for train-kit's `Trainer`.
//! - [`watch`]: a real stream from seglearn's smartwatch recordings (`datasets::watch`).
//! - [`Evaluator`], [`frame_map`], [`ap_and_cap`]: the official per-frame mAP and calibrated mAP
//!   (`frame_level_map_n_cap`), current frame and each anticipated step.
//! - [`OadStream`]: live inference one feature vector at a time over a ring buffer of
//!   projected frames; [`RnnBaseline`] / [`RnnStream`]: the GRU / LSTM baselines.

mod config;
mod data;
mod error;
mod eval;
mod layers;
mod loss;
mod model;
mod rnn;
mod stream;
pub mod watch;

pub use config::{official_param_count, param_count, DecoderConfig, OadConfig};
pub use data::{FeatureStream, WindowBatch, WindowLoader, WindowSet, WindowSpec};
pub use error::{OadError, Result};
pub use eval::{ap_and_cap, frame_map, Evaluator, FrameMap, OadMetrics};
pub use loss::{oad_loss, soft_target_ce, OadLoss};
pub use model::{OadOutput, OadTR};
pub use rnn::{CellKind, RnnBaseline, RnnConfig, RnnStream};
pub use stream::{OadStream, StreamStep};
