//! PNG line plots with plotters' bitmap backend and the DejaVu Sans font from the `dejavu`
//! crate (plotters' `ab_glyph` text backend needs fonts registered at run time; there is no
//! system font lookup).

use crate::error::{Result, TrainError};
use crate::metrics::MetricsLog;
use plotters::prelude::*;
use std::path::Path;

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in drawing order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from its name and points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// The workspace's plot font (DejaVu Sans / Mono), registered once: `cvlab_util`'s.
pub use cvlab_util::register_fonts;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

/// Writes a 960x600 PNG with one line per series and a legend. Non-finite points are
/// dropped.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    register_fonts();
    let err = |e: &dyn std::fmt::Display| TrainError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    draw_panel(&root, title, x_label, y_label, series).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Series with at most this many points get a marker on each.
const SPARSE_POINTS: usize = 40;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// One chart with its lines and legend on `area`.
fn draw_panel(
    area: &Area<'_>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let clean: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect()
        })
        .collect();
    let (x0, x1) = range(clean.iter().flatten().map(|p| p.0));
    let (y0, y1) = range(clean.iter().flatten().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (s, pts)) in series.iter().zip(clean).enumerate() {
        let color = COLORS[i % COLORS.len()];
        // Few points (short runs, per-epoch values): mark each, or a lone one is invisible.
        if pts.len() <= SPARSE_POINTS {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

/// The curves of one training run, read from the [`crate::Trainer`]'s `metrics.jsonl`
/// (several logs side by side: one line each, named by `runs[i].0`): three panels in one
/// 1800x560 PNG — the micro-batch loss against the iteration, the learning rate against the
/// iteration, and every evaluation metric (numeric keys of the epoch lines other than
/// `epoch` / `epoch_loss`; the epoch loss when there is none) against the epochs done.
pub fn training_curves_png(runs: &[(&str, &Path)], png_path: &Path, title: &str) -> Result<()> {
    register_fonts();
    let (mut loss, mut lr, mut evals) = (Vec::new(), Vec::new(), Vec::new());
    for (name, path) in runs {
        let rows = MetricsLog::read(path)?;
        let per_iter = |key: &str| -> Vec<(f64, f64)> {
            rows.iter()
                .filter_map(|r| Some((r.get("iter")?.as_f64()?, r.get(key)?.as_f64()?)))
                .collect()
        };
        let prefix = |s: &str| {
            if runs.len() > 1 {
                format!("{name}: {s}")
            } else {
                s.to_owned()
            }
        };
        loss.push(Series::new(prefix("loss"), per_iter("loss")));
        lr.push(Series::new(prefix("lr"), per_iter("lr")));
        let epoch_rows: Vec<&serde_json::Map<String, serde_json::Value>> = rows
            .iter()
            .filter_map(|r| r.as_object())
            .filter(|o| o.contains_key("epoch_loss"))
            .collect();
        let mut keys: Vec<String> = Vec::new();
        for o in &epoch_rows {
            for (k, v) in o.iter() {
                if k != "epoch" && k != "epoch_loss" && v.is_number() && !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        if keys.is_empty() {
            keys.push("epoch_loss".into());
        }
        for key in keys {
            let pts = epoch_rows
                .iter()
                .filter_map(|o| Some((o.get("epoch")?.as_f64()? + 1.0, o.get(&key)?.as_f64()?)))
                .collect();
            evals.push(Series::new(prefix(&key), pts));
        }
    }
    let err = |e: &dyn std::fmt::Display| TrainError::Plot {
        path: png_path.to_path_buf(),
        reason: e.to_string(),
    };
    let root = BitMapBackend::new(png_path, (1800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 26))
        .map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 3));
    draw_panel(&panels[0], "loss", "iteration", "loss", &loss).map_err(|e| err(&e))?;
    draw_panel(&panels[1], "learning rate", "iteration", "lr", &lr).map_err(|e| err(&e))?;
    draw_panel(&panels[2], "per epoch", "epochs done", "value", &evals).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Plots `key` of every [`MetricsLog`] row that has it, against the row's `step` (or its
/// index when there is no `step`).
pub fn loss_curve_png(jsonl_path: &Path, png_path: &Path, key: &str) -> Result<()> {
    let rows = MetricsLog::read(jsonl_path)?;
    let points: Vec<(f64, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let y = r.get(key)?.as_f64()?;
            let x = r.get("step").and_then(|s| s.as_f64()).unwrap_or(i as f64);
            Some((x, y))
        })
        .collect();
    line_plot(png_path, key, "step", key, &[Series::new(key, points)])
}
