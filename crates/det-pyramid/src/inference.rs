//! Inference over an image pyramid and over tiles, for any [`Detector`].
//!
//! - Image pyramid (Adelson et al. 1984; SNIP, Singh & Davis 2018, Sec. 5): run the detector
//!   on the image resized by each scale, map boxes back (divide by the scale), keep at each
//!   scale only the detections whose size in the original image lies in that scale's valid
//!   range, merge all scales with one class-wise NMS or soft-NMS (Bodla et al. 2017).
//! - Tiles: overlapping windows of a large image (det-core `transforms::tiles`), detections
//!   shifted back and de-duplicated with class-wise NMS (`transforms::merge_tiles`).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use det_core::data::ImageDetections;
use det_core::transforms::{merge_tiles, tiles, Detection, Window};
use det_core::{batched_nms, soft_nms, SoftNmsConfig};

use crate::error::{PyramidError, Result};
use crate::levels::ValidRange;
use crate::resnet::MAX_STRIDE;
use crate::retinanet::Detector;

/// How the detections of several scales (or tiles) are merged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Merge {
    /// Class-wise greedy NMS at this IoU.
    Nms {
        /// IoU threshold.
        iou: f64,
    },
    /// Class-wise soft-NMS.
    SoftNms(SoftNmsConfig),
}

/// Image-pyramid inference settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PyramidInferenceConfig {
    /// Resize factors, e.g. `[1.0, 2.0]`.
    pub scales: Vec<f64>,
    /// Per scale, the valid sizes (`sqrt(wh)` in original pixels); empty: all valid.
    pub ranges: Vec<ValidRange>,
    /// How the scales are merged.
    pub merge: Merge,
    /// Detections kept per image after merging.
    pub max_detections: usize,
}

impl Default for PyramidInferenceConfig {
    fn default() -> Self {
        Self {
            scales: vec![1.0, 2.0],
            ranges: Vec::new(),
            merge: Merge::Nms { iou: 0.5 },
            max_detections: 100,
        }
    }
}

impl PyramidInferenceConfig {
    fn check(&self) -> Result<()> {
        if self.scales.is_empty() || self.scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(PyramidError::config(
                "PyramidInferenceConfig.scales",
                "a non-empty list of positive scales",
                format!("{:?}", self.scales),
            ));
        }
        if !self.ranges.is_empty() && self.ranges.len() != self.scales.len() {
            return Err(PyramidError::config(
                "PyramidInferenceConfig.ranges",
                format!("empty or one range per scale ({})", self.scales.len()),
                self.ranges.len(),
            ));
        }
        Ok(())
    }
}

fn to_detections(d: &ImageDetections) -> Result<Vec<Detection>> {
    Ok(d.to_vecs()?
        .into_iter()
        .map(|(bbox, score, class)| Detection { bbox, score, class })
        .collect())
}

fn from_detections(d: &[Detection], device: tch::Device) -> ImageDetections {
    if d.is_empty() {
        return ImageDetections::empty(device);
    }
    let flat: Vec<f32> = d.iter().flat_map(|x| x.bbox.map(|v| v as f32)).collect();
    let scores: Vec<f32> = d.iter().map(|x| x.score as f32).collect();
    let classes: Vec<i64> = d.iter().map(|x| x.class).collect();
    ImageDetections {
        boxes: Tensor::from_slice(&flat).view([-1, 4]).to_device(device),
        scores: Tensor::from_slice(&scores).to_device(device),
        classes: Tensor::from_slice(&classes).to_device(device),
    }
}

/// Class-wise merge of detections.
pub fn merge(all: Vec<Detection>, how: &Merge, max: usize) -> Result<Vec<Detection>> {
    let mut out = match how {
        Merge::Nms { iou } => {
            let boxes: Vec<[f64; 4]> = all.iter().map(|d| d.bbox).collect();
            let scores: Vec<f64> = all.iter().map(|d| d.score).collect();
            let classes: Vec<i64> = all.iter().map(|d| d.class).collect();
            batched_nms(&boxes, &scores, &classes, *iou)?
                .into_iter()
                .map(|i| all[i])
                .collect::<Vec<_>>()
        }
        Merge::SoftNms(cfg) => {
            let mut classes: Vec<i64> = all.iter().map(|d| d.class).collect();
            classes.sort_unstable();
            classes.dedup();
            let mut out = Vec::new();
            for c in classes {
                let of: Vec<&Detection> = all.iter().filter(|d| d.class == c).collect();
                let boxes: Vec<[f64; 4]> = of.iter().map(|d| d.bbox).collect();
                let scores: Vec<f64> = of.iter().map(|d| d.score).collect();
                for (i, s) in soft_nms(&boxes, &scores, cfg)? {
                    out.push(Detection { score: s, ..*of[i] });
                }
            }
            out
        }
    };
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(max);
    Ok(out)
}

/// Detections of a `[B, 3, H, W]` batch over an image pyramid, in the batch's coordinates.
pub fn pyramid_detect(
    det: &dyn Detector,
    images: &Tensor,
    cfg: &PyramidInferenceConfig,
) -> Result<Vec<ImageDetections>> {
    cfg.check()?;
    let s = images.size();
    if s.len() != 4 {
        return Err(PyramidError::input("images", "[B, C, H, W]", s));
    }
    let (h, w) = (s[2], s[3]);
    let mut per_image: Vec<Vec<Detection>> = vec![Vec::new(); s[0] as usize];
    for (k, &scale) in cfg.scales.iter().enumerate() {
        let (sh, sw) = (
            (h as f64 * scale).round() as i64,
            (w as f64 * scale).round() as i64,
        );
        if sh < MAX_STRIDE || sw < MAX_STRIDE {
            return Err(PyramidError::config(
                "image-pyramid scale",
                format!("a scale that keeps the image at least {MAX_STRIDE}x{MAX_STRIDE}"),
                format!("scale {scale} gives {sh}x{sw}"),
            ));
        }
        let x = if (sh, sw) == (h, w) {
            images.shallow_clone()
        } else {
            images
                .upsample_bilinear2d([sh, sw], false, None, None)
                .clamp(0.0, 1.0)
        };
        let dets = det.detect(&x)?;
        let (fx, fy) = (sw as f64 / w as f64, sh as f64 / h as f64);
        let range = cfg.ranges.get(k).copied().unwrap_or(ValidRange::ALL);
        for (i, d) in dets.iter().enumerate() {
            for mut d in to_detections(d)? {
                d.bbox = [
                    d.bbox[0] / fx,
                    d.bbox[1] / fy,
                    d.bbox[2] / fx,
                    d.bbox[3] / fy,
                ];
                if range.contains_box(d.bbox) {
                    if let Some(v) = per_image.get_mut(i) {
                        v.push(d);
                    }
                }
            }
        }
    }
    per_image
        .into_iter()
        .map(|v| {
            Ok(from_detections(
                &merge(v, &cfg.merge, cfg.max_detections)?,
                images.device(),
            ))
        })
        .collect()
}

/// Detections of one large `[3, H, W]` image from overlapping `tile x tile` windows (stepping
/// by `tile - overlap`), run `batch` tiles at a time, merged with class-wise NMS at `iou`.
pub fn tiled_detect(
    det: &dyn Detector,
    image: &Tensor,
    tile: u32,
    overlap: u32,
    batch: usize,
    iou: f64,
) -> Result<ImageDetections> {
    let s = image.size();
    if s.len() != 3 {
        return Err(PyramidError::input("image", "[C, H, W]", s));
    }
    let windows: Vec<Window> = tiles(s[2] as u32, s[1] as u32, tile, overlap)?;
    let mut per_tile = Vec::with_capacity(windows.len());
    for chunk in windows.chunks(batch.max(1)) {
        let crops: Vec<Tensor> = chunk
            .iter()
            .map(|w| {
                image
                    .narrow(1, w.y as i64, w.h as i64)
                    .narrow(2, w.x as i64, w.w as i64)
            })
            .collect();
        let dets = det.detect(&Tensor::stack(&crops, 0).to_kind(Kind::Float))?;
        for (w, d) in chunk.iter().zip(&dets) {
            per_tile.push((*w, to_detections(d)?));
        }
    }
    Ok(from_detections(
        &merge_tiles(&per_tile, iou)?,
        image.device(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Finds bright squares: one box per 8x8 block whose mean exceeds 0.5, score = mean.
    struct Blocks;

    impl Detector for Blocks {
        fn detect(&self, images: &Tensor) -> Result<Vec<ImageDetections>> {
            let s = images.size();
            let pooled = images.mean_dim(1, false, Kind::Float).avg_pool2d(
                [8, 8],
                [8, 8],
                [0, 0],
                false,
                true,
                None::<i64>,
            );
            let mut out = Vec::new();
            for b in 0..s[0] {
                let p = pooled.get(b);
                let idx = p.gt(0.5).nonzero();
                let n = idx.size()[0];
                let y = idx.select(1, 0).to_kind(Kind::Float) * 8.0;
                let x = idx.select(1, 1).to_kind(Kind::Float) * 8.0;
                let boxes = Tensor::stack(&[&x, &y, &(&x + 8.0), &(&y + 8.0)], 1);
                let scores = p
                    .view([-1])
                    .index_select(0, &(idx.select(1, 0) * p.size()[1] + idx.select(1, 1)));
                out.push(ImageDetections {
                    boxes,
                    scores,
                    classes: Tensor::zeros([n], (Kind::Int64, Device::Cpu)),
                });
            }
            Ok(out)
        }
    }

    #[test]
    fn pyramid_maps_boxes_back_filters_ranges_and_merges() {
        let img = Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let _ = img.narrow(2, 16, 8).narrow(3, 32, 8).fill_(1.0);
        // At scale 1 the block is found at (32, 16); at scale 2 the 16x16 square gives four
        // 8x8 blocks, i.e. four 4x4 boxes back in the original, all inside (32, 16, 40, 24).
        let cfg = PyramidInferenceConfig {
            scales: vec![1.0, 2.0],
            merge: Merge::Nms { iou: 0.3 },
            ..Default::default()
        };
        let d = pyramid_detect(&Blocks, &img, &cfg).unwrap()[0]
            .to_vecs()
            .unwrap();
        assert!(
            d.iter().any(|(b, _, _)| *b == [32.0, 16.0, 40.0, 24.0]),
            "{d:?}"
        );
        assert!(
            d.iter().all(|(b, _, _)| b[0] >= 32.0 && b[3] <= 24.0),
            "{d:?}"
        );
        // Valid ranges: scale 2 may only report boxes of 5 px or less (the 4 px ones).
        let ranged = PyramidInferenceConfig {
            ranges: vec![
                ValidRange::new(6.0, -1.0).unwrap(),
                ValidRange::new(-1.0, 5.0).unwrap(),
            ],
            ..cfg.clone()
        };
        let d = pyramid_detect(&Blocks, &img, &ranged).unwrap()[0]
            .to_vecs()
            .unwrap();
        assert_eq!(d.iter().filter(|(b, _, _)| b[2] - b[0] == 8.0).count(), 1);
        assert_eq!(d.iter().filter(|(b, _, _)| b[2] - b[0] == 4.0).count(), 4);
        let empty = PyramidInferenceConfig {
            scales: vec![],
            ..cfg.clone()
        };
        let msg = pyramid_detect(&Blocks, &img, &empty)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("non-empty list"), "{msg}");
        let tiny = PyramidInferenceConfig {
            scales: vec![0.25],
            ..cfg
        };
        assert!(pyramid_detect(&Blocks, &img, &tiny)
            .unwrap_err()
            .to_string()
            .contains("16x16"));
    }

    #[test]
    fn tiles_find_what_the_whole_image_has_once() {
        let img = Tensor::zeros([3, 96, 96], (Kind::Float, Device::Cpu));
        let _ = img.narrow(1, 40, 8).narrow(2, 40, 8).fill_(1.0);
        let whole = Blocks.detect(&img.unsqueeze(0)).unwrap()[0]
            .to_vecs()
            .unwrap();
        // 64 px tiles stepping by 32: the block lies in four tiles, found once after merging.
        let t = tiled_detect(&Blocks, &img, 64, 32, 3, 0.5)
            .unwrap()
            .to_vecs()
            .unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].0, whole[0].0);
        let soft = merge(
            vec![
                Detection {
                    bbox: [0.0, 0.0, 10.0, 10.0],
                    score: 0.9,
                    class: 0,
                },
                Detection {
                    bbox: [1.0, 0.0, 11.0, 10.0],
                    score: 0.8,
                    class: 0,
                },
                Detection {
                    bbox: [1.0, 0.0, 11.0, 10.0],
                    score: 0.7,
                    class: 1,
                },
            ],
            &Merge::SoftNms(SoftNmsConfig::default()),
            10,
        )
        .unwrap();
        assert_eq!(soft.len(), 3);
        assert!(soft[0].score == 0.9 && soft[1].score == 0.7 && soft[2].score < 0.8);
    }
}
