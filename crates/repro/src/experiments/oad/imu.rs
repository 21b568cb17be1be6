//! `oad.imu`: OadTR, its encoder-only ablation, a GRU and an LSTM trained on the smartwatch
//! stream (`oad_transformer::watch`: 10 subjects' exercise sets joined with rests, 2 frames a
//! second of 30 window statistics, 7 train / 3 test subjects), several seeds, the official
//! per-frame protocol on every test frame (windows of 32 steps = 16 s, zero-padded at the
//! stream's start). A fifth arm, OadTR on CPC features (`super::cpc`: CPC pre-trained without
//! labels on the training subjects' signals only), compares the feature source on the same
//! frames, labels, windows and seeds.

use anyhow::{Context, Result};
use serde_json::json;
use tch::nn;

use oad_transformer::watch::{
    streams_of, watch_signals, WatchStreamConfig, WATCH_CLASSES, WATCH_FEATURES,
};
use oad_transformer::{
    CellKind, FeatureStream, OadConfig, OadTR, RnnBaseline, RnnConfig, WindowSet, WindowSpec,
};

use super::{fit, Detector, Recipe};
use crate::claim::{Ctx, Measured, Outcome};
use crate::report::Mode;

pub(crate) const OADTR_OVER_GRU_MAP: &str = "OadTR mAP - GRU mAP";
pub(crate) const OADTR_OVER_GRU_CAP: &str = "OadTR mcAP - GRU mcAP";
pub(crate) const DECODER_GAIN: &str = "OadTR mAP - encoder-only mAP";
pub(crate) const OADTR_MAP: &str = "OadTR mAP";
pub(crate) const CPC_OVER_RAW_MAP: &str = "OadTR on CPC features mAP - OadTR mAP";
pub(crate) const CPC_OVER_RAW_CAP: &str = "OadTR on CPC features mcAP - OadTR mcAP";

/// Window length (16 s of history at 2 frames per second).
const ENC_STEPS: i64 = 32;

/// The arms: OadTR, its ablation and the RNNs on the raw-window features, then OadTR on CPC
/// features.
const MODELS: [&str; 5] = ["OadTR", "encoder only", "GRU", "LSTM", CPC_ARM];
const CPC_ARM: &str = "OadTR on CPC features";

struct Plan {
    seeds: u64,
    epochs: usize,
    batch_size: usize,
    /// Training windows every this many frames (consecutive windows overlap in all but one
    /// frame).
    train_stride: i64,
    /// Test windows every this many frames (1: every test frame, the protocol).
    test_stride: i64,
    models: &'static [&'static str],
}

fn plan(mode: Mode) -> Plan {
    match mode {
        Mode::Smoke => Plan {
            seeds: 1,
            epochs: 1,
            batch_size: 16,
            train_stride: 24,
            test_stride: 8,
            models: &["OadTR", "encoder only", "GRU", CPC_ARM],
        },
        _ => Plan {
            seeds: 3,
            epochs: 4,
            batch_size: 64,
            train_stride: 3,
            test_stride: 1,
            models: &MODELS,
        },
    }
}

fn oad_config(feature_dim: i64) -> OadConfig {
    OadConfig::small(feature_dim, WATCH_CLASSES, ENC_STEPS)
}

fn build(name: &str, vs: &nn::VarStore, cfg: &OadConfig) -> Result<Detector> {
    let rnn = |cell| RnnConfig {
        feature_dim: WATCH_FEATURES,
        hidden_dim: 64,
        num_classes: WATCH_CLASSES,
        cell,
        dropout: 0.1,
    };
    Ok(match name {
        "OadTR" | CPC_ARM => Detector::Oad(Box::new(OadTR::new(&vs.root(), cfg)?)),
        "encoder only" => Detector::Oad(Box::new(OadTR::new(&vs.root(), &cfg.encoder_only())?)),
        "GRU" => Detector::Rnn(Box::new(RnnBaseline::new(&vs.root(), &rnn(CellKind::Gru))?)),
        _ => Detector::Rnn(Box::new(RnnBaseline::new(
            &vs.root(),
            &rnn(CellKind::Lstm),
        )?)),
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

pub(crate) fn run(ctx: &Ctx) -> Result<Outcome> {
    let p = plan(ctx.mode);
    let watch = datasets::watch::Watch::load(None).context("the seglearn watch recordings")?;
    let wcfg = WatchStreamConfig::default();
    let signals = watch_signals(&watch, &wcfg)?;
    let streams = streams_of(&signals, &wcfg)?;
    let cfg = oad_config(WATCH_FEATURES);
    let q = cfg.num_queries();
    let spec = WindowSpec {
        enc_steps: ENC_STEPS,
        dec_steps: q,
        stride: 1,
        pad_start: true,
    };
    let sets =
        |train: &[FeatureStream], test: &[FeatureStream]| -> Result<(WindowSet, WindowSet)> {
            let set = |s: &[FeatureStream], stride| {
                WindowSet::new(s, WindowSpec { stride, ..spec }, WATCH_CLASSES, None)
            };
            Ok((set(train, p.train_stride)?, set(test, p.test_stride)?))
        };
    let (train, test) = sets(&streams.train, &streams.test)?;
    let names = p.models;
    // The CPC arm's streams: the same frames and labels, other features.
    let cpc = if names.contains(&CPC_ARM) {
        let c = super::cpc::cpc_streams(ctx, &signals, &streams, &wcfg)?;
        let (tr, te) = sets(&c.streams.train, &c.streams.test)?;
        Some((c.details, tr, te))
    } else {
        None
    };
    let cpc_cfg = oad_config(super::cpc::feature_dim());
    // results[model][seed] = (mAP, mcAP, future mAP, curve, seconds)
    let mut maps = vec![Vec::new(); names.len()];
    let mut caps = vec![Vec::new(); names.len()];
    let mut curves: Vec<Vec<Vec<(f64, f64)>>> = vec![Vec::new(); names.len()];
    let mut future_steps: Vec<Vec<f64>> = Vec::new();
    let mut runs = Vec::new();
    for s in 0..p.seeds {
        let seed = ctx.seed + s;
        for (m, name) in names.iter().enumerate() {
            tch::manual_seed(seed as i64);
            let mut vs = nn::VarStore::new(ctx.device);
            let (base, train, test) = match (&cpc, *name) {
                (Some((_, tr, te)), CPC_ARM) => (&cpc_cfg, tr, te),
                _ => (&cfg, &train, &test),
            };
            let det = build(name, &vs, base)?;
            let params = OadTR::num_params(&vs);
            let model_cfg = if *name == "encoder only" {
                base.encoder_only()
            } else {
                base.clone()
            };
            let recipe = Recipe {
                epochs: p.epochs,
                batch_size: p.batch_size,
                lr: 1e-3,
                weight_decay: 1e-4,
                clip: 1.0,
                cosine: true,
                seed,
                label: format!("oad.imu {name} seed {seed}"),
                eval_every_epoch: ctx.mode != Mode::Smoke,
            };
            let f = fit(&mut vs, &det, &model_cfg, train, test, &recipe)?;
            maps[m].push(100.0 * f.metrics.current.map);
            caps[m].push(100.0 * f.metrics.current.cap);
            curves[m].push(f.curve.clone());
            if *name == "OadTR" {
                future_steps.push(f.metrics.future.iter().map(|x| 100.0 * x.map).collect());
            }
            runs.push(json!({
                "model": name, "seed": seed, "params": params, "seconds": f.seconds,
                "map": 100.0 * f.metrics.current.map, "mcap": 100.0 * f.metrics.current.cap,
                "future_map": f.metrics.future_map().map(|x| 100.0 * x),
                "per_class_ap": f.metrics.current.ap,
            }));
        }
    }
    let m: Vec<f64> = maps.iter().map(|v| mean(v)).collect();
    let c: Vec<f64> = caps.iter().map(|v| mean(v)).collect();
    let mut plots = Vec::new();
    if ctx.mode != Mode::Smoke {
        let series: Vec<train_kit::Series> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let per_epoch = (0..p.epochs)
                    .map(|e| {
                        let v: Vec<f64> = curves[i]
                            .iter()
                            .filter_map(|c| c.get(e).map(|x| x.1))
                            .collect();
                        ((e + 1) as f64, mean(&v))
                    })
                    .collect();
                train_kit::Series::new(format!("{n} (final {:.1})", m[i]), per_epoch)
            })
            .collect();
        train_kit::line_plot(
            &ctx.out_dir.join("imu_map.png"),
            "Smartwatch stream, test subjects: per-frame mAP (mean over seeds)",
            "epoch",
            "mAP (%)",
            &series,
        )?;
        plots.push("imu_map.png".to_string());
    }
    let steps: Vec<(f64, f64)> = (0..q as usize)
        .map(|j| {
            let v: Vec<f64> = future_steps
                .iter()
                .filter_map(|s| s.get(j).copied())
                .collect();
            ((j + 1) as f64, mean(&v))
        })
        .collect();
    train_kit::line_plot(
        &ctx.out_dir.join("imu_future.png"),
        "OadTR anticipation on the smartwatch stream: mAP of the frame k steps ahead",
        "steps ahead (0.5 s each)",
        "mAP (%)",
        &[train_kit::Series::new("decoder query k", steps.clone())],
    )?;
    plots.push("imu_future.png".to_string());
    let gap =
        |a: usize, b: usize, v: &[f64]| v.get(a).zip(v.get(b)).map_or(f64::NAN, |(x, y)| x - y);
    let mut measured = Measured::new()
        .number(OADTR_MAP, m[0])
        .number(OADTR_OVER_GRU_MAP, gap(0, 2, &m))
        .number(OADTR_OVER_GRU_CAP, gap(0, 2, &c))
        .number(DECODER_GAIN, gap(0, 1, &m));
    let cpc_index = names.iter().position(|n| *n == CPC_ARM);
    if let Some(i) = cpc_index {
        measured = measured
            .number(CPC_OVER_RAW_MAP, gap(i, 0, &m))
            .number(CPC_OVER_RAW_CAP, gap(i, 0, &c));
    }
    let table: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} {:.1}/{:.1}", m[i], c[i]))
        .collect();
    Ok(Outcome {
        value: m[0],
        value_text: format!(
            "mAP/mcAP over {} seed(s): {}; OadTR anticipation mAP 1..{q} steps ahead {}",
            p.seeds,
            table.join(", "),
            steps
                .iter()
                .map(|s| format!("{:.1}", s.1))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        measured,
        skipped: None,
        plots,
        details: json!({
            "models": names, "map": m, "mcap": c, "map_per_seed": maps, "mcap_per_seed": caps,
            "oadtr_future_map_per_step": steps.iter().map(|s| s.1).collect::<Vec<_>>(),
            "runs": runs, "oadtr_config": cfg, "oadtr_cpc_config": cpc.as_ref().map(|_| &cpc_cfg),
            "cpc_features": cpc.as_ref().map(|c| &c.0),
            "cpc_minus_raw": cpc_index.map(|i| json!({
                "oadtr_map": gap(i, 0, &m), "oadtr_mcap": gap(i, 0, &c),
                "map_per_seed": maps[i].iter().zip(&maps[0]).map(|(a, b)| a - b).collect::<Vec<_>>(),
            })),
            "stream": {
                "train_subjects": streams.train.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "test_subjects": streams.test.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "classes": streams.classes, "train_windows": train.len(), "test_windows": test.len(),
                "frame": "0.5 s hop, 1 s window, 30 statistics", "enc_steps": ENC_STEPS,
                "rests": "synthesised between sets (see oad_transformer::watch)",
            },
            "recipe": {"epochs": p.epochs, "batch": p.batch_size, "train_stride": p.train_stride, "test_stride": p.test_stride, "optimizer": "AdamW lr 1e-3 wd 1e-4, warmup + cosine, clip 1.0"},
        }),
    })
}
