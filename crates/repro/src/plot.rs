//! Plots the experiments show: 2-D point sets with decision lines.

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use std::path::Path;

/// A line `w . x + b = 0`, drawn in palette colour `colour`.
pub struct Line2d {
    /// Legend text.
    pub label: String,
    /// The weights `w` (the line's normal).
    pub w: [f64; 2],
    /// The bias `b`.
    pub b: f64,
    /// Index into the palette (black, blue, red, orange; wraps around).
    pub colour: usize,
}

impl Line2d {
    /// The line `w . x + b = 0` labelled `label`.
    pub fn new(label: &str, w: [f64; 2], b: f64, colour: usize) -> Self {
        Line2d {
            label: label.to_owned(),
            w,
            b,
            colour,
        }
    }

    /// Points of the line inside the square `[-r, r]^2`, sampled along its longer axis.
    fn points(&self, r: f64) -> Vec<(f64, f64)> {
        let [w0, w1] = self.w;
        let steps = 400;
        let t = |k: usize| -r + 2.0 * r * k as f64 / steps as f64;
        let pts: Vec<(f64, f64)> = if w1.abs() >= w0.abs() {
            (0..=steps)
                .map(|k| (t(k), -(self.b + w0 * t(k)) / w1))
                .collect()
        } else {
            (0..=steps)
                .map(|k| (-(self.b + w1 * t(k)) / w0, t(k)))
                .collect()
        };
        pts.into_iter()
            .filter(|(x, y)| x.abs() <= r && y.abs() <= r)
            .collect()
    }
}

/// One panel: labelled points `(x, y, positive)` and lines.
pub struct Panel {
    /// Caption above the panel.
    pub title: String,
    /// `(x1, x2, positive label)`.
    pub points: Vec<(f64, f64, bool)>,
    /// Decision lines drawn over the points.
    pub lines: Vec<Line2d>,
}

const PALETTE: [RGBColor; 4] = [
    BLACK,
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
];

/// Draws the panels side by side into one PNG, written atomically (a temp file beside `path`,
/// renamed into place once drawn).
pub fn decision_lines_png(path: &Path, panels: &[Panel]) -> Result<()> {
    let file =
        cvlab_util::AtomicFile::new(path).with_context(|| format!("drawing {}", path.display()))?;
    draw_panels(file.tmp_path(), panels).with_context(|| format!("drawing {}", path.display()))?;
    file.commit()
        .with_context(|| format!("writing {}", path.display()))
}

fn draw_panels(path: &Path, panels: &[Panel]) -> Result<()> {
    cvlab_util::register_fonts();
    let err = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let width = 560 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    let r = panels
        .iter()
        .flat_map(|p| p.points.iter().map(|(x, y, _)| x.abs().max(y.abs())))
        .fold(1.0f64, f64::max)
        * 1.05;
    for (area, panel) in areas.iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(40)
            .build_cartesian_2d(-r..r, -r..r)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("x1")
            .y_desc("x2")
            .draw()
            .map_err(|e| err(&e))?;
        for (positive, colour) in [
            (true, RGBColor(44, 160, 44)),
            (false, RGBColor(148, 103, 189)),
        ] {
            let pts = panel.points.iter().filter(|p| p.2 == positive);
            chart
                .draw_series(pts.map(|&(x, y, _)| Circle::new((x, y), 3, colour.filled())))
                .map_err(|e| err(&e))?
                .label(if positive { "label +1" } else { "label -1" })
                .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
        }
        chart
            .draw_series(std::iter::once(Circle::new(
                (0.0, 0.0),
                5,
                BLACK.stroke_width(2),
            )))
            .map_err(|e| err(&e))?;
        for line in &panel.lines {
            let colour = PALETTE[line.colour % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(line.points(r), colour.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(line.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_points_lie_on_the_line_and_in_the_box() {
        let l = Line2d::new("l", [0.6, 0.8], -1.0, 0);
        let pts = l.points(3.0);
        assert!(pts.len() > 100);
        for (x, y) in pts {
            assert!((0.6 * x + 0.8 * y - 1.0).abs() < 1e-9 && x.abs() <= 3.0 && y.abs() <= 3.0);
        }
    }
}
