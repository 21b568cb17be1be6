//! Detection sets read from files: a COCO folder (instances JSON + image folder), a Pascal VOC
//! folder (`Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/<split>.txt`) and the deepforest
//! tiles.
//!
//! Box conventions, following the references:
//! - COCO `[x, y, w, h]` becomes `[x, y, x + w, y + h]` and is clamped to the image, then boxes
//!   with no area are dropped (torchvision `references/detection/coco_utils.py`,
//!   `ConvertCocoPolysToMask`). Boxes reaching outside the image by more than
//!   [`CocoFolderConfig::clip_tolerance`] pixels are an error instead of being clamped silently.
//!   Category ids are mapped to contiguous class indices in ascending id order (detectron2's
//!   `thing_dataset_id_to_contiguous_id`); [`super::Category::id`] keeps the original id, so
//!   results JSON uses it.
//! - VOC boxes are 1-based inclusive pixels; `[xmin - 1, ymin - 1, xmax, ymax]` gives continuous
//!   coordinates (detectron2 `data/datasets/pascal_voc.py`). `difficult` is kept as a flag.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{gray_to_tensor, out_of_range, rgb_to_tensor, Category, DetRecord, DetectionSet};
use crate::coco::CocoDataset;
use crate::deepforest::{DeepForest, DetectionTile, Split};
use crate::error::{DetError, Result};
use crate::voc::VocAnnotation;

/// What a COCO folder does with `iscrowd: 1` annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrowdPolicy {
    /// Kept with `crowd = true`: batches mark them ignored, the COCO export writes `iscrowd: 1`
    /// so the evaluator ignores detections on them (as pycocotools does on the original file).
    Keep,
    /// Left out entirely (a detection on a crowd region then counts as a false positive).
    Skip,
}

/// How [`CocoFolder::open`] reads a folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CocoFolderConfig {
    /// Whether crowd annotations are kept (flagged) or skipped.
    pub crowd: CrowdPolicy,
    /// Pixels a box may reach outside its image before it is an error; within that it is
    /// clamped. Default 1.0.
    pub clip_tolerance: f64,
    /// Channels of the images handed out: 3 (RGB) or 1 (luma).
    pub channels: i64,
    /// Check at opening that every image file exists (one `stat` per image).
    pub check_files: bool,
}

impl Default for CocoFolderConfig {
    fn default() -> Self {
        CocoFolderConfig {
            crowd: CrowdPolicy::Keep,
            clip_tolerance: 1.0,
            channels: 3,
            check_files: true,
        }
    }
}

fn check_channels(channels: i64) -> Result<()> {
    if channels == 1 || channels == 3 {
        Ok(())
    } else {
        Err(DetError::arg("channels", "1 or 3", channels))
    }
}

/// Reads an image file as a `[channels, H, W]` tensor and checks its size against the record.
pub(crate) fn load_image(path: &Path, r: &DetRecord, channels: i64) -> Result<Tensor> {
    if !path.is_file() {
        return Err(DetError::MissingFile {
            what: "image",
            path: path.to_path_buf(),
            listed_in: format!("the annotation of image {}", r.image_id),
        });
    }
    let img = image::open(path).map_err(|e| DetError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if (img.width(), img.height()) != (r.width, r.height) {
        return Err(DetError::ImageSize {
            image: path.display().to_string(),
            expected_w: r.width,
            expected_h: r.height,
            got_w: img.width(),
            got_h: img.height(),
        });
    }
    if channels == 1 {
        gray_to_tensor(&img.to_luma8())
    } else {
        rgb_to_tensor(&img.to_rgb8())
    }
}

/// Checks that `b` lies in the `w x h` image up to `tol` pixels and clamps it.
pub(crate) fn clamp_box(
    b: [f64; 4],
    (w, h): (u32, u32),
    tol: f64,
    what: &'static str,
    id: String,
    image: &str,
) -> Result<[f64; 4]> {
    let (fw, fh) = (w as f64, h as f64);
    if b[0] < -tol || b[1] < -tol || b[2] > fw + tol || b[3] > fh + tol {
        return Err(DetError::BoxOutsideImage {
            what,
            id,
            image: image.to_owned(),
            coords: b,
            width: w,
            height: h,
        });
    }
    Ok([
        b[0].clamp(0.0, fw),
        b[1].clamp(0.0, fh),
        b[2].clamp(0.0, fw),
        b[3].clamp(0.0, fh),
    ])
}

/// A COCO-layout folder: an instances JSON and the folder its `file_name`s are relative to.
#[derive(Debug, Clone)]
pub struct CocoFolder {
    images_dir: PathBuf,
    listed_in: String,
    categories: Vec<Category>,
    records: Vec<DetRecord>,
    channels: i64,
    dropped: usize,
}

impl CocoFolder {
    /// Reads `instances` (e.g. `annotations/instances_val2017.json`) with images under
    /// `images_dir` (e.g. `val2017/`).
    pub fn open(images_dir: &Path, instances: &Path, cfg: &CocoFolderConfig) -> Result<Self> {
        let ds = CocoDataset::read(instances)?;
        Self::from_dataset(ds, images_dir, &instances.display().to_string(), cfg)
    }

    /// As [`CocoFolder::open`] from an already parsed file; `listed_in` names it in errors.
    pub fn from_dataset(
        ds: CocoDataset,
        images_dir: &Path,
        listed_in: &str,
        cfg: &CocoFolderConfig,
    ) -> Result<Self> {
        check_channels(cfg.channels)?;
        if !(cfg.clip_tolerance.is_finite() && cfg.clip_tolerance >= 0.0) {
            return Err(DetError::arg(
                "clip_tolerance",
                "a finite number >= 0",
                cfg.clip_tolerance,
            ));
        }
        let mut ds = ds;
        ds.validate()?;
        let mut cats: Vec<Category> = ds
            .categories
            .iter()
            .map(|c| Category {
                id: c.id,
                name: c.name.clone(),
            })
            .collect();
        cats.sort_by_key(|c| c.id);
        let class_of: HashMap<i64, i64> = cats
            .iter()
            .enumerate()
            .map(|(k, c)| (c.id, k as i64))
            .collect();
        let mut records = Vec::with_capacity(ds.images.len());
        let mut row: HashMap<i64, usize> = HashMap::new();
        for im in &ds.images {
            let file_name = im.file_name.clone().ok_or_else(|| {
                DetError::arg(
                    "image file_name",
                    format!("a file name for image {} in {listed_in}", im.id),
                    "none",
                )
            })?;
            let path = images_dir.join(&file_name);
            if cfg.check_files && !path.is_file() {
                return Err(DetError::MissingFile {
                    what: "image",
                    path,
                    listed_in: listed_in.to_owned(),
                });
            }
            let (width, height) = match (im.width, im.height) {
                (Some(w), Some(h)) => (w, h),
                _ => image::image_dimensions(&path).map_err(|e| DetError::Image {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
            };
            if row.insert(im.id, records.len()).is_some() {
                return Err(DetError::DuplicateId {
                    what: "image",
                    id: im.id,
                });
            }
            records.push(DetRecord::new(
                im.id,
                file_name,
                (width, height),
                Vec::new(),
                Vec::new(),
            ));
        }
        let mut dropped = 0;
        for a in &ds.annotations {
            if a.iscrowd && cfg.crowd == CrowdPolicy::Skip {
                continue;
            }
            let r = row
                .get(&a.image_id)
                .map(|&i| &mut records[i])
                .ok_or_else(|| {
                    DetError::arg(
                        "annotation image_id",
                        format!("an image id of {listed_in}"),
                        format!("{} (annotation {})", a.image_id, a.id),
                    )
                })?;
            let class = *class_of.get(&a.category_id).ok_or_else(|| {
                DetError::arg(
                    "annotation category_id",
                    format!("a category id of {listed_in}"),
                    format!("{} (annotation {})", a.category_id, a.id),
                )
            })?;
            let [x, y, w, h] = a.bbox;
            let b = clamp_box(
                [x, y, x + w, y + h],
                (r.width, r.height),
                cfg.clip_tolerance,
                "annotation",
                a.id.to_string(),
                &r.file_name,
            )?;
            if b[2] <= b[0] || b[3] <= b[1] {
                dropped += 1;
                continue;
            }
            r.boxes.push(b);
            r.classes.push(class);
            r.crowd.push(a.iscrowd);
            r.difficult.push(false);
        }
        Ok(CocoFolder {
            images_dir: images_dir.to_path_buf(),
            listed_in: listed_in.to_owned(),
            categories: cats,
            records,
            channels: cfg.channels,
            dropped,
        })
    }

    /// Annotations dropped for having no area after clamping.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The folder the images are read from.
    pub fn images_dir(&self) -> &Path {
        &self.images_dir
    }
}

impl DetectionSet for CocoFolder {
    fn name(&self) -> String {
        self.listed_in.clone()
    }
    fn categories(&self) -> &[Category] {
        &self.categories
    }
    fn records(&self) -> &[DetRecord] {
        &self.records
    }
    fn image(&self, i: usize) -> Result<Tensor> {
        let r = self.record(i)?;
        load_image(&self.images_dir.join(&r.file_name), r, self.channels)
    }
    fn channels(&self) -> i64 {
        self.channels
    }
}

/// The 20 Pascal VOC classes in the devkit's order.
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// A VOC-layout folder (e.g. `VOCdevkit/VOC2007`) and one split of it.
#[derive(Debug, Clone)]
pub struct VocFolder {
    root: PathBuf,
    split: String,
    categories: Vec<Category>,
    records: Vec<DetRecord>,
}

impl VocFolder {
    /// Reads the ids in `root/ImageSets/Main/<split>.txt` and their `Annotations/<id>.xml`;
    /// images are `JPEGImages/<filename of the XML>` (else `<id>.jpg`). `classes` fixes the
    /// class order (e.g. [`VOC_CLASSES`]; an object of another name is an error); `None` takes
    /// the sorted names found. Category ids are 1, 2, ... in class order; image ids are the
    /// line numbers of the split file (1-based).
    pub fn open(root: &Path, split: &str, classes: Option<&[&str]>) -> Result<Self> {
        let list = root
            .join("ImageSets")
            .join("Main")
            .join(format!("{split}.txt"));
        let text = std::fs::read_to_string(&list).map_err(|e| DetError::io(&list, e))?;
        let ids: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .filter(|l| !l.is_empty())
            .collect();
        let mut anns = Vec::with_capacity(ids.len());
        for id in &ids {
            let xml = root.join("Annotations").join(format!("{id}.xml"));
            if !xml.is_file() {
                return Err(DetError::MissingFile {
                    what: "VOC annotation",
                    path: xml,
                    listed_in: list.display().to_string(),
                });
            }
            anns.push(VocAnnotation::read(&xml)?);
        }
        let names: Vec<String> = match classes {
            Some(c) => c.iter().map(|s| (*s).to_owned()).collect(),
            None => {
                let mut n: Vec<String> = anns
                    .iter()
                    .flat_map(|a| a.objects.iter().map(|o| o.name.clone()))
                    .collect();
                n.sort();
                n.dedup();
                n
            }
        };
        let categories: Vec<Category> = names
            .iter()
            .enumerate()
            .map(|(k, n)| Category {
                id: k as i64 + 1,
                name: n.clone(),
            })
            .collect();
        let jpeg = root.join("JPEGImages");
        let mut records = Vec::with_capacity(ids.len());
        for (i, (id, a)) in ids.iter().zip(&anns).enumerate() {
            let file_name = if a.filename.is_empty() {
                format!("{id}.jpg")
            } else {
                a.filename.clone()
            };
            let path = jpeg.join(&file_name);
            if !path.is_file() {
                return Err(DetError::MissingFile {
                    what: "image",
                    path,
                    listed_in: format!("Annotations/{id}.xml"),
                });
            }
            let size = match a.size {
                Some((w, h, _)) => (w, h),
                None => image::image_dimensions(&path).map_err(|e| DetError::Image {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
            };
            let mut r = DetRecord::new(i as i64 + 1, file_name, size, Vec::new(), Vec::new());
            for (k, o) in a.objects.iter().enumerate() {
                let class = names.iter().position(|n| *n == o.name).ok_or_else(|| {
                    DetError::arg(
                        "VOC object name",
                        format!("one of {names:?}"),
                        format!("{:?} (Annotations/{id}.xml, object {k})", o.name),
                    )
                })?;
                let b = [o.bbox[0] - 1.0, o.bbox[1] - 1.0, o.bbox[2], o.bbox[3]];
                let b = clamp_box(
                    b,
                    size,
                    1.0,
                    "object",
                    k.to_string(),
                    &format!("Annotations/{id}.xml"),
                )?;
                if b[2] <= b[0] || b[3] <= b[1] {
                    continue;
                }
                r.boxes.push(b);
                r.classes.push(class as i64);
                r.crowd.push(false);
                r.difficult.push(o.difficult);
            }
            records.push(r);
        }
        Ok(VocFolder {
            root: root.to_path_buf(),
            split: split.to_owned(),
            categories,
            records,
        })
    }
}

impl DetectionSet for VocFolder {
    fn name(&self) -> String {
        format!("{}:{}", self.root.display(), self.split)
    }
    fn categories(&self) -> &[Category] {
        &self.categories
    }
    fn records(&self) -> &[DetRecord] {
        &self.records
    }
    fn image(&self, i: usize) -> Result<Tensor> {
        let r = self.record(i)?;
        load_image(&self.root.join("JPEGImages").join(&r.file_name), r, 3)
    }
    fn channels(&self) -> i64 {
        3
    }
}

/// The deepforest tiles ([`crate::deepforest`]) as a detection set: one class, `"Tree"`
/// (every label of the sample data is a tree crown; deepforest's release model is single-class
/// too). Source images are decoded once and kept.
#[derive(Debug)]
pub struct DeepForestSet {
    forest: DeepForest,
    tiles: Vec<DetectionTile>,
    records: Vec<DetRecord>,
    categories: Vec<Category>,
    decoded: Vec<OnceLock<image::RgbImage>>,
}

impl DeepForestSet {
    /// Tiles of `tile` px overlapping by `overlap` of the split in `dir` (the fetched
    /// `deepforest` folder), boxes clipped and kept with `min_visible` of their area.
    pub fn open(
        dir: &Path,
        split: Split,
        tile: u32,
        overlap: u32,
        min_visible: f64,
    ) -> Result<Self> {
        Self::new(DeepForest::open(dir, split)?, tile, overlap, min_visible)
    }

    /// As [`DeepForestSet::open`] from an opened split.
    pub fn new(forest: DeepForest, tile: u32, overlap: u32, min_visible: f64) -> Result<Self> {
        let tiles = forest.tiles(tile, overlap, min_visible)?;
        let records = tiles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let stem = forest.images[t.source]
                    .image
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                DetRecord::new(
                    i as i64 + 1,
                    format!("{stem}_{}_{}.png", t.window.x, t.window.y),
                    (t.window.w, t.window.h),
                    t.boxes.clone(),
                    vec![0; t.boxes.len()],
                )
            })
            .collect();
        let decoded = forest.images.iter().map(|_| OnceLock::new()).collect();
        Ok(DeepForestSet {
            forest,
            tiles,
            records,
            categories: vec![Category {
                id: 1,
                name: "Tree".to_owned(),
            }],
            decoded,
        })
    }
}

impl DetectionSet for DeepForestSet {
    fn name(&self) -> String {
        format!("deepforest/{:?}", self.forest.split).to_lowercase()
    }
    fn categories(&self) -> &[Category] {
        &self.categories
    }
    fn records(&self) -> &[DetRecord] {
        &self.records
    }
    fn image(&self, i: usize) -> Result<Tensor> {
        let t = self
            .tiles
            .get(i)
            .ok_or_else(|| out_of_range("tile index", i, self.tiles.len()))?;
        let src = &self.forest.images[t.source];
        let img = match self.decoded[t.source].get() {
            Some(img) => img,
            None => {
                let img = image::open(&src.image)
                    .map_err(|e| DetError::Image {
                        path: src.image.clone(),
                        message: e.to_string(),
                    })?
                    .to_rgb8();
                self.decoded[t.source].get_or_init(|| img)
            }
        };
        let w = t.window;
        if w.x + w.w > img.width() || w.y + w.h > img.height() {
            return Err(DetError::ImageSize {
                image: src.image.display().to_string(),
                expected_w: src.width,
                expected_h: src.height,
                got_w: img.width(),
                got_h: img.height(),
            });
        }
        rgb_to_tensor(&image::imageops::crop_imm(img, w.x, w.y, w.w, w.h).to_image())
    }
    fn channels(&self) -> i64 {
        3
    }
}
