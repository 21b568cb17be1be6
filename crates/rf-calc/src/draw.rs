//! PNG drawings: receptive fields and centres of chosen units over an image, and
//! effective-receptive-field heat maps with the theoretical box.

use cvlab_util::register_fonts;
use image::{Rgb, RgbImage};
use plotters::prelude::*;
use std::path::Path;

use crate::analysis::NodeReport;
use crate::erf_stats::ErfMap;
use crate::error::{Result, RfError};
use crate::layer::Pair;

const COLOURS: [RGBColor; 6] = [
    RGBColor(230, 25, 75),
    RGBColor(60, 180, 75),
    RGBColor(0, 130, 200),
    RGBColor(245, 130, 48),
    RGBColor(145, 30, 180),
    RGBColor(70, 240, 240),
];

fn draw_err(path: &Path, e: impl std::fmt::Display) -> RfError {
    RfError::Draw {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// A grey checkerboard of 16-pixel squares, the canvas when no image is given.
pub fn checkerboard(size: Pair) -> RgbImage {
    RgbImage::from_fn(size[1].max(1) as u32, size[0].max(1) as u32, |x, y| {
        if (x / 16 + y / 16) % 2 == 0 {
            Rgb([200, 200, 200])
        } else {
            Rgb([170, 170, 170])
        }
    })
}

/// Draws over `canvas` the receptive field (box, clipped to the canvas) and centre of each of
/// `units` (`[row, col]`) of `node`, and the centres of all the node's units as dots; writes a
/// PNG. The node's paddings must be known (analyse with the image's size).
pub fn units_png(path: &Path, canvas: &RgbImage, node: &NodeReport, units: &[Pair]) -> Result<()> {
    register_fonts();
    let (w, h) = canvas.dimensions();
    let maps = node.unit_maps().ok_or_else(|| {
        draw_err(
            path,
            format!(
                "effective padding of `{}` is unknown: give the input size",
                node.name
            ),
        )
    })?;
    let mut buf = canvas.as_raw().clone();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        // Centres of every unit that lands on the canvas.
        let grid = |m: &crate::exact::UnitMap, extent: u32| -> Vec<f64> {
            let mut out = Vec::new();
            let mut x = 0;
            while x < 100_000 {
                let c = m.centre(x);
                if c > f64::from(extent) {
                    break;
                }
                if c >= 0.0 {
                    out.push(c);
                }
                x += 1;
            }
            out
        };
        let (ys, xs) = (grid(&maps[0], h), grid(&maps[1], w));
        if ys.len() * xs.len() <= 40_000 {
            for &y in &ys {
                for &x in &xs {
                    root.draw(&Circle::new(
                        (x as i32, y as i32),
                        1,
                        BLACK.mix(0.5).filled(),
                    ))
                    .map_err(|e| draw_err(path, e))?;
                }
            }
        }
        for (i, u) in units.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let (Some(b), Some([cy, cx])) = (node.rf_box(*u), node.centre(*u)) else {
                continue;
            };
            let (top, left) = (b[0][0] as i32, b[1][0] as i32);
            let (bottom, right) = (b[0][1] as i32 + 1, b[1][1] as i32 + 1);
            root.draw(&Rectangle::new(
                [(left, top), (right, bottom)],
                colour.mix(0.15).filled(),
            ))
            .map_err(|e| draw_err(path, e))?;
            root.draw(&Rectangle::new(
                [(left, top), (right, bottom)],
                colour.stroke_width(2),
            ))
            .map_err(|e| draw_err(path, e))?;
            let c = (cx.round() as i32, cy.round() as i32);
            root.draw(&Cross::new(c, 6, colour.stroke_width(3)))
                .map_err(|e| draw_err(path, e))?;
            let label = format!(
                "{}[{},{}] rf {}x{}",
                node.name,
                u[0],
                u[1],
                b[0][1] - b[0][0] + 1,
                b[1][1] - b[1][0] + 1
            );
            let at = (
                left.clamp(2, w as i32 - 2),
                (top + 4 + 15 * i as i32).clamp(2, h as i32 - 14),
            );
            root.draw(&Text::new(
                label,
                at,
                ("sans-serif", 13).into_font().color(&colour),
            ))
            .map_err(|e| draw_err(path, e))?;
        }
        root.present().map_err(|e| draw_err(path, e))?;
    }
    save_png(path, w, h, buf)
}

/// Encodes an RGB buffer as PNG and writes it atomically (temp file, fsync, rename), so that
/// an interrupted run never leaves half a picture.
fn save_png(path: &Path, w: u32, h: u32, buf: Vec<u8>) -> Result<()> {
    let img = RgbImage::from_raw(w, h, buf).ok_or_else(|| draw_err(path, "buffer size"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| draw_err(path, e))?;
    cvlab_util::write_atomic(path, png.get_ref()).map_err(|source| RfError::Io {
        path: path.to_owned(),
        source,
    })
}

/// One heat-map panel: a map and labelled boxes over it, `[[top, bottom], [left, right]]` in
/// pixel-edge coordinates (pixel `j` covers `[j, j + 1)`).
pub struct HeatPanel<'a> {
    /// Caption above the map.
    pub title: String,
    /// The map.
    pub map: &'a ErfMap,
    /// Labelled boxes, `[[top, bottom], [left, right]]` in pixel edges; the first is white.
    pub boxes: Vec<(String, [[f64; 2]; 2])>,
}

/// The edges of the inclusive pixel box `[[top, bottom], [left, right]]`.
pub fn pixel_box(b: [[i64; 2]; 2]) -> [[f64; 2]; 2] {
    [
        [b[0][0] as f64, (b[0][1] + 1) as f64],
        [b[1][0] as f64, (b[1][1] + 1) as f64],
    ]
}

/// Viridis-like colour of `t` in `[0, 1]`.
fn colour_map(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Heat maps side by side (each scaled to its own maximum), with their boxes; writes a PNG.
pub fn heatmap_png(path: &Path, panels: &[HeatPanel]) -> Result<()> {
    register_fonts();
    let side = 360u32;
    let (w, h) = (side * panels.len().max(1) as u32, side + 40);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    heatmaps(path, &mut buf, (w, h), panels)?;
    save_png(path, w, h, buf)
}

/// Draws the panels into an RGB buffer of `size`; `path` names the PNG in errors.
fn heatmaps(path: &Path, buf: &mut [u8], size: (u32, u32), panels: &[HeatPanel]) -> Result<()> {
    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, p) in areas.iter().zip(panels) {
        let (hh, ww) = (p.map.height as f64, p.map.width as f64);
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(22)
            .y_label_area_size(30)
            .build_cartesian_2d(0f64..ww, hh..0f64)
            .map_err(|e| draw_err(path, e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        let max = p
            .map
            .data
            .iter()
            .cloned()
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        let (rows, cols) = (p.map.height, p.map.width);
        let cells = (0..rows).flat_map(|y| (0..cols).map(move |x| (y, x)));
        chart
            .draw_series(cells.map(|(y, x)| {
                let v = p.map.at(y, x) / max;
                let (y, x) = (y as f64, x as f64);
                Rectangle::new([(x, y), (x + 1.0, y + 1.0)], colour_map(v).filled())
            }))
            .map_err(|e| draw_err(path, e))?;
        for (i, (label, b)) in p.boxes.iter().enumerate() {
            let colour = if i == 0 {
                WHITE
            } else {
                COLOURS[(i - 1) % COLOURS.len()]
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(b[1][0], b[0][0]), (b[1][1], b[0][1])],
                    colour.stroke_width(2),
                )))
                .map_err(|e| draw_err(path, e))?
                .label(label.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.stroke_width(2))
                });
        }
        if !p.boxes.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .label_font(("sans-serif", 11))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| draw_err(path, e))?;
        }
    }
    root.present().map_err(|e| draw_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_map_runs_from_purple_to_yellow() {
        assert_eq!(colour_map(0.0), RGBColor(68, 1, 84));
        assert_eq!(colour_map(1.0), RGBColor(253, 231, 37));
        assert_eq!(colour_map(2.0), colour_map(1.0));
    }

    #[test]
    fn heat_maps_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("erf.png");
        let map = ErfMap::new(2, 3, vec![0.0, 1.0, 0.0, 0.0, 3.0, 0.0]).unwrap();
        let panel = |title: &str| HeatPanel {
            title: title.to_owned(),
            map: &map,
            boxes: vec![("theoretical".to_owned(), pixel_box([[0, 1], [1, 1]]))],
        };
        heatmap_png(&path, &[panel("a"), panel("b")]).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (720, 400));
        // Only the PNG is left in the folder: the temporary file was renamed onto it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
