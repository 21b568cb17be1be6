//! `oad.latency`: per-frame latency at the THUMOS'14 configuration (TSN 3072-d features, 64
//! steps, width 1024, 8 queries) of (a) the live path, `OadStream::push` (one projected row
//! into the ring buffer, encoder + decoder on the window), (b) re-running the batched model on
//! the last 64 features each frame, and (c) a GRU of the same width stepping once per frame
//! (TRN-style baseline). The three run interleaved, frame by frame, on the same random
//! features; the live path's predictions are compared with the batched ones on every frame.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use tch::{nn, Kind, Tensor};

use oad_transformer::{
    param_count, CellKind, OadConfig, OadStream, OadTR, RnnBaseline, RnnConfig, RnnStream,
};

use super::median_p99;
use crate::claim::{Ctx, Measured, Outcome};
use crate::report::Mode;

pub(crate) const SPEEDUP: &str = "median re-run / median live latency";
pub(crate) const STREAM_DIFF: &str = "max |live - batched| logit";

pub(crate) fn run(ctx: &Ctx) -> Result<Outcome> {
    let (warmup, frames) = match ctx.mode {
        Mode::Smoke => (1usize, 3usize),
        _ => (5, 80),
    };
    let device = ctx.device;
    tch::manual_seed(ctx.seed as i64);
    let cfg = OadConfig::thumos_tsn();
    let e = cfg.enc_steps;
    let vs = nn::VarStore::new(device);
    let model = OadTR::new(&vs.root(), &cfg)?;
    let gvs = nn::VarStore::new(device);
    let gru = RnnBaseline::new(
        &gvs.root(),
        &RnnConfig {
            feature_dim: cfg.feature_dim,
            hidden_dim: cfg.embed_dim,
            num_classes: cfg.num_classes,
            cell: CellKind::Gru,
            dropout: 0.1,
        },
    )?;
    let total = warmup + frames;
    let feats = Tensor::randn([total as i64, cfg.feature_dim], (Kind::Float, device));
    // The batched path's history: zero features before the stream's start.
    let padded = Tensor::cat(
        &[
            Tensor::zeros([e - 1, cfg.feature_dim], (Kind::Float, device)),
            feats.shallow_clone(),
        ],
        0,
    );
    let mut live = OadStream::new(&model);
    let mut rnn = RnnStream::new(&gru);
    let (mut t_live, mut t_rerun, mut t_gru) = (vec![], vec![], vec![]);
    let mut worst = 0.0f64;
    let sync = || {
        if let tch::Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let bar = train_kit::progress_bar(total as u64, "oad.latency frames");
    for i in 0..total {
        let x = feats.get(i as i64);
        let t0 = Instant::now();
        let step = live.push(&x)?;
        let _ = step.current.double_value(&[0]);
        sync();
        let dt_live = t0.elapsed().as_secs_f64();
        let window = padded.narrow(0, i as i64, e).unsqueeze(0);
        let t0 = Instant::now();
        let batched = tch::no_grad(|| model.forward_t(&window, false))?;
        let _ = batched.current.double_value(&[0, 0]);
        sync();
        let dt_rerun = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let g = rnn.push(&x)?;
        let _ = g.double_value(&[0]);
        sync();
        let dt_gru = t0.elapsed().as_secs_f64();
        let d = (&step.current - batched.current.squeeze_dim(0))
            .abs()
            .max()
            .double_value(&[]);
        worst = worst.max(d);
        if let (Some(a), Some(b)) = (&step.future, &batched.future) {
            worst = worst.max((a - b.squeeze_dim(0)).abs().max().double_value(&[]));
        }
        if i >= warmup {
            t_live.push(dt_live);
            t_rerun.push(dt_rerun);
            t_gru.push(dt_gru);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (lm, lp) = median_p99(&t_live);
    let (rm, rp) = median_p99(&t_rerun);
    let (gm, gp) = median_p99(&t_gru);
    let speedup = rm / lm;
    let series = |name: &str, v: &[f64]| {
        train_kit::Series::new(
            name,
            v.iter()
                .enumerate()
                .map(|(i, t)| (i as f64, 1e3 * t))
                .collect(),
        )
    };
    train_kit::line_plot(
        &ctx.out_dir.join("latency.png"),
        "Per-frame latency at the THUMOS'14 size (CPU)",
        "frame",
        "ms",
        &[
            series(&format!("OadTR live (median {:.1} ms)", 1e3 * lm), &t_live),
            series(
                &format!("OadTR re-run on the window ({:.1} ms)", 1e3 * rm),
                &t_rerun,
            ),
            series(&format!("GRU step ({:.1} ms)", 1e3 * gm), &t_gru),
        ],
    )?;
    Ok(Outcome {
        value: speedup,
        value_text: format!(
            "live {:.1} ms median / {:.1} ms p99, re-run {:.1} / {:.1} ms ({speedup:.2}x), GRU \
             step {:.2} / {:.2} ms; live vs batched {worst:.1e}",
            1e3 * lm,
            1e3 * lp,
            1e3 * rm,
            1e3 * rp,
            1e3 * gm,
            1e3 * gp
        ),
        measured: Measured::new()
            .number(SPEEDUP, speedup)
            .number(STREAM_DIFF, worst),
        skipped: None,
        plots: vec!["latency.png".into()],
        details: json!({
            "frames_timed": frames, "warmup": warmup, "threads": tch::get_num_threads(),
            "device": train_kit::device_name(device),
            "oadtr_params": param_count(&cfg), "gru_params": OadTR::num_params(&gvs),
            "live_s": {"median": lm, "p99": lp}, "rerun_s": {"median": rm, "p99": rp},
            "gru_s": {"median": gm, "p99": gp},
            "real_time_at_4_hz": lp < 0.25,
            "note": "the live path saves the 64-row projection of the window (3072 -> 1024) each \
                     frame; the encoder and decoder run on the whole window either way (the \
                     position encoding is absolute, so no key/value cache applies)",
        }),
    })
}
