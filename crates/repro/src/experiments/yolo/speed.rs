//! `yolo.unified-speed`: one pass of the unified detector against a classifier slid over an
//! image pyramid (det-pyramid's [`det_pyramid::sliding`] baseline) on the same trunk, data
//! and step budget; images/s and AP of both on the same held-out MNIST-det canvases.

use std::sync::Arc;

use anyhow::Result;
use det_core::data::{AugmentConfig, DetLoader, DetLoaderConfig, DetectionSet, MnistDet};
use det_pyramid::sliding::{CropClassifier, CropConfig, CropSource, SlidingConfig, SlidingWindow};
use det_pyramid::{Depth, ResNetConfig};
use serde_json::json;
use tch::nn;
use train_kit::Series;

use super::{row, table, Row};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::experiments::det_pyramid::train::Budget;
use crate::experiments::det_pyramid::{budget, mnist_config};
use crate::report::Mode;

const SPEEDUP: &str = "YOLO images/s over sliding-window images/s";
const AP_GAP: &str = "YOLO AP50 minus sliding-window AP50 (COCO)";
const VALID: &str = "every AP is a number in [0, 100] and images/s is positive";

pub(super) fn claims() -> Vec<Claim> {
    vec![Claim {
        id: "yolo.unified-speed",
        claim: "One pass of a unified detector is an order of magnitude faster than a \
                classifier run over a sliding window and an image pyramid built on the same \
                trunk, at comparable accuracy",
        source: "Redmon et al. 2016, arXiv 1506.02640, Sec. 1, Sec. 4 and Table 1 (YOLO 45 \
                 FPS; DPM-style sliding windows and R-CNN pipelines far slower: R-CNN well under \
                 1 FPS)",
        paper_value: "45 FPS vs < 1 FPS (R-CNN), 63.4 vs 66.0 mAP",
        tolerance: Tolerance::new([
            Bound::at_least(SPEEDUP, 10.0).unit("x"),
            Bound::at_least(AP_GAP, -15.0).unit(" points"),
        ])
        .note(
            "same ResNet-18 width, data and step budget (det-pyramid's); windows of 32 px at \
               six scales, stride 12 px; both timed on the same held-out canvases",
        ),
        smoke_tolerance: Some(
            Tolerance::new([Bound::holds(VALID)])
                .note("three steps each on tiny sets: both detectors run end to end"),
        ),
        full_needs: None,
        run: run_speed,
    }]
}

/// Trains the crop classifier with the budget (AdamW, as det-pyramid's detectors).
fn fit_crops(
    ctx: &Ctx,
    train: Arc<dyn DetectionSet>,
    b: &Budget,
) -> Result<(nn::VarStore, CropClassifier, std::path::PathBuf, f64)> {
    let classes = train.categories().len() as i64;
    tch::manual_seed(ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let crop = CropConfig::default();
    let clf = CropClassifier::new(
        &vs.root(),
        &ResNetConfig::small(Depth::R18, b.width),
        classes,
        crop.window,
    )?;
    let lcfg = DetLoaderConfig {
        batch_size: b.batch_size,
        shuffle: true,
        drop_last: true,
        seed: ctx.seed,
        size: (b.size, b.size),
        augment: b.augment.then(|| AugmentConfig {
            hflip: 0.0,
            scale: (0.8, 1.2),
            hsv: None,
            ..Default::default()
        }),
        ..Default::default()
    };
    let source = CropSource {
        loader: DetLoader::new(train, lcfg, ctx.device)?,
        num_classes: classes,
        cfg: crop,
    };
    let (epochs, total, stop_after) =
        super::fit::steps_of(source.loader.batches_per_epoch(), b.steps);
    let cfg = train_kit::TrainerConfig {
        epochs,
        schedule: train_kit::Schedule::WarmupCosine {
            base_lr: b.lr,
            min_lr: b.lr * 0.05,
            warmup_steps: (total / 10).max(1),
            total_steps: total,
        },
        clip_grad: Some(10.0),
        seeding: train_kit::Seeding::Caller,
        log_every: 5,
        eval_every: 0,
        ..Default::default()
    };
    let out = crate::experiments::fresh_dir(&ctx.out_dir.join("sliding"))?;
    let run = train_kit::RunOptions {
        dir: Some(out.clone()),
        progress: true,
        label: "sliding-window classifier".into(),
        stop_after,
    };
    let mut opt = train_kit::AdamW::with_single_group(
        &vs,
        train_kit::AdamWConfig {
            lr: b.lr,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let c = &clf;
    let step = |batch: det_pyramid::sliding::CropBatch,
                _: &train_kit::StepInfo|
     -> Result<train_kit::StepOutput> {
        let logits = c.forward_t(&batch.crops, true)?;
        let loss = logits.cross_entropy_for_logits(&batch.labels);
        Ok(train_kit::StepOutput {
            loss,
            parts: vec![],
        })
    };
    let report = train_kit::Trainer::new(&cfg, &run)?.fit(
        &mut vs,
        &mut opt,
        &source,
        step,
        train_kit::no_eval,
    )?;
    Ok((vs, clf, out.join("metrics.jsonl"), report.seconds))
}

fn run_speed(ctx: &Ctx) -> Result<Outcome> {
    let b = budget(ctx);
    let (train, test) = MnistDet::load(ctx.data_root.as_deref(), &mnist_config(ctx))?;
    let train: Arc<dyn DetectionSet> = Arc::new(train);
    let n = if ctx.mode == Mode::Smoke { 2 } else { 24 };
    let test: Arc<dyn DetectionSet> = Arc::new(super::Head {
        inner: Arc::new(test),
        n,
    });
    let yolo = super::fit::train_yolo(
        ctx,
        "unified_yolo",
        "YOLO (unified)",
        Arc::clone(&train),
        Arc::clone(&test),
        &b,
    )?;
    let (_vs, clf, crop_log, crop_s) = fit_crops(ctx, Arc::clone(&train), &b)?;
    let mut scfg = SlidingConfig::default();
    if ctx.mode == Mode::Smoke {
        scfg.scales = vec![1.0, 0.5];
    }
    let sw = SlidingWindow {
        classifier: &clf,
        cfg: scfg,
    };
    let windows = sw.windows((b.size as i64, b.size as i64));
    let (sr, svoc) = super::fit::evaluate(&sw, Arc::clone(&test), &b, ctx.device)?;
    let voc_yolo = f64::NAN;
    let rows: Vec<Row> = vec![
        row(
            "MNIST-det",
            "YOLO v1 (one pass)",
            &yolo.report,
            voc_yolo,
            yolo.train_s,
        ),
        row(
            "MNIST-det",
            "sliding window x image pyramid",
            &sr,
            svoc,
            crop_s,
        ),
    ];
    let speedup = rows[0].images_per_s / rows[1].images_per_s.max(1e-12);
    let gap = rows[0].ap50 - rows[1].ap50;
    let ok = rows.iter().all(|r| {
        (0.0..=100.0).contains(&r.ap50) && (0.0..=100.0).contains(&r.ap) && r.images_per_s > 0.0
    });
    let table = table(&rows);
    eprintln!("{table}");
    std::fs::write(ctx.out_dir.join("table.md"), &table)?;
    let series: Vec<Series> = rows
        .iter()
        .map(|r| {
            Series::new(
                r.method.clone(),
                vec![(r.images_per_s, if r.ap50.is_nan() { 0.0 } else { r.ap50 })],
            )
        })
        .collect();
    train_kit::line_plot(
        &ctx.out_dir.join("speed.png"),
        "AP50 against images/s: one pass vs sliding windows",
        "images / s",
        "AP50 (COCO)",
        &series,
    )?;
    train_kit::training_curves_png(
        &[
            ("YOLO", yolo.metrics.as_path()),
            ("crop classifier", crop_log.as_path()),
        ],
        &ctx.out_dir.join("training.png"),
        "training: YOLO and the sliding-window classifier",
    )?;
    let mut measured = Measured::new().flag(VALID, ok);
    if ctx.mode != Mode::Smoke {
        measured = measured.number(SPEEDUP, speedup).number(AP_GAP, gap);
    }
    Ok(Outcome {
        value: speedup,
        value_text: format!(
            "YOLO {:.1} img/s at AP50 {:.1}; sliding window {:.2} img/s at AP50 {:.1} \
             ({windows} windows per image): {speedup:.0}x",
            rows[0].images_per_s, rows[0].ap50, rows[1].images_per_s, rows[1].ap50
        ),
        measured,
        skipped: None,
        plots: vec!["speed.png".into(), "training.png".into()],
        details: json!({"rows": rows, "table": table, "budget": b, "test_images": n,
                        "windows_per_image": windows,
                        "sliding": {"scales": sw.cfg.scales, "stride": sw.cfg.stride,
                                    "window": clf.window()}}),
    })
}
