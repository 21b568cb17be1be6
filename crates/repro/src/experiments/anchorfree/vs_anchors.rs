//! The anchor-free detectors against the anchor-based baseline: CenterNet, FCOS and
//! det-pyramid's RetinaNet on the same reduced ResNet-18 trunk, data and training budget, with
//! YOLO v1's row beside them (`anchorfree.vs-anchors`), and the paper recipes on COCO
//! (`anchorfree.full`, needs data).
//!
//! The target hyper-parameters are counted from each detector's config, the numbers a user
//! chooses to turn boxes into training targets: RetinaNet's anchor base size per level,
//! scales per level, aspect ratios and the two IoU thresholds; FCOS's regression-range bounds
//! (plus the centre-sampling radius when on); CenterNet's Gaussian min overlap; YOLO's grid
//! side and boxes per cell.

use std::sync::Arc;

use anyhow::Result;
use det_anchorfree::centernet::RadiusRule;
use det_core::data::{DetectionSet, MnistDet};
use det_pyramid::RetinaNetConfig;
use serde_json::json;
use tch::Device;
use train_kit::Series;

use super::centernet::{centernet_config, train_centernet};
use super::fcos::{fcos_config, train_fcos, FcosVariant};
use super::{row, table, valid_aps, Logs, Row, Trial};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::experiments::det_pyramid::train::{build, evaluate, fit, Budget, Variant};
use crate::experiments::det_pyramid::{budget, deepforest, mnist_config};
use crate::report::{Mode, Verdict};

// The measurements the tolerances below check.
const GAP_MNIST: &str = "best anchor-free AP minus RetinaNet AP on MNIST-det";
const GAP_TREES: &str = "best anchor-free AP minus RetinaNet AP on the deepforest trees";
const FEWER: &str = "each anchor-free detector needs fewer target hyper-parameters than RetinaNet";
const APS_VALID: &str = "every AP is a number in [0, 100]";
const LEARNS: &str = "RetinaNet AP on MNIST-det (the baseline learns: a gap to an untrained \
                      baseline says nothing)";
const FULL_FCOS: &str = "FCOS R50-FPN 1x box AP on COCO val2017";
const FULL_CENTERNET: &str = "CenterNet ResNet-18 box AP on COCO val2017 (no test augmentation)";

const FULL_COMMAND: &str =
    "cargo run --release -p repro -- run anchorfree.full --full --device cuda --data-root DIR \
     (DIR/train2017, DIR/val2017, DIR/annotations/instances_{train,val}2017.json)";

/// The claims of this module, in report order.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "anchorfree.vs-anchors",
            claim: "Without anchor boxes, FCOS and CenterNet detect as well as the anchor-based \
                    RetinaNet on the same trunk, data and budget (within 2 AP points for the \
                    better of the two), with fewer hand-set target hyper-parameters",
            source: "Tian et al. 2019, arXiv 1904.01355, Sec. 4.2 (FCOS against its anchor-based \
                     counterpart RetinaNet, same R-50-FPN trunk and settings) and Sec. 1 (anchor hyper-parameters); Zhou et al. \
                     2019, arXiv 1904.07850, Table 2 and Sec. 1 (no anchors, no NMS)",
            paper_value: "FCOS above RetinaNet on COCO; anchors: 3 scales x 3 ratios x 5 \
                          levels and 2 IoU thresholds vs none",
            tolerance: Tolerance::new([
                Bound::at_least(GAP_MNIST, -2.0).unit(" points"),
                Bound::at_least(GAP_TREES, -2.0).unit(" points"),
                Bound::at_least(LEARNS, 2.0).unit(" points"),
                Bound::holds(FEWER),
                Bound::holds(APS_VALID),
            ])
            .note(
                "reduced ResNet-18 (det-pyramid's budget: width, channels, steps, input size, \
                 AdamW), FCOS original and CenterNet with the corrected radius, one seed",
            ),
            smoke_tolerance: Some(
                Tolerance::new([Bound::holds(FEWER), Bound::holds(APS_VALID)])
                    .note("three steps on tiny sets: every detector trains and evaluates"),
            ),
            full_needs: None,
            run: run_vs_anchors,
        },
        Claim {
            id: "anchorfree.full",
            claim: "The paper recipes on COCO reach the published box AP: FCOS R50-FPN 1x and \
                    CenterNet ResNet-18 without test augmentation",
            source: "Tian et al. 2019, arXiv 1904.01355 and the official FCOS model zoo \
                     (FCOS_R_50_FPN_1x 37.1 AP); Zhou et al. 2019, arXiv 1904.07850, Table 2 / \
                     official MODEL_ZOO.md (ctdet_coco_resdcn18 28.1 AP, no augmentation)",
            paper_value: "FCOS 37.1 AP, CenterNet R18 28.1 AP",
            tolerance: Tolerance::new([
                Bound::within(FULL_FCOS, 37.1, 1.0).unit(" AP"),
                Bound::within(FULL_CENTERNET, 28.1, 1.0).unit(" AP"),
            ]),
            smoke_tolerance: None,
            full_needs: Some("GPU + COCO 2017"),
            run: run_full,
        },
    ]
}

/// RetinaNet's target hyper-parameters: a base size per level, the scales per level, the
/// aspect ratios, and the IoU thresholds (positive, background).
fn retinanet_hparams(cfg: &RetinaNetConfig) -> usize {
    let a = &cfg.anchors;
    a.sizes.len() + a.sizes.first().map_or(0, Vec::len) + a.ratios.first().map_or(0, Vec::len) + 2
}

fn fcos_hparams(cfg: &det_anchorfree::fcos::FcosConfig) -> usize {
    cfg.range_bounds.len() + usize::from(cfg.center_sampling_radius > 0.0)
}

/// RetinaNet, FCOS and CenterNet on one data set.
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
    let tag = |m: &str| format!("{data}_{m}").replace(' ', "_");
    // RetinaNet exactly as det-pyramid's claims train it.
    tch::manual_seed(ctx.seed as i64);
    let mut t = build(Variant::Fpn, b, classes, ctx.device)?;
    let label = format!("{data} RetinaNet");
    fit(
        ctx,
        &mut t,
        Arc::clone(&train),
        b,
        &tag("RetinaNet"),
        &label,
    )?;
    let report = evaluate(&t.model, Arc::clone(&test), b, ctx.device)?;
    let trial = Trial {
        report,
        train_s: t.seconds,
        metrics: t.metrics.clone(),
    };
    rows.push(row(
        data,
        "RetinaNet",
        &trial,
        retinanet_hparams(t.model.config()),
    ));
    logs.push((label, trial.metrics));
    drop(t);
    let v = FcosVariant::Original;
    let label = format!("{data} {}", v.name());
    let trial = train_fcos(
        ctx,
        &tag(v.name()),
        &label,
        Arc::clone(&train),
        Arc::clone(&test),
        b,
        v,
    )?;
    let n = fcos_hparams(&fcos_config(b, classes, v));
    rows.push(row(data, v.name(), &trial, n));
    logs.push((label, trial.metrics.clone()));
    tch::manual_seed(ctx.seed as i64);
    let label = format!("{data} CenterNet");
    let trial = train_centernet(
        ctx,
        &tag("CenterNet"),
        &label,
        Arc::clone(&train),
        Arc::clone(&test),
        b,
        RadiusRule::Corrected,
    )?;
    // The Gaussian's min overlap is CenterNet's one target setting.
    let n = usize::from(
        centernet_config(b, classes, RadiusRule::Corrected)
            .targets()
            .min_overlap
            > 0.0,
    );
    rows.push(row(data, "CenterNet", &trial, n));
    logs.push((label, trial.metrics.clone()));
    // YOLO v1 on the small trunk, with the paper's own recipe (SGD, warm-up then steps) for the
    // same steps on the same data; its targets need the grid side S and the boxes per cell B.
    tch::manual_seed(ctx.seed as i64);
    let label = format!("{data} YOLO v1");
    let trial = crate::experiments::yolo::fit::train_yolo(
        ctx,
        &tag("YOLO_v1"),
        &label,
        Arc::clone(&train),
        Arc::clone(&test),
        b,
    )?;
    rows.push(row(data, "YOLO v1", &trial, 2));
    logs.push((label, trial.metrics.clone()));
    Ok((rows, logs))
}

fn gap(rows: &[Row], data: &str) -> Option<f64> {
    let ap = |m: &str| {
        rows.iter()
            .find(|r| r.data == data && r.method == m)
            .map(|r| r.ap)
    };
    let best = ap(FcosVariant::Original.name())?.max(ap("CenterNet")?);
    Some(best - ap("RetinaNet")?)
}

fn speed_plot(ctx: &Ctx, rows: &[Row], file: &str) -> Result<()> {
    let series: Vec<Series> = rows
        .iter()
        .map(|r| {
            Series::new(
                format!(
                    "{} {} ({} target hyper-parameters)",
                    r.data, r.method, r.target_hparams
                ),
                vec![(r.images_per_s, if r.ap.is_nan() { 0.0 } else { r.ap })],
            )
        })
        .collect();
    train_kit::line_plot(
        &ctx.out_dir.join(file),
        "COCO AP against speed: anchor-free vs anchor-based (same trunk, budget)",
        "test images / s (decoding included)",
        "COCO AP (points)",
        &series,
    )?;
    Ok(())
}

fn run_vs_anchors(ctx: &Ctx) -> Result<Outcome> {
    let b = budget(ctx);
    let (train, test) = MnistDet::load(ctx.data_root.as_deref(), &mnist_config(ctx))?;
    let (mut rows, mut logs) = compare(ctx, "MNIST-det", Arc::new(train), Arc::new(test), &b)?;
    if ctx.mode != Mode::Smoke {
        let (train, test) = deepforest(ctx)?;
        let (r, l) = compare(ctx, "deepforest", train, test, &b)?;
        rows.extend(r);
        logs.extend(l);
    }
    let retina = rows
        .iter()
        .filter(|r| r.method == "RetinaNet")
        .map(|r| r.target_hparams)
        .min()
        .unwrap_or(0);
    let fewer = rows
        .iter()
        .filter(|r| r.method != "RetinaNet")
        .all(|r| r.target_hparams < retina);
    let g_mnist = gap(&rows, "MNIST-det").unwrap_or(f64::NAN);
    let retina_ap = rows
        .iter()
        .find(|r| r.data == "MNIST-det" && r.method == "RetinaNet")
        .map_or(f64::NAN, |r| r.ap);
    let mut measured = Measured::new()
        .number(GAP_MNIST, g_mnist)
        .number(LEARNS, retina_ap)
        .flag(FEWER, fewer)
        .flag(APS_VALID, valid_aps(&rows));
    if let Some(g) = gap(&rows, "deepforest") {
        measured = measured.number(GAP_TREES, g);
    }
    speed_plot(ctx, &rows, "vs_anchors.png")?;
    super::ap_plot(ctx, &rows, "vs_anchors_ap.png", "AP and AP50 per detector")?;
    let log_refs: Vec<(&str, &std::path::Path)> = logs
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    train_kit::training_curves_png(
        &log_refs,
        &ctx.out_dir.join("training.png"),
        "anchor-free vs anchor-based",
    )?;
    let table = table(&rows, true);
    std::fs::write(ctx.out_dir.join("table.md"), &table)?;
    eprintln!("{table}");
    let text = rows
        .iter()
        .map(|r| format!("{} {} {:.1}", r.data, r.method, r.ap))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Outcome {
        value: g_mnist,
        value_text: format!("AP: {text}"),
        measured,
        skipped: None,
        plots: vec![
            "vs_anchors.png".into(),
            "vs_anchors_ap.png".into(),
            "training.png".into(),
        ],
        details: json!({"rows": rows, "table": table, "budget": b}),
    })
}

/// The COCO recipes are not run by this release: the claim records what they need and the
/// command they are meant for, and reports needs_data on every machine.
fn run_full(ctx: &Ctx) -> Result<Outcome> {
    let have = ctx.data_root.as_ref().is_some_and(|r| {
        r.join("train2017").is_dir()
            && r.join("val2017").is_dir()
            && r.join("annotations/instances_val2017.json").is_file()
    });
    let gpu = matches!(ctx.device, Device::Cuda(_));
    Ok(Outcome {
        value: f64::NAN,
        value_text: format!(
            "needs: COCO 2017 + a GPU and the paper-length training loops, not part of this \
             release (COCO found: {have}, GPU: {gpu}); meant for: {FULL_COMMAND}"
        ),
        measured: Measured::new(),
        skipped: Some(Verdict::NeedsData),
        plots: vec![],
        details: json!({
            "command": FULL_COMMAND,
            "fcos": {"paper_box_ap": 37.1,
                     "recipe": "FcosConfig::default() with num_classes 80 on ResNetConfig::\
                                detectron2(Depth::R50) (ImageNet weights as safetensors) + \
                                FpnConfig::retinanet with P6/P7 from P5, 256 channels; SGD lr \
                                0.01, momentum 0.9, weight decay 1e-4, batch 16, 90k iterations, \
                                lr x0.1 at 60k and 80k, warm-up 500 iterations, 800 px shorter \
                                side (1333 max), horizontal flip; COCO val2017 at 800 px"},
            "centernet": {"paper_box_ap": 28.1,
                          "recipe": "CenterNetConfig::resnet18(80) (the paper's ResDCN-18 uses \
                                     deformable convs in the up-sampling path; this release has \
                                     plain deconvolutions), 512 x 512 inputs, Adam lr 5e-4, \
                                     batch 114, 140 epochs, lr x0.1 \
                                     at 90 and 120, random scale / crop / flip / colour; no flip \
                                     or multi-scale test"},
        }),
    })
}
