//! CPC features for the smartwatch stream (`oad.imu`'s second feature source): CPC
//! (`contrastive_nce::cpc`, the IMU preset) pre-trained without labels through train-kit's
//! `Trainer` on windows of the *training* subjects' joined signals only, then each stream's
//! frames described by the CPC context at the frame's end.
//!
//! Alignment: frame `k` of `oad.imu` ends at sample `e_k = k * hop + window - 1` (0.5 s hop,
//! 1 s window). Its CPC feature is computed on the `CONTEXT` samples `e_k - CONTEXT + 1 ..= e_k`
//! (zeros, the standardised mean, before the stream's start), the length CPC was pre-trained
//! on: encoder (x4 downsampling, one step per 80 ms) then GRU over the window's steps, and the
//! context `c_j` and code `z_j` at the last step `j` whose receptive field ends inside the
//! window (no right padding: for the IMU preset and 200 samples, step 47 of 50, which sees up to
//! sample `e_k - 1`). The frame's feature is `[c_j; z_j]` (128 numbers), standardised with the
//! training frames' statistics. Only the past is seen, as the raw-window features.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::{nn, Device, Kind, Tensor};

use contrastive_nce::cpc::{Cpc, CpcConfig};
use oad_transformer::watch::{WatchSignals, WatchStreamConfig, WatchStreams, WATCH_CLASSES};
use oad_transformer::FeatureStream;
use train_kit::RunOptions;

use crate::claim::Ctx;
use crate::report::Mode;

/// Samples CPC sees per window (4 s at 50 Hz), in pre-training and for each frame.
pub(crate) const CONTEXT: i64 = 200;
/// Samples between two pre-training windows.
const PRETRAIN_HOP: i64 = 100;
/// Steps CPC predicts ahead (the best horizon of `nce.cpc-imu`).
const HORIZON: usize = 4;

/// The CPC model of the claim.
pub(crate) fn cpc_config() -> CpcConfig {
    CpcConfig {
        horizon: HORIZON,
        ..CpcConfig::imu()
    }
}

/// Width of a CPC frame feature: the context and the code at the aligned step.
pub(crate) fn feature_dim() -> i64 {
    let c = cpc_config();
    c.context_dim + c.channels
}

/// The last sample (0-based, in the input) that encoder step `j` reads.
fn last_sample_read(cfg: &CpcConfig, j: i64) -> i64 {
    let mut last = j;
    for l in (0..cfg.kernels.len()).rev() {
        last = cfg.strides[l] * last - cfg.paddings[l] + cfg.kernels[l] - 1;
    }
    last
}

/// The encoder's output length on `len` samples.
fn encoder_len(cfg: &CpcConfig, len: i64) -> i64 {
    let mut n = len;
    for l in 0..cfg.kernels.len() {
        n = (n + 2 * cfg.paddings[l] - cfg.kernels[l]) / cfg.strides[l] + 1;
    }
    n
}

/// The last encoder step on `len` samples whose receptive field lies inside them (no right
/// padding), if any.
pub(crate) fn aligned_step(cfg: &CpcConfig, len: i64) -> Option<i64> {
    (0..encoder_len(cfg, len))
        .rev()
        .find(|&j| last_sample_read(cfg, j) < len)
}

/// How much CPC pre-training a mode gets.
struct PretrainPlan {
    epochs: usize,
    /// Stop after this many steps (the smoke run: a few).
    stop_after: Option<u64>,
}

fn pretrain_plan(mode: Mode) -> PretrainPlan {
    match mode {
        Mode::Smoke => PretrainPlan {
            epochs: 1,
            stop_after: Some(8),
        },
        _ => PretrainPlan {
            epochs: 5,
            stop_after: None,
        },
    }
}

/// `[6, S]` signals standardised per channel with the training signals' statistics.
fn standardised(signals: &WatchSignals) -> (Vec<Tensor>, Vec<Tensor>) {
    let all = Tensor::cat(
        &signals
            .train
            .iter()
            .map(|s| s.signal.to_kind(Kind::Float))
            .collect::<Vec<_>>(),
        0,
    );
    let mean = all.mean_dim(0, true, Kind::Float);
    let std = all.std_dim(0, true, true).clamp_min(1e-6);
    let norm = |v: &[oad_transformer::watch::WatchSignal]| {
        v.iter()
            .map(|s| ((s.signal.to_kind(Kind::Float) - &mean) / &std).transpose(0, 1))
            .collect::<Vec<_>>()
    };
    (norm(&signals.train), norm(&signals.test))
}

/// Overlapping pre-training windows `[n, 6, CONTEXT]` of the training signals.
fn pretrain_windows(train: &[Tensor]) -> Result<Tensor> {
    let parts: Vec<Tensor> = train
        .iter()
        .filter(|s| s.size()[1] >= CONTEXT)
        .map(|s| s.unfold(1, CONTEXT, PRETRAIN_HOP).transpose(0, 1))
        .collect();
    if parts.is_empty() {
        bail!("CPC pre-training: no training signal of at least {CONTEXT} samples");
    }
    Ok(Tensor::cat(&parts, 0).contiguous())
}

/// Frame features `[K, 128]` of one standardised signal `[6, S]` for the frames of `cfg`.
fn frame_features(
    model: &Cpc,
    sig: &Tensor,
    frames: usize,
    cfg: &WatchStreamConfig,
    step: i64,
    device: Device,
) -> Result<Tensor> {
    let s = sig.size()[1];
    let k = frames as i64;
    if k == 0 || cfg.frame_end(k - 1) >= s {
        bail!(
            "CPC frames: {k} frames end at sample {} but the signal has {s}",
            cfg.frame_end(k - 1)
        );
    }
    // Pad so that window k ends at padded index e_k + pad: windows start every hop.
    let pad = CONTEXT - cfg.window;
    if pad < 0 {
        bail!(
            "CPC frames: a context of {CONTEXT} samples is shorter than the frame window {}",
            cfg.window
        );
    }
    let padded = Tensor::cat(
        &[
            Tensor::zeros([6, pad], (Kind::Float, Device::Cpu)),
            sig.shallow_clone(),
        ],
        1,
    );
    // [K, 6, CONTEXT]
    let windows = padded
        .narrow(1, 0, cfg.frame_end(k - 1) + pad + 1)
        .unfold(1, CONTEXT, cfg.hop)
        .transpose(0, 1);
    if windows.size()[0] != k {
        bail!("CPC frames: {} windows for {k} frames", windows.size()[0]);
    }
    let _g = tch::no_grad_guard();
    let mut parts = Vec::new();
    for chunk in windows.split(512, 0) {
        let z = model.encode(&chunk.to_device(device), false)?;
        let c = model.context(&z);
        parts.push(Tensor::cat(&[c.select(1, step), z.select(1, step)], 1).to_device(Device::Cpu));
    }
    Ok(Tensor::cat(&parts, 0))
}

/// What [`cpc_streams`] gives: the streams with CPC features (same frames and labels as the
/// raw ones) and what the report shows of the pre-training.
pub(crate) struct CpcStreams {
    pub streams: WatchStreams,
    pub details: Value,
}

/// Pre-trains CPC on the training subjects' signals (no labels) and describes every frame of
/// `raw` (the raw-window streams cut from `signals` with `cfg`) by its CPC feature.
pub(crate) fn cpc_streams(
    ctx: &Ctx,
    signals: &WatchSignals,
    raw: &WatchStreams,
    cfg: &WatchStreamConfig,
) -> Result<CpcStreams> {
    let p = pretrain_plan(ctx.mode);
    let ccfg = cpc_config();
    let Some(step) = aligned_step(&ccfg, CONTEXT) else {
        bail!("CPC: no encoder step of {CONTEXT} samples lies inside them");
    };
    let (train_sig, test_sig) = standardised(signals);
    let x = pretrain_windows(&train_sig)?;
    let _threads = crate::experiments::OneThread::on(ctx.device);
    tch::manual_seed(ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let model = Cpc::new(&vs.root(), &ccfg)?;
    let runo = RunOptions {
        dir: None,
        progress: true,
        label: "oad.imu CPC pre-training".into(),
        stop_after: p.stop_after,
    };
    let report = crate::experiments::contrastive::pretrain_cpc(
        &mut vs,
        &model,
        x.to_device(ctx.device),
        (ctx.seed, p.epochs, 0),
        json!({"claim": "oad.imu", "cpc": ccfg, "context": CONTEXT, "hop": PRETRAIN_HOP}),
        &runo,
    )?;
    let describe = |sigs: &[Tensor], streams: &[FeatureStream]| -> Result<Vec<Tensor>> {
        if sigs.len() != streams.len() {
            bail!(
                "CPC frames: {} signals for {} streams",
                sigs.len(),
                streams.len()
            );
        }
        sigs.iter()
            .zip(streams)
            .map(|(s, st)| frame_features(&model, s, st.len(), cfg, step, ctx.device))
            .collect()
    };
    let started = std::time::Instant::now();
    let (ftr, fte) = (
        describe(&train_sig, &raw.train)?,
        describe(&test_sig, &raw.test)?,
    );
    let all = Tensor::cat(&ftr, 0);
    let (mean, std) = (
        all.mean_dim(0, true, Kind::Float),
        all.std_dim(0, true, true).clamp_min(1e-6),
    );
    let to_streams = |f: Vec<Tensor>, raw: &[FeatureStream]| -> Result<Vec<FeatureStream>> {
        f.into_iter()
            .zip(raw)
            .map(|(f, r)| {
                Ok(FeatureStream::new(
                    r.name.clone(),
                    (f - &mean) / &std,
                    r.labels.clone(),
                    WATCH_CLASSES,
                )?)
            })
            .collect()
    };
    let streams = WatchStreams {
        train: to_streams(ftr, &raw.train)?,
        test: to_streams(fte, &raw.test)?,
        classes: raw.classes.clone(),
    };
    let feature_seconds = started.elapsed().as_secs_f64();
    let test_acc = tch::no_grad(|| -> Result<Vec<f64>> {
        let xte = pretrain_windows(&test_sig)?;
        let n = xte.size()[0].min(256);
        Ok(model
            .loss(&xte.narrow(0, 0, n).to_device(ctx.device), false)?
            .accuracy)
    })?;
    let details = json!({
        "cpc": ccfg, "context_samples": CONTEXT, "pretrain_hop": PRETRAIN_HOP,
        "pretrain_windows": x.size()[0], "epochs": p.epochs, "stop_after": p.stop_after,
        "steps": report.optimizer_steps, "seconds": report.seconds,
        "feature_seconds": feature_seconds, "epoch_loss": report.epoch_loss(),
        "test_subjects_cpc_accuracy_per_k": test_acc,
        "aligned_step": step, "encoder_steps": encoder_len(&ccfg, CONTEXT),
        "aligned_step_last_sample": last_sample_read(&ccfg, step),
        "feature": "[c_j; z_j] at the aligned step of the 200 samples ending at the frame's end",
        "pretrained_on": "training subjects' joined signals only, no labels",
    });
    Ok(CpcStreams { streams, details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aligned_step_reads_only_the_window() {
        let c = cpc_config();
        assert_eq!(encoder_len(&c, CONTEXT), 50);
        // Layer 3 (k3 s1 p1) reads layer-2 step j+1, which reads up to 4(j+1) + 6 = 4j + 10.
        assert_eq!(last_sample_read(&c, 47), 198);
        assert_eq!(aligned_step(&c, CONTEXT), Some(47));
        assert_eq!(last_sample_read(&c, 48), 202);
        assert_eq!(aligned_step(&c, 4), None);
        assert_eq!(feature_dim(), 128);
    }
}
