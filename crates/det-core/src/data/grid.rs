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

/// Palette index of ground-truth boxes (green) in [`crate::draw`].
pub const GT_COLOR: usize = 1;
/// Palette index of predictions (red).
pub const PRED_COLOR: usize = 0;
const GAP: u32 = 6;

/// One row: image `index` of the set and its predictions (original image coordinates, class
/// indices into the set's categories).
#[derive(Debug, Clone, PartialEq)]
pub struct GridItem {
    /// Index of the image in the set.
    pub index: usize,
    /// Its predictions, original image coordinates.
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
    crate::draw::write_png(&grid_image(set, items, score_threshold)?, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{MnistDet, MnistDetConfig, MnistSplit};
    use tch::Tensor;

    #[test]
    fn rows_hold_ground_truth_left_and_predictions_right() {
        let mut px = vec![0f32; 2 * 784];
        for d in 0..2usize {
            for y in 4..24 {
                for x in 8..20 {
                    px[d * 784 + y * 28 + x] = 1.0;
                }
            }
        }
        let digits = Tensor::from_slice(&px).view([2, 1, 28, 28]);
        let labels = Tensor::from_slice(&[3i64, 8]);
        let cfg = MnistDetConfig {
            width: 64,
            height: 48,
            min_size: 12.0,
            max_size: 20.0,
            max_clutter: 0,
            train_images: 3,
            ..MnistDetConfig::default()
        };
        let set = MnistDet::from_digits(&digits, &labels, MnistSplit::Train, &cfg).unwrap();
        let gt = set.record(1).unwrap().boxes[0];
        let pred = |score| Detection {
            bbox: [gt[0] + 1.0, gt[1] + 1.0, gt[2] + 1.0, gt[3] + 1.0],
            score,
            class: 3,
        };
        let items = [
            GridItem {
                index: 1,
                detections: vec![pred(0.9)],
            },
            GridItem {
                index: 2,
                detections: vec![pred(0.1)],
            },
        ];
        let g = grid_image(&set, &items, 0.5).unwrap();
        assert_eq!(g.dimensions(), (2 * 64 + 3 * GAP, 2 * 48 + 3 * GAP));
        let green = Rgb([60, 180, 75]);
        let red = Rgb([230, 25, 75]);
        // the ground-truth outline on the left, the prediction on the right of row 0
        let (x, y) = (GAP + gt[0] as u32, GAP + ((gt[1] + gt[3]) / 2.0) as u32);
        assert_eq!(g.get_pixel(x, y), &green);
        let xr = 2 * GAP + 64 + gt[0] as u32 + 1;
        assert_eq!(g.get_pixel(xr, y + 1), &red);
        // row 1: the prediction under the threshold is not drawn
        let row1 = (2 * GAP + 48..3 * GAP + 2 * 48)
            .flat_map(|y| (2 * GAP + 64..2 * GAP + 128).map(move |x| (x, y)));
        assert!(row1.into_iter().all(|(x, y)| g.get_pixel(x, y) != &red));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grid.png");
        draw_grid(&set, &items, 0.5, &p).unwrap();
        assert_eq!(image::open(&p).unwrap().to_rgb8(), g);
        assert!(grid_image(&set, &[], 0.5).is_err());
        // from COCO results: category id 4 is class 3
        let coco = [CocoDetection {
            image_id: 2,
            category_id: 4,
            bbox: [1.0, 2.0, 3.0, 4.0],
            score: 0.7,
        }];
        let it = GridItem::from_coco(&set, 1, &coco).unwrap();
        assert_eq!(it.detections[0].class, 3);
        assert_eq!(it.detections[0].bbox, [1.0, 2.0, 4.0, 6.0]);
    }
}
