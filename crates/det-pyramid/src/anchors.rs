//! Anchors per pyramid level, as torchvision `models/detection/anchor_utils.py`
//! (`AnchorGenerator`): for each level, `sizes x ratios` cell anchors centred on 0 (`h/w =
//! ratio`, area `size^2`, ratios outer and sizes inner, rounded to whole pixels), shifted to
//! every cell's top-left corner `(x * stride_w, y * stride_h)` with `stride = image // map`
//! (integer division), rows (y) outer, columns (x), then anchors inner. RetinaNet (Lin et al.
//! 2017b, Sec. 4): sizes 32 .. 512 on P3-P7, three scales `2^{0, 1/3, 2/3}`, ratios 1:2, 1:1, 2:1.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{PyramidError, Result};

/// Anchor sizes and ratios per level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorConfig {
    /// Per level, the anchor sizes (sqrt of the area) in input pixels.
    pub sizes: Vec<Vec<f64>>,
    /// Per level, the aspect ratios h / w.
    pub ratios: Vec<Vec<f64>>,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self::retinanet(&[32.0, 64.0, 128.0, 256.0, 512.0])
    }
}

impl AnchorConfig {
    /// RetinaNet's anchors on levels with base sizes `base`: each base times `2^{0,1/3,2/3}`
    /// (truncated to whole pixels, as torchvision's `retinanet_resnet50_fpn`), ratios 0.5, 1, 2.
    /// Smaller bases match anchors to small objects.
    pub fn retinanet(base: &[f64]) -> Self {
        let sizes = base
            .iter()
            .map(|&x| {
                [0.0, 1.0 / 3.0, 2.0 / 3.0]
                    .iter()
                    .map(|e| (x * 2f64.powf(*e)).trunc())
                    .collect()
            })
            .collect();
        Self {
            sizes,
            ratios: vec![vec![0.5, 1.0, 2.0]; base.len()],
        }
    }

    /// Anchors per location on each level.
    pub fn per_location(&self) -> Vec<i64> {
        self.sizes
            .iter()
            .zip(&self.ratios)
            .map(|(s, r)| (s.len() * r.len()) as i64)
            .collect()
    }

    fn check(&self) -> Result<()> {
        let bad = self.sizes.is_empty()
            || self.sizes.len() != self.ratios.len()
            || self
                .sizes
                .iter()
                .chain(&self.ratios)
                .any(|v| v.is_empty() || v.iter().any(|&x| !(x.is_finite() && x > 0.0)));
        if bad {
            return Err(PyramidError::config(
                "AnchorConfig",
                "as many non-empty lists of positive sizes as of ratios",
                format!("sizes {:?}, ratios {:?}", self.sizes, self.ratios),
            ));
        }
        Ok(())
    }
}

/// The `[A, 4]` float32 cell anchors of one level (torchvision `generate_anchors`).
pub fn cell_anchors(sizes: &[f64], ratios: &[f64], device: Device) -> Tensor {
    let scales = Tensor::from_slice(sizes)
        .to_kind(Kind::Float)
        .to_device(device);
    let ar = Tensor::from_slice(ratios)
        .to_kind(Kind::Float)
        .to_device(device);
    let h_ratios = ar.sqrt();
    let w_ratios = h_ratios.ones_like() / &h_ratios;
    let ws = (w_ratios.unsqueeze(1) * scales.unsqueeze(0)).view([-1]);
    let hs = (h_ratios.unsqueeze(1) * scales.unsqueeze(0)).view([-1]);
    (Tensor::stack(&[-&ws, -&hs, ws, hs], 1) / 2.0).round()
}

/// Anchors of every level for an input of `image = (h, w)` and maps of `maps[l] = (h_l, w_l)`:
/// one `[h_l * w_l * A_l, 4]` xyxy tensor per level.
pub fn grid_anchors(
    cfg: &AnchorConfig,
    image: (i64, i64),
    maps: &[(i64, i64)],
    device: Device,
) -> Result<Vec<Tensor>> {
    cfg.check()?;
    if maps.len() != cfg.sizes.len() {
        return Err(PyramidError::config(
            "anchor levels",
            format!("{} feature maps (one per anchor level)", cfg.sizes.len()),
            maps.len(),
        ));
    }
    let mut out = Vec::with_capacity(maps.len());
    for ((&(gh, gw), sizes), ratios) in maps.iter().zip(&cfg.sizes).zip(&cfg.ratios) {
        if gh < 1 || gw < 1 || gh > image.0 || gw > image.1 {
            return Err(PyramidError::config(
                "feature map size",
                format!("between 1x1 and the image's {}x{}", image.0, image.1),
                format!("{gh}x{gw}"),
            ));
        }
        let (sh, sw) = (image.0 / gh, image.1 / gw);
        let base = cell_anchors(sizes, ratios, device);
        let sx = Tensor::arange(gw, (Kind::Int, device)) * sw;
        let sy = Tensor::arange(gh, (Kind::Int, device)) * sh;
        let grid = Tensor::meshgrid_indexing(&[sy, sx], "ij");
        let (y, x) = (
            grid[0].reshape([-1]).to_kind(Kind::Float),
            grid[1].reshape([-1]).to_kind(Kind::Float),
        );
        let shifts = Tensor::stack(&[&x, &y, &x, &y], 1);
        out.push((shifts.view([-1, 1, 4]) + base.view([1, -1, 4])).reshape([-1, 4]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_anchors_have_the_asked_area_and_ratio() {
        let a = cell_anchors(&[32.0], &[0.5, 1.0, 2.0], Device::Cpu);
        let v = Vec::<f32>::try_from(a.view([-1])).unwrap();
        // ratio 0.5: w = 32 / sqrt(0.5) = 45.25 -> [-23, -11, 23, 11] after rounding halves.
        assert_eq!(&v[0..4], &[-23.0, -11.0, 23.0, 11.0]);
        assert_eq!(&v[4..8], &[-16.0, -16.0, 16.0, 16.0]);
        assert_eq!(&v[8..12], &[-11.0, -23.0, 11.0, 23.0]);
        let cfg = AnchorConfig::retinanet(&[32.0, 64.0]);
        assert_eq!(cfg.sizes[0], vec![32.0, 40.0, 50.0]);
        let g = grid_anchors(&cfg, (64, 64), &[(8, 8), (4, 4)], Device::Cpu).unwrap();
        assert_eq!(g[0].size(), [8 * 8 * 9, 4]);
        assert_eq!(g[1].size(), [4 * 4 * 9, 4]);
        // The second location of level 0 is shifted by the stride (8) in x.
        let d = (g[0].narrow(0, 9, 9) - g[0].narrow(0, 0, 9))
            .abs()
            .sum(Kind::Float);
        assert!((d.double_value(&[]) - 9.0 * 2.0 * 8.0).abs() < 1e-6);
        assert!(grid_anchors(&cfg, (64, 64), &[(8, 8)], Device::Cpu).is_err());
        assert!(grid_anchors(&cfg, (64, 64), &[(0, 8), (4, 4)], Device::Cpu).is_err());
        let bad = AnchorConfig {
            sizes: vec![vec![]],
            ratios: vec![vec![1.0]],
        };
        assert!(grid_anchors(&bad, (64, 64), &[(8, 8)], Device::Cpu).is_err());
    }
}
