//! The deepforest sample data (PyPI `deepforest==2.1.0`, folder `deepforest/data/`; fetched
//! and checksummed by `cargo xtask data fetch deepforest`, see `datasets::fetch::DEEPFOREST`)
//! as a detection data set: NEON aerial RGB images with tree crowns as boxes (VOC XML), cut
//! into overlapping tiles with the boxes clipped to each tile.
//!
//! Split (fixed, by source image so that no tree is in both): train = the 2299x2472 Yellowstone
//! crop (574 trees) and SOAP_061 (37 boxes, Dead/Alive); val = the 1249x1035 Yellowstone crop
//! (279 trees) and OSBS_029 (61 trees).

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::coco::{CocoAnnotation, CocoCategory, CocoDataset, CocoImage};
use crate::error::{DetError, Result};
use crate::transforms::{clip_to_window, tiles, Window};
use crate::voc::VocAnnotation;

/// Annotation files of each split, in order.
pub const TRAIN: [&str; 2] = ["2019_YELL_2_528000_4978000_image_crop2.xml", "SOAP_061.xml"];
/// Annotation files of the validation split, in order.
pub const VAL: [&str; 2] = ["2019_YELL_2_541000_4977000_image_crop.xml", "OSBS_029.xml"];

/// Which part of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training images.
    Train,
    /// The held-out validation images.
    Val,
}

/// One annotated image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionImage {
    /// The image file.
    pub image: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `xyxy` pixel boxes.
    pub boxes: Vec<[f64; 4]>,
    /// One class name per box.
    pub labels: Vec<String>,
}

/// One tile: a window of `images[source]` with the boxes inside it (tile coordinates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionTile {
    /// Index into [`DeepForest::images`] of the image the tile is cut from.
    pub source: usize,
    /// The tile's window in that image.
    pub window: Window,
    /// `xyxy` boxes in tile coordinates.
    pub boxes: Vec<[f64; 4]>,
    /// One class name per box.
    pub labels: Vec<String>,
}

/// The images of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepForest {
    /// Which split these are.
    pub split: Split,
    /// The split's images.
    pub images: Vec<DetectionImage>,
}

impl DeepForest {
    /// Reads the split's VOC files in `dir` (the fetched `deepforest` folder).
    pub fn open(dir: &Path, split: Split) -> Result<Self> {
        let files = match split {
            Split::Train => TRAIN,
            Split::Val => VAL,
        };
        let mut images = Vec::new();
        for f in files {
            let ann = VocAnnotation::read(&dir.join(f))?;
            let mut image = dir.join(&ann.filename);
            // The package's OSBS_029.xml names OSBS_029.tif; the wheel ships OSBS_029.png.
            let png = image.with_extension("png");
            if !image.is_file() && png.is_file() {
                image = png;
            }
            let (width, height) = match ann.size {
                Some((w, h, _)) => (w, h),
                None => image::image_dimensions(&image)
                    .map_err(|e| DetError::io(&image, std::io::Error::other(e.to_string())))?,
            };
            images.push(DetectionImage {
                image,
                width,
                height,
                boxes: ann.objects.iter().map(|o| o.bbox).collect(),
                labels: ann.objects.iter().map(|o| o.name.clone()).collect(),
            });
        }
        Ok(DeepForest { split, images })
    }

    /// Number of boxes over all images.
    pub fn num_boxes(&self) -> usize {
        self.images.iter().map(|i| i.boxes.len()).sum()
    }

    /// Overlapping `tile x tile` windows of every image (stride `tile - overlap`), keeping the
    /// boxes with at least `min_visible` of their area inside, clipped. Tiles without boxes
    /// are kept (they teach the background).
    pub fn tiles(&self, tile: u32, overlap: u32, min_visible: f64) -> Result<Vec<DetectionTile>> {
        let mut out = Vec::new();
        for (s, im) in self.images.iter().enumerate() {
            for w in tiles(im.width, im.height, tile, overlap)? {
                let kept = clip_to_window(&im.boxes, w, min_visible);
                out.push(DetectionTile {
                    source: s,
                    window: w,
                    labels: kept.iter().map(|(i, _)| im.labels[*i].clone()).collect(),
                    boxes: kept.into_iter().map(|(_, b)| b).collect(),
                });
            }
        }
        Ok(out)
    }

    /// Loads the pixels of one tile.
    pub fn load_tile(&self, t: &DetectionTile) -> Result<RgbImage> {
        let im = self.images.get(t.source).ok_or_else(|| {
            DetError::arg("tile.source", format!("< {}", self.images.len()), t.source)
        })?;
        let img = image::open(&im.image)
            .map_err(|e| DetError::io(&im.image, std::io::Error::other(e.to_string())))?
            .to_rgb8();
        let w = t.window;
        if w.x + w.w > img.width() || w.y + w.h > img.height() {
            return Err(DetError::arg(
                "tile window",
                format!("inside the {}x{} image", img.width(), img.height()),
                format!("{w:?}"),
            ));
        }
        Ok(image::imageops::crop_imm(&img, w.x, w.y, w.w, w.h).to_image())
    }

    /// Ground truth of the tiles as a COCO data set (image id = tile index + 1, categories
    /// numbered by sorted label), for [`crate::evaluate`].
    pub fn tiles_to_coco(tiles: &[DetectionTile]) -> CocoDataset {
        let mut labels: Vec<&str> = tiles
            .iter()
            .flat_map(|t| t.labels.iter().map(String::as_str))
            .collect();
        labels.sort_unstable();
        labels.dedup();
        let mut d = CocoDataset {
            categories: labels
                .iter()
                .enumerate()
                .map(|(i, l)| CocoCategory {
                    id: i as i64 + 1,
                    name: (*l).to_owned(),
                    supercategory: None,
                })
                .collect(),
            ..CocoDataset::default()
        };
        for (ti, t) in tiles.iter().enumerate() {
            d.images.push(CocoImage {
                id: ti as i64 + 1,
                file_name: None,
                width: Some(t.window.w),
                height: Some(t.window.h),
            });
            for (b, l) in t.boxes.iter().zip(&t.labels) {
                let cat = labels.iter().position(|x| x == l).unwrap_or(0) as i64 + 1;
                let (w, h) = (b[2] - b[0], b[3] - b[1]);
                d.annotations.push(CocoAnnotation {
                    id: d.annotations.len() as i64 + 1,
                    image_id: ti as i64 + 1,
                    category_id: cat,
                    bbox: [b[0], b[1], w, h],
                    area: w * h,
                    iscrowd: false,
                });
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn write_sample(dir: &Path, xml: &str, png: &str, w: u32, h: u32, boxes: &[[u32; 4]]) {
        let mut s = format!("<annotation><filename>{png}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>");
        for b in boxes {
            s += &format!("<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>", b[0], b[1], b[2], b[3]);
        }
        s += "</annotation>";
        std::fs::write(dir.join(xml), s).unwrap();
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 0]))
            .save(dir.join(png))
            .unwrap();
    }

    #[test]
    fn tiles_clip_boxes_and_load_pixels() {
        let dir = tempfile::tempdir().unwrap();
        write_sample(
            dir.path(),
            VAL[0],
            "big.png",
            120,
            80,
            &[[10, 10, 30, 30], [55, 20, 75, 40]],
        );
        write_sample(dir.path(), VAL[1], "small.png", 40, 40, &[[1, 1, 5, 5]]);
        let ds = DeepForest::open(dir.path(), Split::Val).unwrap();
        assert_eq!(ds.num_boxes(), 3);
        let t = ds.tiles(64, 16, 0.4).unwrap();
        // 120 wide: x = 0, 48, 56; 80 high: y = 0, 16. The second box keeps 9/20 of its width.
        assert_eq!(t.iter().filter(|t| t.source == 0).count(), 6);
        let first = &t[0];
        assert_eq!(
            first.window,
            Window {
                x: 0,
                y: 0,
                w: 64,
                h: 64
            }
        );
        assert_eq!(
            first.boxes,
            vec![[10.0, 10.0, 30.0, 30.0], [55.0, 20.0, 64.0, 40.0]]
        );
        let px = ds.load_tile(&t[1]).unwrap();
        assert_eq!(px.get_pixel(0, 0), &Rgb([t[1].window.x as u8, 0, 0]));
        let coco = DeepForest::tiles_to_coco(&t);
        assert_eq!(coco.images.len(), t.len());
        assert_eq!(coco.categories.len(), 1);
        assert!(DeepForest::open(dir.path(), Split::Train).is_err());
    }

    /// The real files, when fetched (`cargo xtask data fetch deepforest`, then point
    /// `CVLAB_DATA` at the data root).
    #[test]
    #[ignore = "needs the deepforest data: cargo xtask data fetch deepforest"]
    fn real_data_deepforest_counts() {
        let root = std::env::var_os("CVLAB_DATA").expect("CVLAB_DATA");
        let dir = PathBuf::from(root).join("deepforest");
        let val = DeepForest::open(&dir, Split::Val).unwrap();
        let train = DeepForest::open(&dir, Split::Train).unwrap();
        assert_eq!(
            val.images.iter().map(|i| i.boxes.len()).collect::<Vec<_>>(),
            vec![279, 61]
        );
        assert_eq!(
            train
                .images
                .iter()
                .map(|i| i.boxes.len())
                .collect::<Vec<_>>(),
            vec![574, 37]
        );
        let tiles = val.tiles(400, 50, 0.5).unwrap();
        assert!(tiles.len() > 8);
        assert_eq!(val.load_tile(&tiles[0]).unwrap().dimensions(), (400, 400));
    }
}
