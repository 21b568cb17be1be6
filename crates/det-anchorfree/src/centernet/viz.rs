//! Pictures: the predicted heatmap next to its target (both over the image), and the
//! detections over the image with the ground truth.

use std::path::Path;

use det_core::data::ImageDetections;
use det_core::draw::{draw_boxes, Annotated};
use image::{Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

use super::error::{CenterNetError, Result};

/// A `[3, H, W]` float image in `[0, 1]` (or `[1, H, W]` grey) as RGB bytes.
pub fn to_rgb(image: &Tensor) -> Result<RgbImage> {
    let s = image.size();
    if s.len() != 3 || (s[0] != 3 && s[0] != 1) {
        return Err(CenterNetError::input("image", "[3, H, W] or [1, H, W]", s));
    }
    let (h, w) = (s[1] as u32, s[2] as u32);
    let x = image
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .expand([3, s[1], s[2]], false)
        .permute([1, 2, 0])
        .clamp(0.0, 1.0)
        .multiply_scalar(255.0)
        .round()
        .to_kind(Kind::Uint8)
        .contiguous()
        .view([-1]);
    let bytes: Vec<u8> = Vec::try_from(x)?;
    RgbImage::from_raw(w, h, bytes)
        .ok_or_else(|| CenterNetError::input("image", "a buffer of H * W * 3 bytes", s))
}

/// The image with a `[C, h, w]` heatmap (max over classes, nearest-upsampled) blended in red.
fn overlay(img: &RgbImage, heat: &Tensor) -> Result<RgbImage> {
    let s = heat.size();
    if s.len() != 3 {
        return Err(CenterNetError::input("heatmap", "[C, H, W]", s));
    }
    let m = heat
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .amax([0], false);
    let (hh, hw) = (s[1] as u32, s[2] as u32);
    let vals: Vec<f32> = Vec::try_from(m.contiguous().view([-1]))?;
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        let (cx, cy) = (
            (x * hw / w.max(1)).min(hw - 1),
            (y * hh / h.max(1)).min(hh - 1),
        );
        let v = vals[(cy * hw + cx) as usize].clamp(0.0, 1.0);
        let g = |c: u8| (c as f32 * (1.0 - 0.8 * v)) as u8;
        *p = Rgb([
            (p[0] as f32 * (1.0 - v) + 255.0 * v) as u8,
            g(p[1]),
            g(p[2]),
        ]);
    }
    Ok(out)
}

/// Writes `[image + predicted heatmap | image + target heatmap]` side by side: `image`
/// `[3, H, W]`, `pred` and `target` `[C, H/4, W/4]` in `[0, 1]`; inputs at most 128 px wide are
/// enlarged by a whole factor to about 256 px.
pub fn heatmap_png(image: &Tensor, pred: &Tensor, target: &Tensor, path: &Path) -> Result<()> {
    if pred.size() != target.size() {
        return Err(CenterNetError::input(
            "target heatmap",
            format!("the predicted heatmap's shape {:?}", pred.size()),
            target.size(),
        ));
    }
    let img = to_rgb(image)?;
    let (a, b) = (overlay(&img, pred)?, overlay(&img, target)?);
    // Small inputs (MNIST-det's 96-128 px) are enlarged to about 256 px, nearest neighbour.
    let k = (256 / img.width().max(1)).max(1);
    let (w, h) = (img.width() * k, img.height() * k);
    let up = |x: &RgbImage| image::imageops::resize(x, w, h, image::imageops::FilterType::Nearest);
    let (a, b) = (up(&a), up(&b));
    let gap = 4;
    let mut out = RgbImage::from_pixel(2 * w + gap, h, Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, &a, 0, 0);
    image::imageops::replace(&mut out, &b, (w + gap) as i64, 0);
    write_png(&out, path)
}

/// Writes the detections scoring at least `min_score` (coloured by class, with scores) and the
/// ground-truth boxes (white, no caption) over `image` `[3, H, W]`.
pub fn detection_png(
    image: &Tensor,
    dets: &ImageDetections,
    truth: &[[f64; 4]],
    labels: &[String],
    min_score: f64,
    path: &Path,
) -> Result<()> {
    let img = to_rgb(image)?;
    let n = dets.scores.size()[0];
    let mut boxes: Vec<Annotated> = truth
        .iter()
        .map(|b| Annotated {
            bbox: *b,
            label: String::new(),
            score: None,
            color: 5,
        })
        .collect();
    for i in 0..n {
        let s = dets.scores.double_value(&[i]);
        if s < min_score {
            continue;
        }
        let c = dets.classes.int64_value(&[i]);
        let b = [0, 1, 2, 3].map(|j| dets.boxes.double_value(&[i, j]));
        boxes.push(Annotated {
            bbox: b,
            label: labels
                .get(c as usize)
                .cloned()
                .unwrap_or_else(|| c.to_string()),
            score: Some(s),
            color: c as usize % 5,
        });
    }
    write_png(&draw_boxes(&img, &boxes)?, path)
}

fn write_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    let io = |e: String| CenterNetError::Io {
        path: path.to_path_buf(),
        message: e,
    };
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| io(e.to_string()))?;
    cvlab_util::write_atomic(path, bytes.get_ref()).map_err(|e| io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pngs_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let img = Tensor::rand([3, 32, 40], (Kind::Float, Device::Cpu));
        let hm = Tensor::rand([2, 8, 10], (Kind::Float, Device::Cpu));
        let p = dir.path().join("hm.png");
        heatmap_png(&img, &hm, &hm.zeros_like(), &p).unwrap();
        let r = image::open(&p).unwrap();
        // 40 px wide: enlarged 6x.
        assert_eq!((r.width(), r.height()), (2 * 240 + 4, 192));
        let d = ImageDetections {
            boxes: Tensor::from_slice(&[2.0f32, 2.0, 20.0, 20.0]).view([1, 4]),
            scores: Tensor::from_slice(&[0.9f32]),
            classes: Tensor::from_slice(&[1i64]),
        };
        let p = dir.path().join("det.png");
        detection_png(
            &img,
            &d,
            &[[1.0, 1.0, 10.0, 10.0]],
            &["a".into(), "b".into()],
            0.3,
            &p,
        )
        .unwrap();
        assert!(p.is_file());
        assert!(heatmap_png(
            &img,
            &hm,
            &Tensor::zeros([1, 8, 10], (Kind::Float, Device::Cpu)),
            &p
        )
        .is_err());
    }
}
