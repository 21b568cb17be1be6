//! det-anchorfree claims: CenterNet and FCOS against det-pyramid's anchor-based RetinaNet on
//! the same trunk, data and budget (`anchorfree.vs-anchors`), CenterNet's corrected against
//! its original Gaussian radius (`anchorfree.radius-fix`), FCOS centre sampling and
//! centre-ness on the regression branch (`anchorfree.center-sampling`), and the paper recipes
//! on COCO (`anchorfree.full`, needs data).
//!
//! Every detector here trains with det-pyramid's claim budget
//! ([`super::det_pyramid::budget`]) and data ([`super::det_pyramid::mnist_config`],
//! [`super::det_pyramid::deepforest`]), so its rows sit beside RetinaNet's.

mod centernet;
mod fcos;
mod vs_anchors;

use std::path::PathBuf;

use train_kit::Series;

use crate::claim::{Claim, Ctx};
pub(crate) use crate::experiments::det_pyramid::train::Trial;

/// The det-anchorfree claims, in report order.
pub fn claims() -> Vec<Claim> {
    let mut all = vs_anchors::claims();
    all.extend(centernet::claims());
    all.extend(fcos::claims());
    all
}

/// A training set and a test set.
pub(crate) type Sets = (
    std::sync::Arc<dyn det_core::data::DetectionSet>,
    std::sync::Arc<dyn det_core::data::DetectionSet>,
);

/// Named training logs (`metrics.jsonl`).
pub(crate) type Logs = Vec<(String, PathBuf)>;

/// One row of the anchor-free tables (COCO numbers in points, -1 made NaN).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Row {
    /// The data set.
    pub data: String,
    /// The detector.
    pub method: String,
    /// COCO AP.
    pub ap: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP of small objects.
    pub ap_small: f64,
    /// Test images per second, decoding included.
    pub images_per_s: f64,
    /// Seconds of training.
    pub train_s: f64,
    /// Hyper-parameters of the training targets (anchor scales / ratios / sizes / IoU
    /// thresholds, regression ranges, radii), counted from the detector's config.
    pub target_hparams: usize,
}

fn pct(x: f64) -> f64 {
    if x < 0.0 {
        f64::NAN
    } else {
        100.0 * x
    }
}

/// The row of `trial`.
pub(crate) fn row(data: &str, method: &str, trial: &Trial, target_hparams: usize) -> Row {
    let r = &trial.report;
    Row {
        data: data.into(),
        method: method.into(),
        ap: pct(r.ap),
        ap50: pct(r.ap50),
        ap_small: pct(r.ap_small),
        images_per_s: r.images_per_s_with_decode,
        train_s: trial.train_s,
        target_hparams,
    }
}

/// Every AP and AP50 is a number in `[0, 100]` (AP_small may be absent: NaN).
pub(crate) fn valid_aps(rows: &[Row]) -> bool {
    !rows.is_empty()
        && rows
            .iter()
            .all(|r| [r.ap, r.ap50].iter().all(|x| (0.0..=100.0).contains(x)))
}

/// A markdown table of `rows`, with the target hyper-parameter column when `hparams`.
pub(crate) fn table(rows: &[Row], hparams: bool) -> String {
    let mut s = String::from("| data | detector | AP | AP50 | AP_small | img/s | train s |");
    s += if hparams {
        " target hyper-parameters |\n|---|---|---|---|---|---|---|---|\n"
    } else {
        "\n|---|---|---|---|---|---|---|\n"
    };
    for r in rows {
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
            r.data, r.method, r.ap, r.ap50, r.ap_small, r.images_per_s, r.train_s
        );
        s += &if hparams {
            format!(" {} |\n", r.target_hparams)
        } else {
            "\n".to_string()
        };
    }
    s
}

/// AP (and AP50, dashed in the legend) per detector, one line per data set over the rows'
/// order of detectors.
pub(crate) fn ap_plot(ctx: &Ctx, rows: &[Row], file: &str, title: &str) -> anyhow::Result<()> {
    let mut methods: Vec<&str> = Vec::new();
    for r in rows {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let mut data: Vec<&str> = Vec::new();
    for r in rows {
        if !data.contains(&r.data.as_str()) {
            data.push(&r.data);
        }
    }
    let mut series = Vec::new();
    for d in &data {
        for (name, pick) in [("AP", 0usize), ("AP50", 1)] {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.data == *d)
                .filter_map(|r| {
                    let i = methods.iter().position(|m| *m == r.method)?;
                    let y = if pick == 0 { r.ap } else { r.ap50 };
                    Some((i as f64, if y.is_nan() { 0.0 } else { y }))
                })
                .collect();
            series.push(Series::new(format!("{d} {name}"), pts));
        }
    }
    let x_label = methods
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{i}: {m}"))
        .collect::<Vec<_>>()
        .join(", ");
    train_kit::line_plot(
        &ctx.out_dir.join(file),
        title,
        &x_label,
        "COCO AP (points)",
        &series,
    )?;
    Ok(())
}
