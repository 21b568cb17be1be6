//! yolo claims: YOLO v1 (Redmon et al. 2016) trained with det-pyramid's CPU budget on
//! MNIST-det digits (`yolo.digits`) and the deepforest trees (`yolo.trees`), the paper's
//! central speed claim in kind — one pass of the unified detector against a sliding-window
//! classifier over an image pyramid from the same trunk (`yolo.unified-speed`) — and the VOC
//! recipe (`yolo.full`, needs data; the paper network's FPS measured on this machine).
//!
//! [`fit::train_yolo`] is the entry point the anchor-free comparison uses for YOLO's row.

pub(crate) mod fit;
mod full;
mod speed;

use std::sync::Arc;

use anyhow::Result;
use det_core::data::{Category, DetRecord, DetectionReport, DetectionSet, MnistDet};
use serde_json::json;
use train_kit::Series;
use yolo::{DecodeConfig, YoloDetector};

use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::experiments::det_pyramid::{budget, deepforest, mnist_config};
use crate::report::Mode;

// The measurements the tolerances below check.
const DIGITS_AP50: &str = "AP50 (COCO) on held-out MNIST-det canvases";
const TREES_AP50: &str = "AP50 (COCO) on held-out deepforest tiles";
const APS_VALID: &str = "every AP is a number in [0, 100] and images/s is positive";

/// The yolo claims, in report order.
pub fn claims() -> Vec<Claim> {
    let mut v = vec![
        Claim {
            id: "yolo.digits",
            claim: "One network trained end to end on whole images (YOLO v1's loss, SGD recipe) \
                    detects digits on held-out MNIST-det canvases",
            source: "Redmon et al. 2016, arXiv 1506.02640, Sec. 2 (unified detection) and \
                     Sec. 2.2 (loss, recipe); scaled down: det-pyramid's CPU budget and trunk",
            paper_value: "63.4 mAP on VOC 2007 (paper network); here a small trunk on digits",
            tolerance: Tolerance::new([Bound::at_least(DIGITS_AP50, 20.0).unit(" points")]).note(
                "ResNet-18 trunk (det-pyramid's budget width) at stride 16, S = input/16, \
                       B = 2, the paper's loss, det-pyramid's step budget",
            ),
            smoke_tolerance: Some(
                Tolerance::new([Bound::holds(APS_VALID)])
                    .note("three steps on tiny sets: trains, decodes and evaluates"),
            ),
            full_needs: None,
            run: run_digits,
        },
        Claim {
            id: "yolo.trees",
            claim: "The same recipe detects trees on held-out deepforest aerial tiles",
            source: "Redmon et al. 2016, arXiv 1506.02640, Sec. 2.2 and Sec. 2.4 (limitations: \
                     small objects in groups, one class and two boxes per cell); deepforest \
                     2.1.0 data",
            paper_value: "the paper names dense small objects as YOLO's weak point",
            tolerance: Tolerance::new([Bound::at_least(TREES_AP50, 5.0).unit(" points")])
                .note("same model and budget as yolo.digits; 128 px tiles"),
            smoke_tolerance: Some(
                Tolerance::new([Bound::holds(APS_VALID)])
                    .note("three steps: trains and evaluates on the trees"),
            ),
            full_needs: None,
            run: run_trees,
        },
    ];
    v.extend(speed::claims());
    v.extend(full::claims());
    v
}

/// The first `n` images of a set (the sliding window is slow to evaluate).
pub(super) struct Head {
    pub(super) inner: Arc<dyn DetectionSet>,
    pub(super) n: usize,
}

impl DetectionSet for Head {
    fn name(&self) -> String {
        format!("{} (first {})", self.inner.name(), self.n)
    }
    fn categories(&self) -> &[Category] {
        self.inner.categories()
    }
    fn records(&self) -> &[DetRecord] {
        let r = self.inner.records();
        &r[..self.n.min(r.len())]
    }
    fn image(&self, i: usize) -> det_core::Result<tch::Tensor> {
        self.inner.image(i)
    }
    fn channels(&self) -> i64 {
        self.inner.channels()
    }
}

/// One row of a table.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Row {
    data: String,
    method: String,
    ap50: f64,
    ap50_voc: f64,
    ap: f64,
    ap_small: f64,
    images_per_s: f64,
    train_s: f64,
}

fn pct(x: f64) -> f64 {
    if x < 0.0 || !x.is_finite() {
        f64::NAN
    } else {
        100.0 * x
    }
}

pub(crate) fn row(data: &str, method: &str, r: &DetectionReport, voc: f64, train_s: f64) -> Row {
    Row {
        data: data.into(),
        method: method.into(),
        ap50: pct(r.ap50),
        ap50_voc: pct(voc),
        ap: pct(r.ap),
        ap_small: pct(r.ap_small),
        images_per_s: r.images_per_s_with_decode,
        train_s,
    }
}

pub(crate) fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| data | method | AP50 (COCO) | AP50 (VOC all-point) | AP | AP_small | img/s | train s |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |\n",
            r.data, r.method, r.ap50, r.ap50_voc, r.ap, r.ap_small, r.images_per_s, r.train_s
        );
    }
    s
}

pub(crate) fn valid(rows: &[Row]) -> bool {
    rows.iter().all(|r| {
        [r.ap50, r.ap50_voc, r.ap]
            .iter()
            .all(|x| (0.0..=100.0).contains(x))
            && r.images_per_s > 0.0
    })
}

/// Trains and evaluates YOLO on one data set: the row, the training log, the model's
/// checkpoint folder.
fn one(
    ctx: &Ctx,
    data: &str,
    train: Arc<dyn DetectionSet>,
    test: Arc<dyn DetectionSet>,
) -> Result<(Row, std::path::PathBuf)> {
    let b = budget(ctx);
    let dir = format!("yolo_{}", data.replace(['-', ' '], "_").to_lowercase());
    let t = fit::fit_yolo(ctx, &dir, &format!("YOLO {data}"), train, &b)?;
    let det = YoloDetector {
        model: &t.model,
        cfg: DecodeConfig::default(),
    };
    let (r, voc) = fit::evaluate(&det, Arc::clone(&test), &b, ctx.device)?;
    Ok((
        row(data, "YOLO v1 (ResNet-18 trunk)", &r, voc, t.seconds),
        t.metrics,
    ))
}

fn outcome(
    ctx: &Ctx,
    data: &str,
    key: &'static str,
    train: Arc<dyn DetectionSet>,
    test: Arc<dyn DetectionSet>,
) -> Result<Outcome> {
    let (r, metrics) = one(ctx, data, train, test)?;
    let rows = vec![r.clone()];
    let table = table(&rows);
    eprintln!("{table}");
    std::fs::write(ctx.out_dir.join("table.md"), &table)?;
    train_kit::training_curves_png(
        &[(data, metrics.as_path())],
        &ctx.out_dir.join("training.png"),
        &format!("YOLO v1 on {data}: loss by term"),
    )?;
    train_kit::line_plot(
        &ctx.out_dir.join("ap.png"),
        &format!("YOLO v1 on {data}"),
        "images / s",
        "AP50 (COCO)",
        &[Series::new(
            "YOLO v1".to_string(),
            vec![(r.images_per_s, if r.ap50.is_nan() { 0.0 } else { r.ap50 })],
        )],
    )?;
    let mut measured = Measured::new().flag(APS_VALID, valid(&rows));
    if ctx.mode != Mode::Smoke {
        measured = measured.number(key, r.ap50);
    }
    let ckpt = metrics.parent().map(|p| p.display().to_string());
    Ok(Outcome {
        value: r.ap50,
        value_text: format!(
            "{data}: AP50 {:.1} (COCO), {:.1} (VOC all-point), AP {:.1}, {:.0} img/s",
            r.ap50, r.ap50_voc, r.ap, r.images_per_s
        ),
        measured,
        skipped: None,
        plots: vec!["training.png".into(), "ap.png".into()],
        details: json!({"rows": rows, "table": table, "budget": budget(ctx),
                        "sgd_lr": fit::SGD_LR, "checkpoint": ckpt,
                        "infer": "cargo run --release -p yolo --bin yolo-infer -- --checkpoint \
                                  <checkpoint> --image IMG --out OUT.png"}),
    })
}

fn run_digits(ctx: &Ctx) -> Result<Outcome> {
    let (train, test) = MnistDet::load(ctx.data_root.as_deref(), &mnist_config(ctx))?;
    outcome(
        ctx,
        "MNIST-det",
        DIGITS_AP50,
        Arc::new(train),
        Arc::new(test),
    )
}

fn run_trees(ctx: &Ctx) -> Result<Outcome> {
    let (train, test) = deepforest(ctx)?;
    let test: Arc<dyn DetectionSet> = if ctx.mode == Mode::Smoke {
        Arc::new(Head { inner: test, n: 8 })
    } else {
        test
    };
    outcome(ctx, "deepforest", TREES_AP50, train, test)
}
