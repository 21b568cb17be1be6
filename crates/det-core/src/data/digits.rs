//! The MNIST digits as bytes for MNIST-det: each digit's ink box in its 28x28 field (the
//! non-zero pixels), resampling of a window of a digit with `image`'s triangle filter (its support widens
//! when shrinking, so small digits are anti-aliased as PIL's bilinear resize does), and the ink
//! extent of a rendered patch.

use image::{imageops, GrayImage, Luma};
use tch::{Kind, Tensor};

use super::torch_err;
use crate::error::{DetError, Result};

const SIDE: usize = 28;

/// The digits of one split as bytes, with each digit's ink box (pixels > 0).
pub(crate) struct DigitBank {
    pixels: Vec<u8>,
    pub(crate) labels: Vec<i64>,
    pub(crate) ink: Vec<[u32; 4]>,
}

impl DigitBank {
    pub(crate) fn from_tensors(images: &Tensor, labels: &Tensor) -> Result<Self> {
        let s = images.size();
        let n = match s.as_slice() {
            [n, 1, 28, 28] | [n, 28, 28] => *n,
            _ => {
                return Err(DetError::arg(
                    "MNIST images",
                    "a [N, 1, 28, 28] or [N, 28, 28] tensor",
                    format!("{s:?}"),
                ))
            }
        };
        if labels.size() != [n] {
            return Err(DetError::arg(
                "MNIST labels",
                format!("a [{n}] tensor"),
                format!("{:?}", labels.size()),
            ));
        }
        if n == 0 {
            return Err(DetError::arg("MNIST images", "at least one digit", 0));
        }
        let pixels = images
            .f_to_device(tch::Device::Cpu)
            .and_then(|t| t.f_to_kind(Kind::Float))
            .and_then(|t| (t * 255.0).f_round())
            .and_then(|t| t.f_clamp(0.0, 255.0))
            .and_then(|t| t.f_to_kind(Kind::Uint8))
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_view([-1]))
            .and_then(|t| Vec::<u8>::try_from(&t))
            .map_err(torch_err("reading MNIST images"))?;
        let labels = labels
            .f_to_device(tch::Device::Cpu)
            .and_then(|t| t.f_to_kind(Kind::Int64))
            .and_then(|t| Vec::<i64>::try_from(&t))
            .map_err(torch_err("reading MNIST labels"))?;
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| !(0..10).contains(*l))
        {
            return Err(DetError::arg(
                "MNIST label",
                "a digit 0..=9",
                format!("{l} (digit {i})"),
            ));
        }
        let ink = pixels
            .chunks_exact(SIDE * SIDE)
            .map(|d| extent(d, SIDE as u32, SIDE as u32, 1).unwrap_or([0, 0, 28, 28]))
            .collect();
        Ok(DigitBank {
            pixels,
            labels,
            ink,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    /// Window `[x, y, w, h]` of digit `i` resampled to `size`.
    pub(crate) fn render(&self, i: usize, win: [u32; 4], size: (u32, u32)) -> GrayImage {
        let d = &self.pixels[i * SIDE * SIDE..(i + 1) * SIDE * SIDE];
        let src = GrayImage::from_fn(win[2], win[3], |x, y| {
            Luma([d[(win[1] + y) as usize * SIDE + (win[0] + x) as usize]])
        });
        imageops::resize(&src, size.0, size.1, imageops::FilterType::Triangle)
    }
}

/// `[x0, y0, w, h]` of the pixels `>= level` of a row-major `w x h` buffer, `None` when none.
pub(crate) fn extent(px: &[u8], w: u32, h: u32, level: u8) -> Option<[u32; 4]> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if px[(y * w + x) as usize] >= level {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    (x0 != u32::MAX).then(|| [x0, y0, x1 - x0 + 1, y1 - y0 + 1])
}

/// The 8-bit level of `threshold`: a pixel `p` is ink when `p / 255 >= threshold`.
pub(crate) fn ink_level(threshold: f64) -> u8 {
    (threshold * 255.0).ceil().clamp(1.0, 255.0) as u8
}
