//! Drawing: boxes with labels and scores onto an image saved as PNG, and precision-recall
//! curves as PNG (plotters' bitmap backend, the workspace's DejaVu fonts from
//! [`cvlab_util::register_fonts`]); PNGs are written atomically ([`cvlab_util::write_atomic`]).

use std::path::Path;

use cvlab_util::register_fonts;
use image::RgbImage;
use plotters::prelude::*;

use crate::error::{DetError, Result};

/// Encodes `img` as PNG in memory and writes it atomically (a reader never sees half a file).
pub(crate) fn write_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| DetError::io(path, std::io::Error::other(e.to_string())))?;
    cvlab_util::write_atomic(path, bytes.get_ref()).map_err(|e| DetError::io(path, e))
}

fn draw_err(e: impl std::fmt::Display) -> DetError {
    DetError::arg("drawing", "a drawable image", e.to_string())
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(230, 25, 75),
    RGBColor(60, 180, 75),
    RGBColor(0, 130, 200),
    RGBColor(245, 130, 48),
    RGBColor(145, 30, 180),
    RGBColor(70, 240, 240),
];

/// One box to draw: `xyxy`, a label, an optional score, a colour index.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotated {
    /// The box, `xyxy` pixels.
    pub bbox: [f64; 4],
    /// The caption's label (empty: no caption).
    pub label: String,
    /// The score printed after the label, if any.
    pub score: Option<f64>,
    /// Index into the palette (taken modulo its length).
    pub color: usize,
}

/// Draws the boxes (2 px outlines) with `label score` captions onto a copy of the image.
pub fn draw_boxes(img: &RgbImage, boxes: &[Annotated]) -> Result<RgbImage> {
    register_fonts();
    let (w, h) = img.dimensions();
    let mut buf = img.as_raw().clone();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let font = ("sans-serif", 12).into_font();
        for b in boxes {
            let c = PALETTE[b.color % PALETTE.len()];
            let x1 = b.bbox[0].round() as i32;
            let y1 = b.bbox[1].round() as i32;
            let x2 = b.bbox[2].round() as i32;
            let y2 = b.bbox[3].round() as i32;
            root.draw(&Rectangle::new([(x1, y1), (x2, y2)], c.stroke_width(2)))
                .map_err(draw_err)?;
            let text = match b.score {
                Some(s) => format!("{} {s:.2}", b.label),
                None => b.label.clone(),
            };
            if !text.is_empty() {
                let ty = if y1 >= 14 { y1 - 14 } else { y1 + 2 };
                root.draw(&Text::new(text, (x1 + 2, ty), font.color(&c)))
                    .map_err(draw_err)?;
            }
        }
        root.present().map_err(draw_err)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| draw_err("buffer size changed"))
}

/// Draws the boxes and writes a PNG.
pub fn save_boxes_png(img: &RgbImage, boxes: &[Annotated], path: &Path) -> Result<()> {
    write_png(&draw_boxes(img, boxes)?, path)
}

/// Precision-recall curves (one line per `(name, recall, precision)`) as a PNG.
pub fn pr_curve_png(
    curves: &[(String, Vec<f64>, Vec<f64>)],
    path: &Path,
    title: &str,
) -> Result<()> {
    register_fonts();
    for (name, r, p) in curves {
        if r.len() != p.len() {
            return Err(DetError::LengthMismatch {
                what: if name.is_empty() {
                    "precision"
                } else {
                    "precision (one per recall)"
                },
                expected: r.len(),
                got: p.len(),
            });
        }
    }
    let (w, h) = (640u32, 480u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("recall")
            .y_desc("precision")
            .draw()
            .map_err(draw_err)?;
        for (i, (name, r, p)) in curves.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    r.iter().copied().zip(p.iter().copied()),
                    c.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    let img = RgbImage::from_raw(w, h, buf).ok_or_else(|| draw_err("buffer size changed"))?;
    write_png(&img, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn boxes_change_exactly_the_outline_pixels() {
        let img = RgbImage::from_pixel(64, 48, Rgb([0, 0, 0]));
        let b = Annotated {
            bbox: [10.0, 20.0, 40.0, 40.0],
            label: String::new(),
            score: None,
            color: 2,
        };
        let out = draw_boxes(&img, &[b]).unwrap();
        assert_eq!(out.get_pixel(10, 30), &Rgb([0, 130, 200]));
        assert_eq!(out.get_pixel(25, 30), &Rgb([0, 0, 0])); // inside untouched
        assert_eq!(out.get_pixel(5, 5), &Rgb([0, 0, 0]));
    }

    #[test]
    fn writes_png_files() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_pixel(80, 60, Rgb([200, 200, 200]));
        let b = Annotated {
            bbox: [5.0, 20.0, 40.0, 50.0],
            label: "Tree".into(),
            score: Some(0.87),
            color: 0,
        };
        let p = dir.path().join("boxes.png");
        save_boxes_png(&img, &[b], &p).unwrap();
        assert_eq!(image::open(&p).unwrap().to_rgb8().dimensions(), (80, 60));
        let pr = dir.path().join("pr.png");
        let curve = ("tree".to_string(), vec![0.0, 0.5, 1.0], vec![1.0, 0.8, 0.5]);
        pr_curve_png(&[curve], &pr, "PR").unwrap();
        assert_eq!(image::open(&pr).unwrap().to_rgb8().dimensions(), (640, 480));
        let bad = ("x".to_string(), vec![0.0], vec![]);
        assert!(pr_curve_png(&[bad], &pr, "PR").is_err());
    }
}
