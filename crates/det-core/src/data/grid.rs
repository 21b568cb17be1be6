//! Predictions next to the ground truth as one PNG: one row per image, the ground truth on the
//! left (green, class name) and the predictions on the right (red, `class score`), drawn with
//! [`crate::draw::draw_boxes`].

use std::path::Path;

use image::{imageops, Rgb, RgbImage};

use super::{tensor_to_rgb, DetectionSet};
use crate::coco::CocoDetection;
use crate::draw::{draw_boxes, Annotated};
use crate::error::{DetError, Result};
use crate::transforms::Detection;

/// Palette index of ground-truth boxes (green) and of predictions (red) in [`crate::draw`].
pub const GT_COLOR: usize = 1;
pub const PRED_COLOR: usize = 0;
const GAP: u32 = 6;

/// One row: image `index` of the set and its predictions (original image coordinates, class
/// indices into the set's categories).
#[derive(Debug, Clone, PartialEq)]
pub struct GridItem {
    pub index: usize,
    pub detections: Vec<Detection>,
}

impl GridItem {
    /// The detections of image `index` among COCO results of the set (category ids mapped
    /// back to class indices; unknown categories are left out).
    pub fn from_coco(set: &dyn DetectionSet, index: usize, dets: &[CocoDetection]) -> Result<Self> {
        let id = set.record(index)?.image_id;
        let cats = set.categories();
        let detections = dets
            .iter()
            .filter(|d| d.image_id == id)
            .filter_map(|d| {
                let class = cats.iter().position(|c| c.id == d.category_id)? as i64;
                let [x, y, w, h] = d.bbox;
                Some(Detection {
                    bbox: [x, y, x + w, y + h],
                    score: d.score,
                    class,
                })
            })
            .collect();
        Ok(GridItem { index, detections })
    }
}

fn class_name(set: &dyn DetectionSet, class: i64) -> String {
    usize::try_from(class)
        .ok()
        .and_then(|c| set.categories().get(c))
        .map(|c| c.name.clone())
        .unwrap_or_else(|| class.to_string())
}

/// The grid as an image: predictions below `score_threshold` are not drawn.
pub fn grid_image(
    set: &dyn DetectionSet,
    items: &[GridItem],
    score_threshold: f64,
) -> Result<RgbImage> {
    if items.is_empty() {
        return Err(DetError::arg("grid items", "at least one image", "none"));
    }
    let mut rows = Vec::with_capacity(items.len());
    for it in items {
        let r = set.record(it.index)?;
        let img = tensor_to_rgb(&set.image(it.index)?)?;
        let gt: Vec<Annotated> = r
            .boxes
            .iter()
            .zip(&r.classes)
            .map(|(b, &c)| Annotated {
                bbox: *b,
                label: class_name(set, c),
                score: None,
                color: GT_COLOR,
            })
            .collect();
        let pred: Vec<Annotated> = it
            .detections
            .iter()
            .filter(|d| d.score >= score_threshold)
            .map(|d| Annotated {
                bbox: d.bbox,
                label: class_name(set, d.class),
                score: Some(d.score),
                color: PRED_COLOR,
            })
            .collect();
        rows.push((draw_boxes(&img, &gt)?, draw_boxes(&img, &pred)?));
    }
    let cell_w = rows.iter().map(|(g, _)| g.width()).max().unwrap_or(1);
    let cell_h = rows.iter().map(|(g, _)| g.height()).max().unwrap_or(1);
    let n = rows.len() as u32;
    let mut out = RgbImage::from_pixel(
        2 * cell_w + 3 * GAP,
        n * cell_h + (n + 1) * GAP,
        Rgb([255, 255, 255]),
    );
    for (i, (g, p)) in rows.iter().enumerate() {
        let y = (GAP + i as u32 * (cell_h + GAP)) as i64;
        imageops::replace(&mut out, g, GAP as i64, y);
        imageops::replace(&mut out, p, (2 * GAP + cell_w) as i64, y);
    }
    Ok(out)
}

/// Writes [`grid_image`] as a PNG.
pub fn draw_grid(
    set: &dyn DetectionSet,
    items: &[GridItem],
    score_threshold: f64,
    path: &Path,
) -> Result<()> {
    grid_image(set, items, score_threshold)?
        .save(path)
        .map_err(|e| DetError::io(path, std::io::Error::other(e.to_string())))
}
