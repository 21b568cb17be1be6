//! From heatmaps to boxes: 3x3 max-pool peaks, top-K over all classes, sizes and offsets
//! gathered at the peaks, boxes scaled by the stride into input pixels, and back to the
//! original images through det-core's [`ImageMap`].
//!
//! Sources: CenterNet `src/lib/models/decode.py` (`_nms`, `_topk`, `ctdet_decode`),
//! `src/lib/utils/post_process.py` (`ctdet_post_process`: the inverse affine to the original
//! image), `src/lib/detectors/ctdet.py` (flip test: heatmap and size averaged with the mirrored
//! pass, the offset from the plain pass).

use det_core::data::{ImageDetections, ImageMap};
use tch::{Kind, Tensor};

use super::error::{CenterNetError, Result};
use super::loss::gather_at;

/// Decoding settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecodeConfig {
    /// Detections per image (K = 100).
    pub k: i64,
    /// Max-pool window of the peak test (3).
    pub kernel: i64,
    /// Output stride (4): boxes are multiplied by it.
    pub stride: i64,
    /// Detections scoring below this are dropped (0: keep all K, as the official evaluation).
    pub score_threshold: f64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            k: 100,
            kernel: 3,
            stride: 4,
            score_threshold: 0.0,
        }
    }
}

/// `_nms`: keeps the cells equal to their `kernel x kernel` max-pool, zeroes the rest.
pub fn peaks(heat: &Tensor, kernel: i64) -> Tensor {
    let pad = (kernel - 1) / 2;
    let hmax = heat.max_pool2d([kernel, kernel], [1, 1], [pad, pad], [1, 1], false);
    heat * hmax.eq_tensor(heat).to_kind(heat.kind())
}

/// The top-K of a batch: scores, flat cell indices, classes, rows and columns, each `[B, K]`.
#[derive(Debug)]
pub struct TopK {
    /// Peak scores.
    pub scores: Tensor,
    /// `y * W + x`.
    pub inds: Tensor,
    /// Class of each peak (int64).
    pub classes: Tensor,
    /// Row (float).
    pub ys: Tensor,
    /// Column (float).
    pub xs: Tensor,
}

/// `_topk`: the K best cells of each class, then the K best of those over all classes.
pub fn topk(scores: &Tensor, k: i64) -> Result<TopK> {
    let s = scores.size();
    if s.len() != 4 {
        return Err(CenterNetError::input("heatmap", "[B, C, H, W]", s));
    }
    if k < 1 {
        return Err(CenterNetError::config("top-K", ">= 1", k));
    }
    let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
    let k1 = k.min(h * w);
    let (cs, ci) = scores.reshape([b, c, h * w]).topk(k1, -1, true, true);
    let k2 = k.min(c * k1);
    let (score, ind) = cs.reshape([b, c * k1]).topk(k2, -1, true, true);
    let classes = ind.divide_scalar_mode(k1, "floor");
    let inds = ci.reshape([b, c * k1]).gather(1, &ind, false);
    let ys = inds.divide_scalar_mode(w, "floor").to_kind(Kind::Float);
    let xs = inds.remainder(w).to_kind(Kind::Float);
    Ok(TopK {
        scores: score,
        inds,
        classes,
        ys,
        xs,
    })
}

/// `ctdet_decode` then the stride: heatmap probabilities `[B, C, H, W]`, sizes `[B, 2, H, W]`
/// and offsets `[B, 2, H, W]` (or none) -> per image up to K boxes xyxy in input pixels, by
/// descending score.
pub fn decode(
    heat: &Tensor,
    wh: &Tensor,
    reg: Option<&Tensor>,
    cfg: &DecodeConfig,
) -> Result<Vec<ImageDetections>> {
    let hs = heat.size();
    if hs.len() != 4 {
        return Err(CenterNetError::input("heatmap", "[B, C, H, W]", hs));
    }
    let want = [hs[0], 2, hs[2], hs[3]];
    for (what, t) in [("size map", Some(wh)), ("offset map", reg)] {
        if let Some(t) = t {
            if t.size() != want {
                return Err(CenterNetError::input(
                    what,
                    format!("{want:?} like the heatmap's grid"),
                    t.size(),
                ));
            }
        }
    }
    if cfg.kernel < 1 || cfg.kernel % 2 == 0 {
        return Err(CenterNetError::config(
            "peak kernel",
            "an odd size >= 1",
            cfg.kernel,
        ));
    }
    let t = topk(&peaks(heat, cfg.kernel), cfg.k)?;
    let (xs, ys) = match reg {
        Some(r) => {
            let o = gather_at(r, &t.inds)?;
            (&t.xs + o.select(2, 0), &t.ys + o.select(2, 1))
        }
        None => (&t.xs + 0.5, &t.ys + 0.5),
    };
    let s = gather_at(wh, &t.inds)?;
    let (hw, hh) = (s.select(2, 0) / 2.0, s.select(2, 1) / 2.0);
    let boxes = Tensor::stack(&[&xs - &hw, &ys - &hh, &xs + &hw, &ys + &hh], 2) * cfg.stride as f64;
    let mut out = Vec::with_capacity(hs[0] as usize);
    for i in 0..hs[0] {
        let sc = t.scores.get(i);
        let keep = sc.ge(cfg.score_threshold).nonzero().view([-1]);
        out.push(ImageDetections {
            boxes: boxes.get(i).index_select(0, &keep).to_kind(Kind::Float),
            scores: sc.index_select(0, &keep).to_kind(Kind::Float),
            classes: t.classes.get(i).index_select(0, &keep),
        });
    }
    Ok(out)
}

/// The flip test's merge: `(a + mirror(b)) / 2` of a plain and a mirrored pass's map.
pub fn merge_flipped(plain: &Tensor, mirrored: &Tensor) -> Tensor {
    (plain + mirrored.flip([3])) / 2.0
}

/// Detections in input pixels -> the original images' pixels through each image's map
/// (the inverse of the letterbox / resize / flip; clipped to the original image).
pub fn to_original(dets: &[ImageDetections], maps: &[ImageMap]) -> Result<Vec<ImageDetections>> {
    if dets.len() != maps.len() {
        return Err(CenterNetError::config(
            "image maps",
            format!("one per image ({} images)", dets.len()),
            maps.len(),
        ));
    }
    dets.iter()
        .zip(maps)
        .map(|(d, m)| {
            let b: Vec<f32> =
                Vec::try_from(d.boxes.to_device(tch::Device::Cpu).contiguous().view([-1]))?;
            let mapped: Vec<f32> = b
                .chunks(4)
                .flat_map(|c| m.inverse([c[0] as f64, c[1] as f64, c[2] as f64, c[3] as f64]))
                .map(|v| v as f32)
                .collect();
            Ok(ImageDetections {
                boxes: Tensor::from_slice(&mapped)
                    .view([-1, 4])
                    .to_device(d.boxes.device()),
                scores: d.scores.shallow_clone(),
                classes: d.classes.shallow_clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn planted_peaks_come_back_with_class_size_and_offset() {
        let (c, h, w) = (3, 16, 20);
        let heat = Tensor::zeros([1, c, h, w], (Kind::Float, Device::Cpu));
        let wh = Tensor::zeros([1, 2, h, w], (Kind::Float, Device::Cpu));
        let reg = Tensor::zeros([1, 2, h, w], (Kind::Float, Device::Cpu));
        // (class, y, x, score, w, h, dx, dy)
        let planted = [
            (0i64, 3i64, 4i64, 0.9f64, 6.0, 4.0, 0.25, 0.5),
            (2, 10, 15, 0.7, 3.0, 8.0, 0.0, 0.75),
            (1, 12, 2, 0.5, 2.0, 2.0, 0.5, 0.0),
        ];
        for &(k, y, x, s, bw, bh, dx, dy) in &planted {
            let _ = heat.get(0).get(k).get(y).get(x).fill_(s);
            // A lower neighbour: suppressed by the 3x3 peak test.
            let _ = heat.get(0).get(k).get(y).get(x - 1).fill_(s * 0.9);
            let _ = wh.get(0).get(0).get(y).get(x).fill_(bw);
            let _ = wh.get(0).get(1).get(y).get(x).fill_(bh);
            let _ = reg.get(0).get(0).get(y).get(x).fill_(dx);
            let _ = reg.get(0).get(1).get(y).get(x).fill_(dy);
        }
        let cfg = DecodeConfig {
            k: 10,
            score_threshold: 0.1,
            ..Default::default()
        };
        let d = decode(&heat, &wh, Some(&reg), &cfg).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].scores.size(), [3]);
        for (i, &(k, y, x, s, bw, bh, dx, dy)) in planted.iter().enumerate() {
            assert!((d[0].scores.double_value(&[i as i64]) - s).abs() < 1e-6);
            assert_eq!(d[0].classes.int64_value(&[i as i64]), k);
            let (cx, cy) = (x as f64 + dx, y as f64 + dy);
            let want = [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0];
            for (j, v) in want.iter().enumerate() {
                let got = d[0].boxes.double_value(&[i as i64, j as i64]);
                assert!(
                    (got - 4.0 * v).abs() < 1e-5,
                    "{i} {j}: {got} vs {}",
                    4.0 * v
                );
            }
        }
        // K larger than the grid: clamped, no error.
        let small = Tensor::rand([2, 1, 2, 2], (Kind::Float, Device::Cpu));
        let z = Tensor::zeros([2, 2, 2, 2], (Kind::Float, Device::Cpu));
        let d = decode(&small, &z, None, &DecodeConfig::default()).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d[0].scores.size()[0] >= 1 && d[0].scores.size()[0] <= 4);
        // A size map of the wrong grid is an error.
        let bad = Tensor::zeros([2, 2, 3, 2], (Kind::Float, Device::Cpu));
        assert!(decode(&small, &bad, None, &DecodeConfig::default()).is_err());
    }

    #[test]
    fn back_to_the_original_image() {
        let m = ImageMap::identity(200, 100).then((0.5, 0.0), (0.5, 14.0), 100, 78);
        let d = ImageDetections {
            boxes: Tensor::from_slice(&[10.0f32, 24.0, 30.0, 44.0]).view([1, 4]),
            scores: Tensor::from_slice(&[0.5f32]),
            classes: Tensor::from_slice(&[1i64]),
        };
        let o = to_original(&[d], &[m]).unwrap();
        let b: Vec<f32> = Vec::try_from(o[0].boxes.view([-1])).unwrap();
        assert_eq!(b, vec![20.0, 20.0, 60.0, 60.0]);
    }
}
