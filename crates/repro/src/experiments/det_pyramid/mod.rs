//! det-pyramid claims: feature pyramid vs single-scale features vs image pyramid vs TridentNet
//! for small objects (MNIST-det and the deepforest trees), copy-paste oversampling of small
//! objects, and the paper-scale R50-FPN RetinaNet recipe on COCO (needs data).
//!
//! All variants share the head, trunk width, input size, optimiser and step budget; the image
//! pyramid reuses the trained FPN detector at test time (SNIP-style: the extra scale reports
//! small objects only).

mod full;
pub(crate) mod train;

use std::sync::Arc;

use anyhow::{Context, Result};
use det_core::data::{DeepForestSet, DetectionReport, DetectionSet, MnistDet, MnistDetConfig};
use det_pyramid::copy_paste::{CopyPaste, CopyPasteConfig};
use det_pyramid::inference::{Merge, PyramidInferenceConfig};
use det_pyramid::ValidRange;
use serde_json::json;
use train_kit::Series;

use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::Mode;
use train::{build, evaluate, fit, Budget, PyramidDetector, Variant};

// The measurements the tolerances below check.
const FPN_OVER_C5: &str = "FPN AP_small minus C5-only AP_small on MNIST-det";
const FPN_OVER_C5_TREES: &str = "FPN AP_small minus C5-only AP_small on the deepforest trees";
const RECOVERED: &str = "share of the image pyramid's AP_small gain over C5 that FPN alone reaches";
const COST: &str = "image pyramid cost over FPN cost (s/img)";
const APS_VALID: &str = "every AP is a number in [0, 100]";
const CP_GAIN: &str = "AP_small with copy-paste minus without";
const FULL_AP: &str = "box AP on COCO val2017";

/// The det-pyramid claims, in report order.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "pyramid.small-objects",
            claim: "With the same head and budget, a feature pyramid detects small objects better \
                    than single-scale C5 features and recovers most of what an image pyramid adds, \
                    at a fraction of the image pyramid's cost",
            source: "Lin et al. 2017, arXiv 1612.03144, Table 1-3 (FPN vs C4/C5 single scale, \
                     AP_s +12.9 for RPN) and Sec. 1 (featurized image pyramids are slow); Singh & \
                     Davis 2018 (SNIP), Li et al. 2019 (TridentNet), scaled down to a CPU",
            paper_value: "FPN > single scale on AP_small; image pyramid several times slower",
            tolerance: Tolerance::new([
                Bound::at_least(FPN_OVER_C5, 0.0).unit(" points"),
                Bound::at_least(FPN_OVER_C5_TREES, 0.0).unit(" points"),
                Bound::at_least(RECOVERED, 0.5).percent(),
                Bound::at_least(COST, 2.0).unit("x"),
            ])
            .note("reduced ResNet-18 (width 8), 128 px inputs, 800 AdamW steps for every variant"),
            smoke_tolerance: Some(
                Tolerance::new([Bound::holds(APS_VALID)])
                    .note("three steps on tiny sets: every variant trains and evaluates"),
            ),
            full_needs: None,
            run: run_small_objects,
        },
        Claim {
            id: "pyramid.copy-paste",
            claim: "Copy-pasting small objects into their training images raises AP_small",
            source: "Kisantal et al. 2019, arXiv 1902.07296, Table 3 (copy-pasting small objects \
                     improves small-object AP on COCO)",
            paper_value: "AP_small up (Mask R-CNN, COCO)",
            tolerance: Tolerance::new([Bound::at_least(CP_GAIN, 0.0).unit(" points")])
                .note("FPN detector, MNIST-det, same steps, two copies per small digit"),
            smoke_tolerance: Some(
                Tolerance::new([Bound::holds(APS_VALID)])
                    .note("a few steps: both runs train and evaluate"),
            ),
            full_needs: None,
            run: run_copy_paste,
        },
        Claim {
            id: "pyramid.full",
            claim: "RetinaNet R50-FPN, 1x schedule, on COCO reaches detectron2's box AP",
            source: "detectron2 MODEL_ZOO.md, retinanet_R_50_FPN_1x (36.5 box AP); Lin et al. \
                     2017b, arXiv 1708.02002",
            paper_value: "36.5 box AP",
            tolerance: Tolerance::new([Bound::within(FULL_AP, 36.5, 1.0).unit(" AP")]).note(
                "detectron2's recipe on one card, 16 images a step (fewer: the linear rule); \
                 torchvision's ImageNet ResNet-50 instead of the MSRA weights",
            ),
            smoke_tolerance: Some(Tolerance::new([Bound::holds(APS_VALID)]).note(
                "the tiny recipe (4 steps, 64 px, a width-8 R50) on a COCO folder under \
                 --data-root (the tests write one): it only has to run; without data: \
                 needs_data",
            )),
            full_needs: Some("GPU + COCO 2017 + torchvision's ImageNet ResNet-50"),
            run: run_full,
        },
    ]
}

pub(crate) fn mnist_config(ctx: &Ctx) -> MnistDetConfig {
    let (train, test) = match ctx.mode {
        Mode::Smoke => (16, 8),
        _ => (1000, 100),
    };
    let side = if ctx.mode == Mode::Smoke { 96 } else { 128 };
    MnistDetConfig {
        width: side,
        height: side,
        min_digits: 2,
        max_digits: 5,
        min_size: 8.0,
        max_size: side as f64 / 2.0,
        max_clutter: 1,
        seed: ctx.seed,
        train_images: train,
        test_images: test,
        ..Default::default()
    }
}

pub(crate) fn budget(ctx: &Ctx) -> Budget {
    let smoke = ctx.mode == Mode::Smoke;
    Budget {
        width: 8,
        channels: 16,
        head_convs: 2,
        anchor_base: 12.0,
        trident_ranges: vec![(-1.0, 24.0), (12.0, 48.0), (32.0, -1.0)],
        steps: if smoke { 3 } else { 800 },
        batch_size: 8,
        lr: 3e-3,
        size: if smoke { 96 } else { 128 },
        augment: !smoke,
    }
}

/// Named training logs (`metrics.jsonl`).
type Logs = Vec<(String, std::path::PathBuf)>;

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    data: String,
    method: String,
    ap: f64,
    ap_small: f64,
    ap_medium: f64,
    images_per_s: f64,
    train_s: f64,
}

fn pct(x: f64) -> f64 {
    if x < 0.0 {
        f64::NAN
    } else {
        100.0 * x
    }
}

fn row(data: &str, method: &str, r: &DetectionReport, train_s: f64) -> Row {
    Row {
        data: data.into(),
        method: method.into(),
        ap: pct(r.ap),
        ap_small: pct(r.ap_small),
        ap_medium: pct(r.ap_medium),
        images_per_s: r.images_per_s_with_decode,
        train_s,
    }
}

/// Trains C5 / FPN / Trident on `train`, evaluates each plus FPN with an image pyramid and
/// TridentNet-Fast on `test`; returns the rows and the training logs.
fn compare(
    ctx: &Ctx,
    data: &str,
    train: Arc<dyn DetectionSet>,
    test: Arc<dyn DetectionSet>,
    b: &Budget,
) -> Result<(Vec<Row>, Logs)> {
    let classes = train.categories().len() as i64;
    let mut rows = Vec::new();
    let mut logs = Vec::new();
    for v in [Variant::C5, Variant::Fpn, Variant::Trident] {
        tch::manual_seed(ctx.seed as i64);
        let mut t = build(v, b, classes, ctx.device)?;
        let dir = format!("{data}_{}", v.name().replace(' ', "_"));
        fit(
            ctx,
            &mut t,
            Arc::clone(&train),
            b,
            &dir,
            &format!("{data} {}", v.name()),
        )?;
        logs.push((format!("{data} {}", v.name()), t.metrics.clone()));
        let r = evaluate(&t.model, Arc::clone(&test), b, ctx.device)?;
        rows.push(row(data, v.name(), &r, t.seconds));
        if v == Variant::Fpn {
            let ip = PyramidDetector {
                inner: &t.model,
                cfg: PyramidInferenceConfig {
                    scales: vec![1.0, 2.0],
                    ranges: vec![ValidRange::ALL, ValidRange::new(-1.0, 24.0)?],
                    merge: Merge::Nms { iou: 0.5 },
                    max_detections: 100,
                },
            };
            let r = evaluate(&ip, Arc::clone(&test), b, ctx.device)?;
            rows.push(row(data, "FPN + image pyramid (1x, 2x)", &r, t.seconds));
        }
        if let Some(tr) = &t.trident {
            tr.set_fast(true);
            let r = evaluate(&t.model, Arc::clone(&test), b, ctx.device)?;
            tr.set_fast(false);
            rows.push(row(data, "Trident fast (middle branch)", &r, t.seconds));
        }
    }
    Ok((rows, logs))
}

fn find<'a>(rows: &'a [Row], data: &str, method: &str) -> Result<&'a Row> {
    rows.iter()
        .find(|r| r.data == data && r.method == method)
        .with_context(|| format!("no row {data} / {method}"))
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| data | method | AP | AP_small | AP_medium | img/s | train s |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |\n",
            r.data, r.method, r.ap, r.ap_small, r.ap_medium, r.images_per_s, r.train_s
        );
    }
    s
}

fn speed_plot(ctx: &Ctx, rows: &[Row], file: &str, title: &str) -> Result<()> {
    let series: Vec<Series> = rows
        .iter()
        .map(|r| {
            Series::new(
                format!("{} {}", r.data, r.method),
                vec![(
                    r.images_per_s,
                    if r.ap_small.is_nan() { 0.0 } else { r.ap_small },
                )],
            )
        })
        .collect();
    train_kit::line_plot(
        &ctx.out_dir.join(file),
        title,
        "images / s",
        "AP_small",
        &series,
    )?;
    Ok(())
}

pub(crate) fn deepforest(ctx: &Ctx) -> Result<(Arc<dyn DetectionSet>, Arc<dyn DetectionSet>)> {
    let dir = datasets::fetch::ensure("deepforest", ctx.data_root.as_deref())?;
    use det_core::deepforest::Split;
    let open = |split| -> Result<DeepForestSet> {
        let forest = det_core::deepforest::DeepForest::open(&dir, split)?;
        let overlap = if split == Split::Train { 32 } else { 0 };
        Ok(DeepForestSet::new(forest, 128, overlap, 0.4)?)
    };
    let (train, test) = (open(Split::Train)?, open(Split::Val)?);
    Ok((Arc::new(train), Arc::new(test)))
}

fn run_small_objects(ctx: &Ctx) -> Result<Outcome> {
    let b = budget(ctx);
    let (train, test) = MnistDet::load(ctx.data_root.as_deref(), &mnist_config(ctx))?;
    let (mut rows, mut logs) = compare(ctx, "MNIST-det", Arc::new(train), Arc::new(test), &b)?;
    if ctx.mode != Mode::Smoke {
        let (train, test) = deepforest(ctx)?;
        let (r, l) = compare(ctx, "deepforest", train, test, &b)?;
        rows.extend(r);
        logs.extend(l);
    }
    let md = "MNIST-det";
    let (c5, fpn, ip) = (
        find(&rows, md, "C5 only")?,
        find(&rows, md, "FPN")?,
        find(&rows, md, "FPN + image pyramid (1x, 2x)")?,
    );
    let gain = fpn.ap_small - c5.ap_small;
    let ip_gain = ip.ap_small - c5.ap_small;
    let recovered = if ip_gain > 0.0 {
        (gain / ip_gain).min(1.0)
    } else if gain >= 0.0 {
        1.0
    } else {
        0.0
    };
    let cost = fpn.images_per_s / ip.images_per_s.max(1e-9);
    let valid = rows
        .iter()
        .all(|r| [r.ap, r.ap_small].iter().all(|x| (0.0..=100.0).contains(x)));
    let mut measured = Measured::new()
        .number(FPN_OVER_C5, gain)
        .number(RECOVERED, recovered)
        .number(COST, cost)
        .flag(APS_VALID, valid);
    if ctx.mode != Mode::Smoke {
        let t = "deepforest";
        let g = find(&rows, t, "FPN")?.ap_small - find(&rows, t, "C5 only")?.ap_small;
        measured = measured.number(FPN_OVER_C5_TREES, g);
    }
    speed_plot(
        ctx,
        &rows,
        "small_objects.png",
        "AP_small against speed (same head, same budget)",
    )?;
    let log_refs: Vec<(&str, &std::path::Path)> = logs
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    train_kit::training_curves_png(
        &log_refs,
        &ctx.out_dir.join("training.png"),
        "det-pyramid variants",
    )?;
    let table = table(&rows);
    std::fs::write(ctx.out_dir.join("table.md"), &table)?;
    eprintln!("{table}");
    Ok(Outcome {
        value: gain,
        value_text: format!(
            "MNIST-det AP_small: C5 {:.1}, FPN {:.1}, FPN + image pyramid {:.1}; pyramid {cost:.1}x \
             the cost",
            c5.ap_small, fpn.ap_small, ip.ap_small
        ),
        measured,
        skipped: None,
        plots: vec!["small_objects.png".into(), "training.png".into()],
        details: json!({"rows": rows, "table": table, "budget": b}),
    })
}

fn run_copy_paste(ctx: &Ctx) -> Result<Outcome> {
    let b = budget(ctx);
    let (train, test) = MnistDet::load(ctx.data_root.as_deref(), &mnist_config(ctx))?;
    let test: Arc<dyn DetectionSet> = Arc::new(test);
    let train: Arc<dyn DetectionSet> = Arc::new(train);
    let cp = CopyPaste::new(
        Arc::clone(&train),
        &CopyPasteConfig {
            seed: ctx.seed,
            ..Default::default()
        },
    );
    let pasted = cp.pasted();
    let sets: [(&str, Arc<dyn DetectionSet>); 2] = [("none", train), ("copy-paste", Arc::new(cp))];
    let mut rows = Vec::new();
    let mut logs = Vec::new();
    for (name, set) in sets {
        tch::manual_seed(ctx.seed as i64);
        let mut t = build(Variant::Fpn, &b, 10, ctx.device)?;
        fit(
            ctx,
            &mut t,
            set,
            &b,
            &format!("fpn_{name}"),
            &format!("FPN {name}"),
        )?;
        let r = evaluate(&t.model, Arc::clone(&test), &b, ctx.device)?;
        rows.push(row("MNIST-det", name, &r, t.seconds));
        logs.push((name.to_string(), t.metrics.clone()));
    }
    let gain = rows[1].ap_small - rows[0].ap_small;
    let valid = rows
        .iter()
        .all(|r| [r.ap, r.ap_small].iter().all(|x| (0.0..=100.0).contains(x)));
    speed_plot(
        ctx,
        &rows,
        "copy_paste.png",
        "AP_small with and without copy-paste",
    )?;
    let log_refs: Vec<(&str, &std::path::Path)> = logs
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    train_kit::training_curves_png(&log_refs, &ctx.out_dir.join("training.png"), "copy-paste")?;
    let table = table(&rows);
    eprintln!("{table}");
    Ok(Outcome {
        value: gain,
        value_text: format!(
            "AP_small {:.1} -> {:.1} with copy-paste ({pasted} small digits pasted)",
            rows[0].ap_small, rows[1].ap_small
        ),
        measured: Measured::new().number(CP_GAIN, gain).flag(APS_VALID, valid),
        skipped: None,
        plots: vec!["copy_paste.png".into(), "training.png".into()],
        details: json!({"rows": rows, "table": table, "pasted": pasted, "budget": b}),
    })
}

/// detectron2's `retinanet_R_50_FPN_1x` on COCO 2017 at `--full` on a GPU with the data
/// ([`full`]); the tiny recipe at `--smoke` on a COCO folder; needs_data otherwise.
fn run_full(ctx: &Ctx) -> Result<Outcome> {
    full::run(ctx, FULL_AP, APS_VALID)
}
