//! Box-aware image transforms (boxes are `xyxy` in continuous pixel coordinates, the image
//! spans `[0, W] x [0, H]`): resize, letterbox with pad value 114 (YOLO's grey) and the mapping
//! back to the original image, horizontal flip, random crop that clips boxes and keeps those
//! with enough of their area left, and tiling of large images into overlapping tiles with the
//! merge of per-tile detections back to the whole image (shift + class-aware NMS, as
//! deepforest's `predict_tile`).

use image::{imageops, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use crate::boxes::area;
use crate::error::{DetError, Result};
use crate::nms::batched_nms;
use crate::synth::SplitMix64;

/// YOLO's letterbox padding grey.
pub const LETTERBOX_PAD: u8 = 114;

fn check_size(name: &'static str, w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(DetError::arg(
            name,
            "a non-zero width and height",
            format!("{w}x{h}"),
        ));
    }
    Ok(())
}

/// Resizes the image to `w x h` (bilinear) and scales the boxes.
pub fn resize(
    img: &RgbImage,
    boxes: &[[f64; 4]],
    w: u32,
    h: u32,
) -> Result<(RgbImage, Vec<[f64; 4]>)> {
    check_size("resize target", w, h)?;
    check_size("image", img.width(), img.height())?;
    let sx = w as f64 / img.width() as f64;
    let sy = h as f64 / img.height() as f64;
    let out = imageops::resize(img, w, h, imageops::FilterType::Triangle);
    Ok((
        out,
        boxes
            .iter()
            .map(|b| [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy])
            .collect(),
    ))
}

/// How a letterboxed image relates to the original: `new = old * scale + pad`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LetterboxMap {
    /// Resize factor, the same on both axes.
    pub scale: f64,
    /// Pixels of padding on the left.
    pub pad_x: f64,
    /// Pixels of padding on the top.
    pub pad_y: f64,
    /// Original image size, for clipping on the way back.
    pub orig_w: u32,
    /// Original image height, for clipping on the way back.
    pub orig_h: u32,
}

impl LetterboxMap {
    /// Original -> letterboxed coordinates.
    pub fn forward(&self, b: [f64; 4]) -> [f64; 4] {
        [
            b[0] * self.scale + self.pad_x,
            b[1] * self.scale + self.pad_y,
            b[2] * self.scale + self.pad_x,
            b[3] * self.scale + self.pad_y,
        ]
    }
    /// Letterboxed -> original coordinates, clipped to the original image.
    pub fn inverse(&self, b: [f64; 4]) -> [f64; 4] {
        let (w, h) = (self.orig_w as f64, self.orig_h as f64);
        [
            ((b[0] - self.pad_x) / self.scale).clamp(0.0, w),
            ((b[1] - self.pad_y) / self.scale).clamp(0.0, h),
            ((b[2] - self.pad_x) / self.scale).clamp(0.0, w),
            ((b[3] - self.pad_y) / self.scale).clamp(0.0, h),
        ]
    }
}

/// Scales the image to fit `w x h` keeping its aspect ratio, centres it and pads with 114.
pub fn letterbox(img: &RgbImage, w: u32, h: u32) -> Result<(RgbImage, LetterboxMap)> {
    check_size("letterbox target", w, h)?;
    check_size("image", img.width(), img.height())?;
    let (ow, oh) = (img.width(), img.height());
    let scale = (w as f64 / ow as f64).min(h as f64 / oh as f64);
    let nw = ((ow as f64 * scale).round() as u32).clamp(1, w);
    let nh = ((oh as f64 * scale).round() as u32).clamp(1, h);
    let resized = imageops::resize(img, nw, nh, imageops::FilterType::Triangle);
    let (px, py) = ((w - nw) / 2, (h - nh) / 2);
    let mut out = RgbImage::from_pixel(w, h, Rgb([LETTERBOX_PAD; 3]));
    imageops::replace(&mut out, &resized, px as i64, py as i64);
    // The actual per-axis scale of the resized content (rounding), as the mapping uses one.
    let map = LetterboxMap {
        scale,
        pad_x: px as f64,
        pad_y: py as f64,
        orig_w: ow,
        orig_h: oh,
    };
    Ok((out, map))
}

/// Mirrors the image left-right and the boxes with it.
pub fn hflip(img: &RgbImage, boxes: &[[f64; 4]]) -> (RgbImage, Vec<[f64; 4]>) {
    let w = img.width() as f64;
    (
        imageops::flip_horizontal(img),
        boxes
            .iter()
            .map(|b| [w - b[2], b[1], w - b[0], b[3]])
            .collect(),
    )
}

/// A crop window in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// Boxes shifted into `win`, clipped to it, and kept when at least `min_visible` of their area
/// survives; returns `(index into boxes, clipped box)`.
pub fn clip_to_window(boxes: &[[f64; 4]], win: Window, min_visible: f64) -> Vec<(usize, [f64; 4])> {
    let (x0, y0) = (win.x as f64, win.y as f64);
    let (x1, y1) = (x0 + win.w as f64, y0 + win.h as f64);
    boxes
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let c = [b[0].max(x0), b[1].max(y0), b[2].min(x1), b[3].min(y1)];
            if c[2] <= c[0] || c[3] <= c[1] {
                return None;
            }
            let full = area(b);
            let kept = area(&c);
            if full > 0.0 && kept / full < min_visible {
                return None;
            }
            Some((i, [c[0] - x0, c[1] - y0, c[2] - x0, c[3] - y0]))
        })
        .collect()
}

/// Result of [`random_crop`].
#[derive(Debug, Clone, PartialEq)]
pub struct Crop {
    /// The cropped pixels.
    pub image: RgbImage,
    /// `(index into the input boxes, box in crop coordinates)`.
    pub boxes: Vec<(usize, [f64; 4])>,
    /// Where the crop lies in the input.
    pub window: Window,
}

/// Crops a random `w x h` window (uniform position) and clips the boxes to it.
pub fn random_crop(
    img: &RgbImage,
    boxes: &[[f64; 4]],
    w: u32,
    h: u32,
    min_visible: f64,
    rng: &mut SplitMix64,
) -> Result<Crop> {
    check_size("crop", w, h)?;
    if w > img.width() || h > img.height() {
        return Err(DetError::arg(
            "crop",
            format!("at most the image size {}x{}", img.width(), img.height()),
            format!("{w}x{h}"),
        ));
    }
    let x = rng.below((img.width() - w + 1) as u64) as u32;
    let y = rng.below((img.height() - h + 1) as u64) as u32;
    let win = Window { x, y, w, h };
    let crop = imageops::crop_imm(img, x, y, w, h).to_image();
    Ok(Crop {
        image: crop,
        boxes: clip_to_window(boxes, win, min_visible),
        window: win,
    })
}

/// Overlapping tiles covering a `width x height` image: tiles of `tile` px stepping by
/// `tile - overlap`, the last row/column pushed back inside the image.
pub fn tiles(width: u32, height: u32, tile: u32, overlap: u32) -> Result<Vec<Window>> {
    check_size("image", width, height)?;
    if tile == 0 || overlap >= tile {
        return Err(DetError::arg(
            "tile/overlap",
            "tile > 0 and overlap < tile",
            format!("tile {tile}, overlap {overlap}"),
        ));
    }
    let starts = |len: u32| -> Vec<u32> {
        let t = tile.min(len);
        let mut v = Vec::new();
        let mut s = 0;
        loop {
            if s + t >= len {
                v.push(len - t);
                break;
            }
            v.push(s);
            s += tile - overlap;
        }
        v.dedup();
        v
    };
    let (xs, ys) = (starts(width), starts(height));
    let (tw, th) = (tile.min(width), tile.min(height));
    Ok(ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| Window { x, y, w: tw, h: th }))
        .collect())
}

/// A detection in some frame: `xyxy` box, score, class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `xyxy` box in pixels.
    pub bbox: [f64; 4],
    /// Confidence.
    pub score: f64,
    /// Class index.
    pub class: i64,
}

/// Moves per-tile detections to whole-image coordinates and removes the duplicates that
/// overlapping tiles produce with class-aware NMS at `iou_threshold`.
pub fn merge_tiles(
    per_tile: &[(Window, Vec<Detection>)],
    iou_threshold: f64,
) -> Result<Vec<Detection>> {
    let all: Vec<Detection> = per_tile
        .iter()
        .flat_map(|(w, ds)| {
            let (dx, dy) = (w.x as f64, w.y as f64);
            ds.iter().map(move |d| Detection {
                bbox: [
                    d.bbox[0] + dx,
                    d.bbox[1] + dy,
                    d.bbox[2] + dx,
                    d.bbox[3] + dy,
                ],
                ..*d
            })
        })
        .collect();
    let boxes: Vec<[f64; 4]> = all.iter().map(|d| d.bbox).collect();
    let scores: Vec<f64> = all.iter().map(|d| d.score).collect();
    let classes: Vec<i64> = all.iter().map(|d| d.class).collect();
    Ok(batched_nms(&boxes, &scores, &classes, iou_threshold)?
        .into_iter()
        .map(|i| all[i])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn letterbox_round_trips_boxes() {
        let (out, map) = letterbox(&img(200, 100), 64, 64).unwrap();
        assert_eq!(out.dimensions(), (64, 64));
        assert_eq!(map.scale, 0.32);
        assert_eq!((map.pad_x, map.pad_y), (0.0, 16.0));
        assert_eq!(out.get_pixel(10, 2), &Rgb([114, 114, 114]));
        let b = [20.0, 10.0, 150.0, 90.0];
        let back = map.inverse(map.forward(b));
        test_support::assert_all_close(&back, &b, test_support::Tol::abs(1e-9));
        assert_eq!(map.inverse([-5.0, 0.0, 70.0, 70.0])[0], 0.0);
    }

    #[test]
    fn flip_and_resize_move_boxes() {
        let (f, b) = hflip(&img(100, 50), &[[10.0, 5.0, 30.0, 20.0]]);
        assert_eq!(b, vec![[70.0, 5.0, 90.0, 20.0]]);
        assert_eq!(f.get_pixel(99, 0), &Rgb([0, 0, 7]));
        let (r, b) = resize(&img(100, 50), &[[10.0, 5.0, 30.0, 20.0]], 50, 100).unwrap();
        assert_eq!(r.dimensions(), (50, 100));
        assert_eq!(b, vec![[5.0, 10.0, 15.0, 40.0]]);
        assert!(resize(&img(10, 10), &[], 0, 4).is_err());
    }

    #[test]
    fn crop_clips_and_drops_mostly_hidden_boxes() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [8.0, 8.0, 28.0, 28.0],
            [40.0, 40.0, 50.0, 50.0],
        ];
        let win = Window {
            x: 5,
            y: 5,
            w: 20,
            h: 20,
        };
        let kept = clip_to_window(&boxes, win, 0.2);
        assert_eq!(
            kept,
            vec![(0, [0.0, 0.0, 5.0, 5.0]), (1, [3.0, 3.0, 20.0, 20.0])]
        );
        assert_eq!(clip_to_window(&boxes, win, 0.5).len(), 1);
        let mut rng = SplitMix64::new(3);
        let c = random_crop(&img(64, 48), &boxes, 32, 32, 0.5, &mut rng).unwrap();
        assert_eq!(c.image.dimensions(), (32, 32));
        assert!(c.window.x <= 32 && c.window.y <= 16);
        assert_eq!(
            c.image.get_pixel(0, 0),
            &Rgb([c.window.x as u8, c.window.y as u8, 7])
        );
        assert!(random_crop(&img(8, 8), &boxes, 32, 32, 0.5, &mut rng).is_err());
    }

    #[test]
    fn tiles_cover_and_merge_removes_duplicates() {
        let t = tiles(1000, 600, 400, 80).unwrap();
        let xs: Vec<u32> = t.iter().filter(|w| w.y == 0).map(|w| w.x).collect();
        assert_eq!(xs, vec![0, 320, 600]);
        assert!(t.iter().all(|w| w.x + w.w <= 1000 && w.y + w.h <= 600));
        assert!(tiles(100, 100, 50, 50).is_err());
        // the same object seen by two overlapping tiles
        let d = |x: f64, s: f64| Detection {
            bbox: [x, 10.0, x + 20.0, 30.0],
            score: s,
            class: 0,
        };
        let merged = merge_tiles(
            &[
                (t[0], vec![d(330.0, 0.9)]),
                (t[1], vec![d(10.0, 0.8), d(200.0, 0.7)]),
            ],
            0.5,
        )
        .unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].bbox, [330.0, 10.0, 350.0, 30.0]);
        assert_eq!(merged[1].bbox[0], 520.0);
    }
}
