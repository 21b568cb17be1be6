//! `nce.cpc-imu`: CPC (van den Oord et al. 2018) pre-trained without labels on the seglearn
//! smartwatch IMU recordings (`datasets::watch`, 140 recordings of 7 shoulder exercises at
//! 50 Hz), split by subject; a linear probe on the frozen features classifies the exercise of a
//! 4 s window of the held-out subjects, against the same probe on a random-init encoder, for
//! several prediction horizons K. Pre-training goes through `train_kit::Trainer`.

use anyhow::{Context, Result};
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

use contrastive_nce::cpc::{Cpc, CpcConfig};
use datasets::watch::{Watch, WatchRecording};
use train_kit::{RunOptions, Series};

use super::linear_probe;

use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::Mode;

const GAIN: &str = "probe accuracy gain of CPC over a random-init encoder (best K)";
const CPC_ACC: &str = "probe accuracy on CPC features (best K)";

/// Samples per window (4 s at 50 Hz) and the hop between windows.
const WINDOW: i64 = 200;
const HOP: i64 = 100;

/// The claim.
pub fn claim() -> Claim {
    Claim {
        id: "nce.cpc-imu",
        claim: "CPC pre-trained on unlabelled IMU streams gives features on which a linear probe \
                classifies the exercise of unseen subjects far better than on a random-init \
                encoder; accuracy against the prediction horizon K",
        source: "van den Oord et al. 2018, arXiv 1807.03748, Sec. 3.1 (linear probes on CPC \
                 features beat random-init features); data: seglearn 1.2.5 watch_dataset \
                 (Burns et al. 2018), split by subject",
        paper_value: "CPC probe far above the random-init probe (audio: 64.6% vs 27.6% phones)",
        tolerance: Tolerance::new([Bound::at_least(GAIN, 0.05).percent()])
            .note("window-level accuracy on the held-out subjects; 7 classes, chance 14%"),
        smoke_tolerance: Some(
            Tolerance::new([])
                .note("one K, one epoch on a quarter of the windows: it only has to run"),
        ),
        full_needs: None,
        run,
    }
}

/// Overlapping windows `[n, 6, WINDOW]` of the recordings, with their exercise labels.
fn windows(recs: &[&WatchRecording], mean: &Tensor, std: &Tensor) -> (Tensor, Tensor) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for r in recs {
        let t = r.signal.size()[0];
        let sig = ((&r.signal - mean) / std).transpose(0, 1); // [6, T]
        let mut s = 0;
        while s + WINDOW <= t {
            xs.push(sig.narrow(1, s, WINDOW));
            ys.push(r.exercise);
            s += HOP;
        }
    }
    (Tensor::stack(&xs, 0), Tensor::from_slice(&ys))
}

fn features(model: &Cpc, x: &Tensor) -> Result<Tensor> {
    let _g = tch::no_grad_guard();
    let parts: Result<Vec<Tensor>> = x
        .split(256, 0)
        .iter()
        .map(|c| Ok(model.features(c)?))
        .collect();
    Ok(Tensor::cat(&parts?, 0))
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let watch = Watch::load(ctx.data_root.as_deref()).context("the seglearn watch recordings")?;
    let subjects = watch.subjects();
    // The last quarter of the subjects (by number) is held out.
    let n_test = (subjects.len() / 4).max(1);
    let test_subjects = &subjects[subjects.len() - n_test..];
    let (train_recs, test_recs) = watch.split_by_subject(test_subjects);
    let all_train = Tensor::cat(
        &train_recs
            .iter()
            .map(|r| r.signal.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    );
    let mean = all_train.mean_dim([0i64].as_slice(), true, Kind::Float);
    let std = all_train
        .std_dim([0i64].as_slice(), true, true)
        .clamp_min(1e-6);
    let (mut xtr, mut ytr) = windows(&train_recs, &mean, &std);
    let (xte, yte) = windows(&test_recs, &mean, &std);
    let classes = watch.exercises.len() as i64;
    let (horizons, epochs): (Vec<usize>, usize) = match ctx.mode {
        Mode::Smoke => {
            let keep = xtr.size()[0] / 4;
            let idx = Tensor::arange_start_step(0, 4 * keep, 4, (Kind::Int64, Device::Cpu));
            xtr = xtr.index_select(0, &idx);
            ytr = ytr.index_select(0, &idx);
            (vec![4], 1)
        }
        _ => (vec![1, 2, 4, 8], 5),
    };
    // Small kernels (64 channels, GRU 64): one thread avoids the synchronisation cost that
    // dominates on a shared machine; restored when the claim ends.
    let _threads = crate::experiments::OneThread::on(ctx.device);
    let mut rows = Vec::new();
    let mut random_acc = None;
    for &k in &horizons {
        let cfg = CpcConfig {
            horizon: k,
            ..CpcConfig::imu()
        };
        tch::manual_seed(ctx.seed as i64);
        let mut vs = nn::VarStore::new(ctx.device);
        let model = Cpc::new(&vs.root(), &cfg)?;
        if random_acc.is_none() {
            // The same architecture and seed, never trained: the baseline the paper compares to.
            let (ftr, fte) = (
                features(&model, &xtr.to_device(ctx.device))?,
                features(&model, &xte.to_device(ctx.device))?,
            );
            random_acc = Some(linear_probe(
                (&ftr.to_device(Device::Cpu), &ytr),
                (&fte.to_device(Device::Cpu), &yte),
                classes,
                0,
            )?);
        }
        let dir = super::super::fresh_dir(&ctx.out_dir.join(format!("cpc_k{k}")))?;
        let runo = RunOptions {
            dir: Some(dir),
            progress: true,
            label: format!("nce.cpc-imu K={k}"),
            stop_after: None,
        };
        let report = super::pretrain_cpc(
            &mut vs,
            &model,
            xtr.to_device(ctx.device),
            (ctx.seed, epochs, 20),
            json!({"claim": "nce.cpc-imu", "cpc": cfg, "window": WINDOW, "hop": HOP}),
            &runo,
        )?;
        let (ftr, fte) = (
            features(&model, &xtr.to_device(ctx.device))?,
            features(&model, &xte.to_device(ctx.device))?,
        );
        let acc = linear_probe(
            (&ftr.to_device(Device::Cpu), &ytr),
            (&fte.to_device(Device::Cpu), &yte),
            classes,
            0,
        )?;
        let cpc_acc_k1 = tch::no_grad(|| {
            model.loss(
                &xte.narrow(0, 0, xte.size()[0].min(64))
                    .to_device(ctx.device),
                false,
            )
        })?
        .accuracy;
        rows.push((k, acc, report.epoch_loss(), cpc_acc_k1));
    }
    let random = random_acc.unwrap_or(f64::NAN);
    let best = rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
    let best_k = rows.iter().find(|r| r.1 == best).map(|r| r.0).unwrap_or(0);

    let plot = "probe_vs_k.png".to_owned();
    let ks: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
    train_kit::line_plot(
        &ctx.out_dir.join(&plot),
        "nce.cpc-imu: linear-probe accuracy on held-out subjects",
        "prediction horizon K",
        "test accuracy (windows)",
        &[
            Series::new(
                "CPC features",
                rows.iter().map(|r| (r.0 as f64, r.1)).collect(),
            ),
            Series::new(
                "random-init encoder",
                ks.iter().map(|&k| (k, random)).collect(),
            ),
        ],
    )?;
    Ok(Outcome {
        value: best,
        value_text: format!(
            "probe {:.1}% on CPC features (K={best_k}) vs {:.1}% random-init; by K: {}",
            100.0 * best,
            100.0 * random,
            rows.iter()
                .map(|r| format!("K={} {:.1}%", r.0, 100.0 * r.1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        measured: Measured::new()
            .number(GAIN, best - random)
            .number(CPC_ACC, best),
        skipped: None,
        plots: vec![plot],
        details: json!({
            "test_subjects": test_subjects,
            "train_windows": xtr.size()[0],
            "test_windows": xte.size()[0],
            "random_init_accuracy": random,
            "by_k": rows.iter().map(|r| json!({"k": r.0, "probe_accuracy": r.1, "epoch_loss": r.2, "test_cpc_accuracy_per_step": r.3})).collect::<Vec<_>>(),
        }),
    })
}
