//! CenterNet training targets at the output stride: a Gaussian heatmap per class, and per
//! object slot its size, sub-pixel offset, flat index and mask.
//!
//! Source: CenterNet `src/lib/datasets/sample/ctdet.py` (`__getitem__`). det-core's loader has
//! already applied the augmentation (its [`det_core::data::ImageMap`]), so the official
//! `trans_output` affine is the division by the stride here. As in the official code:
//! - boxes are mapped to the output grid and clipped to `[0, W_out - 1] x [0, H_out - 1]`
//!   (a box partly outside the image keeps its inside part, one wholly outside becomes empty);
//! - a box whose clipped width or height is not positive (zero-size, or outside) is skipped:
//!   its slot keeps mask 0;
//! - slot `k` is the image's `k`-th box; boxes beyond `max_objects` are dropped;
//! - `wh = (w, h)` in output pixels, `reg = c - floor(c)`, `ind = cy_int * W_out + cx_int`.
//!
//! Unlike the official code, a class id outside the head is an error (the official code
//! indexes past the heatmap), and non-finite coordinates are an error.

use det_core::data::DetBatch;
use tch::{Device, Kind, Tensor};

use super::error::{CenterNetError, Result};
use super::radius::{draw_umich_gaussian, integer_radius, RadiusRule};

/// How targets are made.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetConfig {
    /// Heatmap channels (object classes).
    pub num_classes: i64,
    /// Output stride (4: the official `down_ratio`).
    pub stride: i64,
    /// Object slots per image (128: the official `max_objs` for COCO).
    pub max_objects: usize,
    /// Minimum IoU the radius keeps (0.7).
    pub min_overlap: f64,
    /// Corrected (default) or original radius.
    pub radius: RadiusRule,
}

impl TargetConfig {
    /// The official settings for `num_classes` classes (stride 4, 128 objects, overlap 0.7,
    /// corrected radius).
    pub fn new(num_classes: i64) -> Self {
        Self {
            num_classes,
            stride: 4,
            max_objects: 128,
            min_overlap: 0.7,
            radius: RadiusRule::Corrected,
        }
    }

    fn check(&self) -> Result<()> {
        if self.num_classes < 1 {
            return Err(CenterNetError::config(
                "num_classes",
                ">= 1",
                self.num_classes,
            ));
        }
        if self.stride < 1 {
            return Err(CenterNetError::config("stride", ">= 1", self.stride));
        }
        if self.max_objects == 0 {
            return Err(CenterNetError::config("max_objects", ">= 1", 0));
        }
        if !(self.min_overlap > 0.0 && self.min_overlap < 1.0) {
            return Err(CenterNetError::config(
                "min_overlap",
                "in (0, 1)",
                self.min_overlap,
            ));
        }
        Ok(())
    }
}

/// One image's targets as plain arrays (row-major), the official `ret` dict.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTargets {
    /// `[C, H_out, W_out]` heatmap.
    pub hm: Vec<f32>,
    /// `[M, 2]` box width and height in output pixels.
    pub wh: Vec<f32>,
    /// `[M, 2]` centre offset from its integer cell.
    pub reg: Vec<f32>,
    /// `[M]` flat index `y * W_out + x` of the centre cell.
    pub ind: Vec<i64>,
    /// `[M]` 1 for a drawn object, 0 for an empty slot.
    pub mask: Vec<f32>,
}

/// Targets for one image: `boxes` xyxy in input pixels with their `classes`, an output grid
/// of `out_w x out_h`. `image` only names the image in errors.
pub fn image_targets(
    boxes: &[[f64; 4]],
    classes: &[i64],
    out_w: usize,
    out_h: usize,
    cfg: &TargetConfig,
    image: usize,
) -> Result<ImageTargets> {
    cfg.check()?;
    if boxes.len() != classes.len() {
        return Err(CenterNetError::config(
            "classes",
            format!("one class per box ({} boxes)", boxes.len()),
            classes.len(),
        ));
    }
    let c = cfg.num_classes as usize;
    let m = cfg.max_objects;
    let mut t = ImageTargets {
        hm: vec![0.0; c * out_h * out_w],
        wh: vec![0.0; m * 2],
        reg: vec![0.0; m * 2],
        ind: vec![0; m],
        mask: vec![0.0; m],
    };
    fill(
        Slots {
            hm: &mut t.hm,
            wh: &mut t.wh,
            reg: &mut t.reg,
            ind: &mut t.ind,
            mask: &mut t.mask,
        },
        boxes,
        classes,
        out_w,
        out_h,
        cfg,
        image,
    )?;
    Ok(t)
}

/// One image's zeroed target arrays, inside a batch's or its own.
struct Slots<'a> {
    hm: &'a mut [f32],
    wh: &'a mut [f32],
    reg: &'a mut [f32],
    ind: &'a mut [i64],
    mask: &'a mut [f32],
}

/// The official per-object block of `ctdet.py` into `t` (zeroed, `cfg` checked).
fn fill(
    t: Slots<'_>,
    boxes: &[[f64; 4]],
    classes: &[i64],
    out_w: usize,
    out_h: usize,
    cfg: &TargetConfig,
    image: usize,
) -> Result<()> {
    let m = cfg.max_objects;
    let s = cfg.stride as f64;
    let (xmax, ymax) = (out_w as f64 - 1.0, out_h as f64 - 1.0);
    for (k, (b, &cls)) in boxes.iter().zip(classes).enumerate().take(m) {
        if b.iter().any(|v| !v.is_finite()) {
            return Err(CenterNetError::NonFinite {
                image,
                index: k,
                coords: *b,
            });
        }
        if cls < 0 || cls >= cfg.num_classes {
            return Err(CenterNetError::Class {
                image,
                index: k,
                class: cls,
                num_classes: cfg.num_classes,
            });
        }
        // The official code works in float32 from here.
        let x1 = ((b[0] / s) as f32).clamp(0.0, xmax as f32);
        let y1 = ((b[1] / s) as f32).clamp(0.0, ymax as f32);
        let x2 = ((b[2] / s) as f32).clamp(0.0, xmax as f32);
        let y2 = ((b[3] / s) as f32).clamp(0.0, ymax as f32);
        let (h, w) = (y2 - y1, x2 - x1);
        if !(h > 0.0 && w > 0.0) {
            continue;
        }
        let r = integer_radius(h as f64, w as f64, cfg.min_overlap, cfg.radius);
        let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let (ix, iy) = (cx as i64, cy as i64);
        let plane = &mut t.hm[cls as usize * out_h * out_w..(cls as usize + 1) * out_h * out_w];
        draw_umich_gaussian(plane, out_w, out_h, (ix, iy), r);
        t.wh[2 * k] = w;
        t.wh[2 * k + 1] = h;
        t.ind[k] = iy * out_w as i64 + ix;
        t.reg[2 * k] = cx - ix as f32;
        t.reg[2 * k + 1] = cy - iy as f32;
        t.mask[k] = 1.0;
    }
    Ok(())
}

/// A batch of targets as tensors.
#[derive(Debug)]
pub struct CenterNetTargets {
    /// `[B, C, H_out, W_out]` float heatmaps.
    pub hm: Tensor,
    /// `[B, M, 2]` float sizes.
    pub wh: Tensor,
    /// `[B, M, 2]` float offsets.
    pub reg: Tensor,
    /// `[B, M]` int64 indices.
    pub ind: Tensor,
    /// `[B, M]` float masks.
    pub mask: Tensor,
}

impl CenterNetTargets {
    /// Targets of padded boxes `[B, M, 4]` (xyxy input pixels) and classes `[B, M]` (-1 where
    /// padded) for an input of `input_h x input_w`, on `device`.
    pub fn from_padded(
        boxes: &Tensor,
        classes: &Tensor,
        input_hw: (i64, i64),
        cfg: &TargetConfig,
        device: Device,
    ) -> Result<Self> {
        cfg.check()?;
        let bs = boxes.size();
        let cs = classes.size();
        if bs.len() != 3 || bs[2] != 4 {
            return Err(CenterNetError::input("boxes", "[B, M, 4] xyxy", bs));
        }
        if cs.len() != 2 || cs[0] != bs[0] || cs[1] != bs[1] {
            return Err(CenterNetError::input(
                "classes",
                format!("[B, M] = [{}, {}] like the boxes", bs[0], bs[1]),
                cs,
            ));
        }
        let (ih, iw) = input_hw;
        if ih < cfg.stride || iw < cfg.stride {
            return Err(CenterNetError::config(
                "input size",
                format!("at least the stride {} on each side", cfg.stride),
                format!("{iw}x{ih}"),
            ));
        }
        let (out_h, out_w) = ((ih / cfg.stride) as usize, (iw / cfg.stride) as usize);
        let (b, m) = (bs[0] as usize, bs[1] as usize);
        let bx: Vec<f32> = Vec::try_from(
            boxes
                .to_kind(Kind::Float)
                .to_device(Device::Cpu)
                .contiguous()
                .view([-1]),
        )?;
        let cl: Vec<i64> = Vec::try_from(
            classes
                .to_kind(Kind::Int64)
                .to_device(Device::Cpu)
                .contiguous()
                .view([-1]),
        )?;
        let plane = cfg.num_classes as usize * out_h * out_w;
        let mo = cfg.max_objects;
        let mut hm = vec![0f32; b * plane];
        let mut wh = vec![0f32; b * mo * 2];
        let mut reg = vec![0f32; b * mo * 2];
        let mut ind = vec![0i64; b * mo];
        let mut mask = vec![0f32; b * mo];
        let mut ib = Vec::with_capacity(m);
        let mut ic = Vec::with_capacity(m);
        for i in 0..b {
            ib.clear();
            ic.clear();
            for j in 0..m {
                let c = cl[i * m + j];
                if c < 0 {
                    continue;
                }
                let o = 4 * (i * m + j);
                ib.push([0, 1, 2, 3].map(|q| bx[o + q] as f64));
                ic.push(c);
            }
            fill(
                Slots {
                    hm: &mut hm[i * plane..(i + 1) * plane],
                    wh: &mut wh[i * mo * 2..(i + 1) * mo * 2],
                    reg: &mut reg[i * mo * 2..(i + 1) * mo * 2],
                    ind: &mut ind[i * mo..(i + 1) * mo],
                    mask: &mut mask[i * mo..(i + 1) * mo],
                },
                &ib,
                &ic,
                out_w,
                out_h,
                cfg,
                i,
            )?;
        }
        let (bb, mm) = (b as i64, cfg.max_objects as i64);
        Ok(Self {
            hm: Tensor::from_slice(&hm)
                .view([bb, cfg.num_classes, out_h as i64, out_w as i64])
                .to_device(device),
            wh: Tensor::from_slice(&wh).view([bb, mm, 2]).to_device(device),
            reg: Tensor::from_slice(&reg).view([bb, mm, 2]).to_device(device),
            ind: Tensor::from_slice(&ind).view([bb, mm]).to_device(device),
            mask: Tensor::from_slice(&mask).view([bb, mm]).to_device(device),
        })
    }

    /// Targets of a loader batch (its images give the input size).
    pub fn of(batch: &DetBatch, cfg: &TargetConfig) -> Result<Self> {
        let s = batch.images.size();
        if s.len() != 4 {
            return Err(CenterNetError::input("images", "[B, C, H, W]", s));
        }
        Self::from_padded(
            &batch.boxes,
            &batch.classes,
            (s[2], s[3]),
            cfg,
            batch.images.device(),
        )
    }

    /// Number of drawn objects in the batch.
    pub fn num_objects(&self) -> f64 {
        self.mask.sum(Kind::Float).double_value(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_box_gives_peak_size_offset_index() {
        let cfg = TargetConfig::new(3);
        // 64 x 64 input: 16 x 16 output. Box 8..40 x 4..28 -> 2..10 x 1..7 on the grid.
        let t = image_targets(&[[8.0, 4.0, 40.0, 28.0]], &[2], 16, 16, &cfg, 0).unwrap();
        let plane = &t.hm[2 * 256..3 * 256];
        assert_eq!(plane[4 * 16 + 6], 1.0);
        assert!(t.hm[..2 * 256].iter().all(|v| *v == 0.0));
        assert_eq!(&t.wh[..2], &[8.0, 6.0]);
        assert_eq!(&t.reg[..2], &[0.0, 0.0]);
        assert_eq!(t.ind[0], 4 * 16 + 6);
        assert_eq!(t.mask[0], 1.0);
        assert!(t.mask[1..].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn zero_size_outside_and_clipped_boxes() {
        let cfg = TargetConfig::new(1);
        let boxes = [
            [10.0, 10.0, 10.0, 30.0],     // zero width: skipped
            [100.0, 100.0, 140.0, 140.0], // wholly outside a 64 x 64 input: skipped
            [-20.0, 8.0, 20.0, 24.0],     // partly outside: clipped to 0..5 x 2..6
        ];
        let t = image_targets(&boxes, &[0, 0, 0], 16, 16, &cfg, 0).unwrap();
        assert_eq!(&t.mask[..3], &[0.0, 0.0, 1.0]);
        assert_eq!(&t.wh[4..6], &[5.0, 4.0]);
        assert_eq!(&t.reg[4..6], &[0.5, 0.0]);
        assert_eq!(t.ind[2], 4 * 16 + 2);
    }

    #[test]
    fn bad_class_and_nan_are_errors_and_max_objects_truncates() {
        let cfg = TargetConfig::new(2);
        let e = image_targets(&[[0.0, 0.0, 8.0, 8.0]], &[2], 8, 8, &cfg, 3).unwrap_err();
        assert!(
            matches!(
                e,
                CenterNetError::Class {
                    class: 2,
                    image: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("2 classes"), "{e}");
        let e = image_targets(&[[0.0, f64::NAN, 8.0, 8.0]], &[0], 8, 8, &cfg, 0).unwrap_err();
        assert!(matches!(e, CenterNetError::NonFinite { .. }), "{e}");
        let cfg = TargetConfig {
            max_objects: 2,
            ..TargetConfig::new(1)
        };
        let b = [[0.0, 0.0, 8.0, 8.0]; 3];
        let t = image_targets(&b, &[0, 0, 0], 8, 8, &cfg, 0).unwrap();
        assert_eq!(t.mask, vec![1.0, 1.0]);
    }

    #[test]
    fn padded_batch_targets_and_empty_image() {
        let boxes = Tensor::from_slice(&[
            8.0f32, 8.0, 24.0, 24.0, 0.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ])
        .view([2, 2, 4]);
        let classes = Tensor::from_slice(&[1i64, -1, -1, -1]).view([2, 2]);
        let cfg = TargetConfig::new(2);
        let t =
            CenterNetTargets::from_padded(&boxes, &classes, (32, 32), &cfg, Device::Cpu).unwrap();
        assert_eq!(t.hm.size(), [2, 2, 8, 8]);
        assert_eq!(t.wh.size(), [2, 128, 2]);
        assert_eq!(t.num_objects(), 1.0);
        assert_eq!(t.hm.get(1).sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(t.hm.double_value(&[0, 1, 4, 4]), 1.0);
        let bad = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        assert!(
            CenterNetTargets::from_padded(&bad, &classes, (32, 32), &cfg, Device::Cpu).is_err()
        );
    }
}
