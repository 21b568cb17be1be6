//! The detection data path shared by the detection crates (det-pyramid, det-anchorfree, yolo):
//! a data set abstraction (images + `xyxy` pixel boxes + contiguous class indices + the
//! original category ids), its sources, batching into padded tensors, box-aware augmentation on
//! tensors with the inverse mapping kept per image, an evaluation helper that reports every
//! detector the same way, and a GT | prediction drawing grid.
//!
//! Conventions follow torchvision's detection references (`references/detection/coco_utils.py`:
//! COCO `[x, y, w, h]` -> `xyxy`, degenerate boxes dropped, boxes clamped to the image) and
//! pycocotools (`area` decides the small / medium / large range, crowd regions ignored).
//!
//! - [`source`] — [`CocoFolder`], [`VocFolder`], [`DeepForestSet`];
//! - [`mnist_det`] — [`MnistDet`], canvases of real MNIST digits at many scales;
//! - [`batch`] — [`DetLoader`] -> [`DetBatch`] (`train_kit::DataSource`);
//! - [`augment`] — [`Sample`], [`ImageMap`], flip / scale-jitter crop / HSV / letterbox;
//! - [`evaluate`] — [`evaluate_detector`] -> [`DetectionReport`];
//! - [`grid`] — [`draw_grid`].

pub mod augment;
pub mod batch;
mod digits;
pub mod evaluate;
pub mod grid;
pub mod mnist_det;
pub mod source;

pub use augment::{AugmentConfig, HsvGains, ImageMap, Sample};
pub use batch::{DetBatch, DetEpoch, DetLoader, DetLoaderConfig};
pub use evaluate::{evaluate_detector, evaluate_fn, DetectionReport, ImageDetections};
pub use grid::{draw_grid, GridItem};
pub use mnist_det::{MnistDet, MnistDetConfig, MnistSplit};
pub use source::{CocoFolder, CocoFolderConfig, CrowdPolicy, DeepForestSet, VocFolder};

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::coco::{CocoAnnotation, CocoCategory, CocoDataset, CocoImage};
use crate::error::{DetError, Result};

/// One category: its original id (as in the source's files and in results JSON) and name.
/// A set's class index `k` is the position of its category in [`DetectionSet::categories`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// The original category id (as in the source's files and results JSON).
    pub id: i64,
    /// The category name.
    pub name: String,
}

/// The annotation of one image: `xyxy` boxes in continuous pixel coordinates (the image spans
/// `[0, width] x [0, height]`), class indices into the set's categories, and per box whether
/// it is a crowd region (COCO `iscrowd`) or `difficult` (VOC): both are evaluation-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetRecord {
    /// COCO `image_id`.
    pub image_id: i64,
    /// File name relative to the image folder (also the COCO `file_name`).
    pub file_name: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// `xyxy` boxes in continuous pixel coordinates.
    pub boxes: Vec<[f64; 4]>,
    /// One class index per box.
    pub classes: Vec<i64>,
    /// Per box: a crowd region (COCO `iscrowd`).
    pub crowd: Vec<bool>,
    /// Per box: VOC `difficult`.
    pub difficult: Vec<bool>,
}

impl DetRecord {
    /// A record without crowd or difficult boxes.
    pub fn new(
        image_id: i64,
        file_name: String,
        (width, height): (u32, u32),
        boxes: Vec<[f64; 4]>,
        classes: Vec<i64>,
    ) -> Self {
        let n = boxes.len();
        DetRecord {
            image_id,
            file_name,
            width,
            height,
            boxes,
            classes,
            crowd: vec![false; n],
            difficult: vec![false; n],
        }
    }

    /// Boxes to ignore in training losses and evaluation (crowd or difficult).
    pub fn ignored(&self) -> Vec<bool> {
        self.crowd
            .iter()
            .zip(&self.difficult)
            .map(|(c, d)| *c || *d)
            .collect()
    }
}

/// A detection data set: indexed images with their annotations.
///
/// Images are `[C, H, W]` float32 tensors in `[0, 1]` on the CPU with `H = record.height`,
/// `W = record.width`; `C` is [`DetectionSet::channels`] for every image.
pub trait DetectionSet: Send + Sync {
    /// A short name for messages (`"mnist-det/train"`, a folder).
    fn name(&self) -> String;
    /// The categories; class index `k` is `categories()[k]`.
    fn categories(&self) -> &[Category];
    /// The annotations of every image, in index order.
    fn records(&self) -> &[DetRecord];
    /// Number of images.
    fn len(&self) -> usize {
        self.records().len()
    }
    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The annotation of image `i` (`i < len()`; out of range is an error).
    fn record(&self, i: usize) -> Result<&DetRecord> {
        let records = self.records();
        records
            .get(i)
            .ok_or_else(|| out_of_range("image index", i, records.len()))
    }
    /// The pixels of image `i`.
    fn image(&self, i: usize) -> Result<Tensor>;
    /// Channels of every image (1 or 3).
    fn channels(&self) -> i64;
}

pub(crate) fn out_of_range(what: &'static str, i: usize, len: usize) -> DetError {
    DetError::arg(what, format!("an index < {len}"), i)
}

pub(crate) fn torch_err(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> DetError {
    let context = context.into();
    move |e| DetError::Tensor {
        context,
        message: e.to_string(),
    }
}

/// Box counts per COCO area range, bounds inclusive as pycocotools' (`[0, 32²]`,
/// `[32², 96²]`, `[96², inf)`: an area of exactly 32² counts as small and medium).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaCounts {
    /// Boxes with area <= 32².
    pub small: usize,
    /// Boxes with area in `[32², 96²]`.
    pub medium: usize,
    /// Boxes with area >= 96².
    pub large: usize,
    /// All boxes.
    pub total: usize,
}

impl AreaCounts {
    /// Counts the boxes of a set (box area `w * h`).
    pub fn of(set: &dyn DetectionSet) -> Result<Self> {
        let mut c = AreaCounts::default();
        for i in 0..set.len() {
            for b in &set.record(i)?.boxes {
                let a = (b[2] - b[0]) * (b[3] - b[1]);
                c.total += 1;
                c.small += (a <= 1024.0) as usize;
                c.medium += (1024.0..=9216.0).contains(&a) as usize;
                c.large += (a >= 9216.0) as usize;
            }
        }
        Ok(c)
    }
}

/// The set's ground truth as a COCO instances file: image ids, file names and sizes from the
/// records, `bbox = [x1, y1, x2 - x1, y2 - y1]`, `area = w * h` (the box area: the sources
/// here have no segments), `category_id` = the original id of the class. Crowd boxes keep
/// `iscrowd: 1`; VOC `difficult` boxes are written as `iscrowd: 1` too, since COCO has no
/// difficult flag and pycocotools reads its `ignore` field only through `iscrowd`: matching
/// them then neither counts nor costs, the nearest COCO equivalent of VOC's rule.
/// Annotation ids run 1, 2, ... in image order.
pub fn to_coco(set: &dyn DetectionSet) -> Result<CocoDataset> {
    let cats = set.categories();
    let mut d = CocoDataset {
        categories: cats
            .iter()
            .map(|c| CocoCategory {
                id: c.id,
                name: c.name.clone(),
                supercategory: None,
            })
            .collect(),
        ..CocoDataset::default()
    };
    for i in 0..set.len() {
        let r = set.record(i)?;
        d.images.push(CocoImage {
            id: r.image_id,
            file_name: Some(r.file_name.clone()),
            width: Some(r.width),
            height: Some(r.height),
        });
        for (k, b) in r.boxes.iter().enumerate() {
            let class = r.classes[k];
            let cat = usize::try_from(class)
                .ok()
                .and_then(|c| cats.get(c))
                .ok_or_else(|| {
                    DetError::arg(
                        "class index",
                        format!("< {} (the categories of {})", cats.len(), set.name()),
                        class,
                    )
                })?;
            let (w, h) = (b[2] - b[0], b[3] - b[1]);
            d.annotations.push(CocoAnnotation {
                id: d.annotations.len() as i64 + 1,
                image_id: r.image_id,
                category_id: cat.id,
                bbox: [b[0], b[1], w, h],
                area: w * h,
                iscrowd: r.crowd[k] || r.difficult[k],
            });
        }
    }
    d.validate()?;
    Ok(d)
}

/// Writes [`to_coco`] as JSON (pycocotools and `det-eval` read it).
pub fn write_coco(set: &dyn DetectionSet, path: &Path) -> Result<()> {
    to_coco(set)?.write(path)
}

/// An RGB image as a `[3, H, W]` float32 tensor in `[0, 1]`.
pub fn rgb_to_tensor(img: &image::RgbImage) -> Result<Tensor> {
    let (w, h) = img.dimensions();
    Tensor::f_from_slice(img.as_raw())
        .and_then(|t| t.f_view([h as i64, w as i64, 3]))
        .and_then(|t| t.f_permute([2, 0, 1]))
        .and_then(|t| t.f_to_kind(Kind::Float))
        .map(|t| t / 255.0)
        .map_err(torch_err("converting an RGB image to a tensor"))
}

/// A grey image as a `[1, H, W]` float32 tensor in `[0, 1]`.
pub fn gray_to_tensor(img: &image::GrayImage) -> Result<Tensor> {
    let (w, h) = img.dimensions();
    Tensor::f_from_slice(img.as_raw())
        .and_then(|t| t.f_view([1, h as i64, w as i64]))
        .and_then(|t| t.f_to_kind(Kind::Float))
        .map(|t| t / 255.0)
        .map_err(torch_err("converting a grey image to a tensor"))
}

/// A `[1 or 3, H, W]` float tensor in `[0, 1]` (any device) as an 8-bit RGB image (grey
/// replicated), rounding to the nearest level.
pub fn tensor_to_rgb(t: &Tensor) -> Result<image::RgbImage> {
    let s = t.size();
    if s.len() != 3 || !(s[0] == 1 || s[0] == 3) {
        return Err(DetError::arg(
            "image tensor",
            "[1 or 3, H, W]",
            format!("{s:?}"),
        ));
    }
    let (h, w) = (s[1], s[2]);
    let rgb = if s[0] == 1 {
        t.f_expand([3, h, w], false)
    } else {
        Ok(t.shallow_clone())
    };
    let bytes = rgb
        .and_then(|x| x.f_to_device(tch::Device::Cpu))
        .and_then(|x| x.f_to_kind(Kind::Float))
        .and_then(|x| (x * 255.0).f_round())
        .and_then(|x| x.f_clamp(0.0, 255.0))
        .and_then(|x| x.f_to_kind(Kind::Uint8))
        .and_then(|x| x.f_permute([1, 2, 0]))
        .and_then(|x| x.f_contiguous())
        .and_then(|x| x.f_view([-1]))
        .and_then(|x| Vec::<u8>::try_from(&x))
        .map_err(torch_err("converting a tensor to an RGB image"))?;
    image::RgbImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| DetError::arg("image tensor", "a readable buffer", "a short buffer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_image_round_trip() {
        let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8, 9]));
        let t = rgb_to_tensor(&img).unwrap();
        assert_eq!(t.size(), vec![3, 3, 5]);
        test_support::assert_close(
            t.double_value(&[0, 0, 4]),
            160.0 / 255.0,
            test_support::Tol::abs(1e-6),
        );
        assert_eq!(tensor_to_rgb(&t).unwrap(), img);
        assert!(tensor_to_rgb(&Tensor::zeros([2, 4, 4], (Kind::Float, tch::Device::Cpu))).is_err());
    }
}
