//! Box-aware augmentation on image tensors (on whatever device the image is), each transform
//! composing its affine record into the sample's [`ImageMap`], so that predictions in
//! network-input coordinates map back to the original image.
//!
//! Sources of the recipes:
//! - horizontal flip with probability 0.5 and scale gain in `[1 - 0.5, 1 + 0.5]`: ultralytics
//!   `cfg/default.yaml` (`fliplr: 0.5`, `scale: 0.5`);
//! - HSV jitter: YOLOv5 `utils/augmentations.py::augment_hsv` / ultralytics
//!   `data/augment.py::RandomHSV`: gains `r = U(-1, 1) * (h, s, v) + 1`, hue multiplied by
//!   `r0` modulo the hue circle, saturation and value multiplied and clipped; defaults
//!   `hsv_h 0.015, hsv_s 0.7, hsv_v 0.4` (`cfg/default.yaml`). On a grey (1-channel) image only
//!   the value gain applies;
//! - letterbox with YOLO's grey 114 padding, content placed at `floor((W - w') / 2)` as
//!   [`crate::transforms::letterbox`];
//! - scale jitter + fixed-size crop/pad as the large-scale-jitter recipe (torchvision
//!   `references/detection/transforms.py`: `ScaleJitter` + `FixedSizeCrop`).
//!
//! Boxes cut by a crop are clipped and dropped when less than [`AugmentConfig::min_visible`]
//! (default 0.25) of their area or a side shorter than [`AugmentConfig::min_side`] (default
//! 2 px, ultralytics' `box_candidates` `wh_thr`) is left. ultralytics keeps boxes down to 10 %
//! of their area after its perspective warp; 25 % is kept here because a sliver of a digit often
//! reads as another digit (a cut 8 looks like a 0 or a 3).
//!
//! Resampling is `_upsample_bilinear2d_aa` with `align_corners = false` (antialiased when
//! shrinking, as PIL and torchvision's `antialias=True`), for which output pixel edges map
//! exactly: `x' = x * (w' / w)` in continuous pixel coordinates.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{torch_err, DetectionSet};
use crate::error::{DetError, Result};
use crate::synth::SplitMix64;

/// Per-axis affine map from original to current image coordinates, `x' = ax * x + bx`,
/// `y' = ay * y + by` (`ax < 0`: mirrored), with the original and current sizes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageMap {
    /// `ax` of `x' = ax * x + bx` (negative after a flip).
    pub ax: f64,
    /// `bx` of `x' = ax * x + bx`.
    pub bx: f64,
    /// `ay` of `y' = ay * y + by`.
    pub ay: f64,
    /// `by` of `y' = ay * y + by`.
    pub by: f64,
    /// Width of the original image.
    pub orig_w: u32,
    /// Height of the original image.
    pub orig_h: u32,
    /// Current width.
    pub width: u32,
    /// Current height.
    pub height: u32,
}

impl ImageMap {
    /// The identity on a `w x h` image.
    pub fn identity(w: u32, h: u32) -> Self {
        ImageMap {
            ax: 1.0,
            bx: 0.0,
            ay: 1.0,
            by: 0.0,
            orig_w: w,
            orig_h: h,
            width: w,
            height: h,
        }
    }

    /// This map followed by `x'' = ax * x' + bx` on an image now `width x height`.
    pub fn then(
        &self,
        (ax, bx): (f64, f64),
        (ay, by): (f64, f64),
        width: u32,
        height: u32,
    ) -> Self {
        ImageMap {
            ax: ax * self.ax,
            bx: ax * self.bx + bx,
            ay: ay * self.ay,
            by: ay * self.by + by,
            width,
            height,
            ..*self
        }
    }

    /// Whether the image is mirrored left-right.
    pub fn flipped(&self) -> bool {
        self.ax < 0.0
    }

    /// An original-image box in current coordinates (corners re-ordered after a flip).
    pub fn forward(&self, b: [f64; 4]) -> [f64; 4] {
        let (x1, x2) = (self.ax * b[0] + self.bx, self.ax * b[2] + self.bx);
        let (y1, y2) = (self.ay * b[1] + self.by, self.ay * b[3] + self.by);
        [x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)]
    }

    /// A current-coordinate box (a prediction on the network input) in original image
    /// coordinates, clipped to the original image.
    pub fn inverse(&self, b: [f64; 4]) -> [f64; 4] {
        let (x1, x2) = ((b[0] - self.bx) / self.ax, (b[2] - self.bx) / self.ax);
        let (y1, y2) = ((b[1] - self.by) / self.ay, (b[3] - self.by) / self.ay);
        let (w, h) = (self.orig_w as f64, self.orig_h as f64);
        [
            x1.min(x2).clamp(0.0, w),
            y1.min(y2).clamp(0.0, h),
            x1.max(x2).clamp(0.0, w),
            y1.max(y2).clamp(0.0, h),
        ]
    }
}

/// One image on its way to the network: pixels `[C, H, W]` float in `[0, 1]`, boxes in the
/// image's current coordinates with their classes and ignore flags, and the map from the
/// original image.
#[derive(Debug)]
pub struct Sample {
    /// Pixels `[C, H, W]` float in `[0, 1]`.
    pub image: Tensor,
    /// `xyxy` boxes in current pixel coordinates.
    pub boxes: Vec<[f64; 4]>,
    /// One class index per box.
    pub classes: Vec<i64>,
    /// Per box: crowd / difficult (evaluation-only).
    pub ignore: Vec<bool>,
    /// From original to current coordinates.
    pub map: ImageMap,
    /// The image's id (COCO `image_id`).
    pub image_id: i64,
    /// Index in the data set.
    pub index: usize,
}

impl Sample {
    /// Image `i` of `set` with its annotation, on `device`. The image must have the size its
    /// record says.
    pub fn from_set(set: &dyn DetectionSet, i: usize, device: tch::Device) -> Result<Self> {
        let r = set.record(i)?;
        let image = set
            .image(i)?
            .f_to_device(device)
            .map_err(torch_err("moving an image to the device"))?;
        let s = image.size();
        if s.len() != 3 || s[1] != r.height as i64 || s[2] != r.width as i64 {
            return Err(DetError::ImageSize {
                image: format!("{} #{i} ({})", set.name(), r.file_name),
                expected_w: r.width,
                expected_h: r.height,
                got_w: s.last().copied().unwrap_or(0) as u32,
                got_h: s.get(1).copied().unwrap_or(0) as u32,
            });
        }
        Ok(Sample {
            image,
            boxes: r.boxes.clone(),
            classes: r.classes.clone(),
            ignore: r.ignored(),
            map: ImageMap::identity(r.width, r.height),
            image_id: r.image_id,
            index: i,
        })
    }

    /// `(width, height)` now.
    pub fn size(&self) -> (u32, u32) {
        (self.map.width, self.map.height)
    }

    /// What every transform needs: a floating `[1 or 3, H, W]` image of the size its map
    /// says, and one class and one ignore flag per box. `op` names the transform in errors.
    pub fn check(&self, op: &'static str) -> Result<()> {
        let s = self.image.size();
        let (w, h) = (self.map.width as i64, self.map.height as i64);
        if w == 0 || h == 0 || s.len() != 3 || !(s[0] == 1 || s[0] == 3) || s[1] != h || s[2] != w {
            return Err(DetError::arg(
                op,
                format!("a [1 or 3, {h}, {w}] image tensor (the size of the sample's map, > 0)"),
                format!("{s:?}"),
            ));
        }
        if !matches!(
            self.image.kind(),
            tch::Kind::Float | tch::Kind::Double | tch::Kind::Half | tch::Kind::BFloat16
        ) {
            return Err(DetError::arg(
                op,
                "a floating-point image tensor in [0, 1]",
                format!("{:?}", self.image.kind()),
            ));
        }
        for (what, len) in [
            ("classes (one per box)", self.classes.len()),
            ("ignore flags (one per box)", self.ignore.len()),
        ] {
            if len != self.boxes.len() {
                return Err(DetError::LengthMismatch {
                    what,
                    expected: self.boxes.len(),
                    got: len,
                });
            }
        }
        Ok(())
    }

    fn retain(&mut self, keep: &[bool]) {
        let mut k = keep.iter();
        self.classes.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.ignore.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.boxes.retain(|_| *k.next().unwrap_or(&false));
    }
}

fn check_target(w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(DetError::arg(
            "target size",
            "a non-zero width and height",
            format!("{w}x{h}"),
        ));
    }
    Ok(())
}

fn resample(img: &Tensor, w: u32, h: u32) -> Result<Tensor> {
    img.f_unsqueeze(0)
        .and_then(|t| t.f_internal_upsample_bilinear2d_aa([h as i64, w as i64], false, None, None))
        .and_then(|t| t.f_squeeze_dim(0))
        .map_err(torch_err(format!("resampling an image to {w}x{h}")))
}

/// Mirrors the image left-right, with its boxes.
pub fn hflip(mut s: Sample) -> Result<Sample> {
    s.check("hflip")?;
    s.image = s
        .image
        .f_flip([2])
        .map_err(torch_err("flipping an image"))?;
    let w = s.map.width as f64;
    s.boxes = s
        .boxes
        .iter()
        .map(|b| [w - b[2], b[1], w - b[0], b[3]])
        .collect();
    s.map = s.map.then((-1.0, w), (1.0, 0.0), s.map.width, s.map.height);
    Ok(s)
}

/// Resizes (stretches) to `w x h`.
pub fn resize(mut s: Sample, w: u32, h: u32) -> Result<Sample> {
    s.check("resize")?;
    check_target(w, h)?;
    let (sx, sy) = (
        w as f64 / s.map.width as f64,
        h as f64 / s.map.height as f64,
    );
    s.image = resample(&s.image, w, h)?;
    s.boxes = s
        .boxes
        .iter()
        .map(|b| [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy])
        .collect();
    s.map = s.map.then((sx, 0.0), (sy, 0.0), w, h);
    Ok(s)
}

/// Resizes by `scale` (`w' = round(w * scale)`) and places the result on a `w x h` canvas of
/// `fill` with its top-left at `offset` (negative: cropped). Boxes are moved, clipped to the
/// canvas and kept when at least `min_visible` of their area and `min_side` px of each side
/// remain.
#[allow(clippy::too_many_arguments)]
pub fn scale_place(
    s: Sample,
    scale: f64,
    offset: (i64, i64),
    (w, h): (u32, u32),
    fill: f64,
    min_visible: f64,
    min_side: f64,
) -> Result<Sample> {
    s.check("scale_place")?;
    check_target(w, h)?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(DetError::arg("scale", "a finite number > 0", scale));
    }
    let nw = ((s.map.width as f64 * scale).round() as u32).max(1);
    let nh = ((s.map.height as f64 * scale).round() as u32).max(1);
    let mut s = resize(s, nw, nh)?;
    let c = s.image.size()[0];
    let canvas = Tensor::f_full(
        [c, h as i64, w as i64],
        fill,
        (Kind::Float, s.image.device()),
    )
    .map_err(torch_err("allocating a canvas"))?;
    // Destination span [d0, d1) on each axis, source starting at d0 - offset.
    let span = |off: i64, n: u32, out: u32| {
        let d0 = off.max(0);
        let d1 = (off + n as i64).min(out as i64);
        (d0, (d1 - d0).max(0), d0 - off)
    };
    let (dx, lx, sx) = span(offset.0, nw, w);
    let (dy, ly, sy) = span(offset.1, nh, h);
    if lx > 0 && ly > 0 {
        let src = s
            .image
            .f_narrow(2, sx, lx)
            .and_then(|t| t.f_narrow(1, sy, ly))
            .map_err(torch_err("cropping"))?;
        canvas
            .f_narrow(2, dx, lx)
            .and_then(|t| t.f_narrow(1, dy, ly))
            .and_then(|mut t| t.f_copy_(&src))
            .map_err(torch_err("placing the resized image"))?;
    }
    s.image = canvas;
    let (ox, oy) = (offset.0 as f64, offset.1 as f64);
    let (fw, fh) = (w as f64, h as f64);
    let mut keep = Vec::with_capacity(s.boxes.len());
    for b in &mut s.boxes {
        let m = [b[0] + ox, b[1] + oy, b[2] + ox, b[3] + oy];
        let c = [m[0].max(0.0), m[1].max(0.0), m[2].min(fw), m[3].min(fh)];
        let full = (m[2] - m[0]) * (m[3] - m[1]);
        let (cw, ch) = (c[2] - c[0], c[3] - c[1]);
        let ok = cw >= min_side && ch >= min_side && cw * ch >= min_visible * full;
        keep.push(ok && cw > 0.0 && ch > 0.0);
        *b = c;
    }
    s.retain(&keep);
    s.map = s.map.then((1.0, ox), (1.0, oy), w, h);
    Ok(s)
}

/// Scales to fit `w x h` keeping the aspect ratio and centres the result on `fill`
/// (YOLO's letterbox with `fill = 114 / 255`). No box is dropped.
pub fn letterbox(s: Sample, w: u32, h: u32, fill: f64) -> Result<Sample> {
    s.check("letterbox")?;
    check_target(w, h)?;
    let (ow, oh) = s.size();
    let scale = (w as f64 / ow as f64).min(h as f64 / oh as f64);
    let nw = ((ow as f64 * scale).round() as u32).clamp(1, w);
    let nh = ((oh as f64 * scale).round() as u32).clamp(1, h);
    let mut s = resize(s, nw, nh)?;
    let off = (((w - nw) / 2) as i64, ((h - nh) / 2) as i64);
    s = scale_place(s, 1.0, off, (w, h), fill, 0.0, 0.0)?;
    Ok(s)
}

/// YOLO's HSV gains (fractions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsvGains {
    /// Hue gain (ultralytics `hsv_h`, 0.015).
    pub h: f64,
    /// Saturation gain (`hsv_s`, 0.7).
    pub s: f64,
    /// Value gain (`hsv_v`, 0.4).
    pub v: f64,
}

impl Default for HsvGains {
    /// ultralytics `cfg/default.yaml`: `hsv_h 0.015, hsv_s 0.7, hsv_v 0.4`.
    fn default() -> Self {
        HsvGains {
            h: 0.015,
            s: 0.7,
            v: 0.4,
        }
    }
}

fn rgb_to_hsv(img: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (r, g, b) = (img.get(0), img.get(1), img.get(2));
    let maxc = r.maximum(&g).maximum(&b);
    let minc = r.minimum(&g).minimum(&b);
    let delta = &maxc - &minc;
    let s = (&delta / maxc.clamp_min(1e-12)).where_self(&maxc.gt(0.0), &delta.zeros_like());
    let safe = delta.where_self(&delta.gt(0.0), &delta.ones_like());
    let rc = (&maxc - &r) / &safe;
    let gc = (&maxc - &g) / &safe;
    let bc = (&maxc - &b) / &safe;
    let h_r = &bc - &gc;
    let h_g = &rc - &bc + 2.0;
    let h_b = &gc - &rc + 4.0;
    let h = h_r.where_self(
        &maxc.eq_tensor(&r),
        &h_g.where_self(&maxc.eq_tensor(&g), &h_b),
    );
    let h = (h / 6.0).remainder(1.0);
    let h = h.where_self(&delta.gt(0.0), &delta.zeros_like());
    (h, s, maxc)
}

fn hsv_to_rgb(h: &Tensor, s: &Tensor, v: &Tensor) -> Tensor {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = &h6 - &i;
    let i = i.remainder(6.0);
    let p = v * (-s + 1.0);
    let q = v * (-(s * &f) + 1.0);
    let t = v * (-(s * (-&f + 1.0)) + 1.0);
    let pick = |opts: [&Tensor; 6]| {
        let mut out = opts[5].shallow_clone();
        for k in (0..5).rev() {
            out = opts[k].where_self(&i.eq(k as f64), &out);
        }
        out
    };
    let r = pick([v, &q, &p, &p, &t, v]);
    let g = pick([&t, v, v, &q, &p, &p]);
    let b = pick([&p, &p, &t, v, v, &q]);
    Tensor::stack(&[r, g, b], 0)
}

/// Applies gains `r = [rh, rs, rv]` (already `U(-1, 1) * gain + 1`): hue `(h * rh) mod 1`,
/// saturation and value multiplied and clipped to `[0, 1]`. Boxes are unchanged.
pub fn hsv(mut s: Sample, r: [f64; 3]) -> Result<Sample> {
    s.check("hsv")?;
    let c = s.image.size()[0];
    s.image = if c == 3 {
        let (h, sat, v) = rgb_to_hsv(&s.image);
        let h = (h * r[0]).remainder(1.0);
        hsv_to_rgb(
            &h,
            &(sat * r[1]).clamp(0.0, 1.0),
            &(v * r[2]).clamp(0.0, 1.0),
        )
    } else {
        (&s.image * r[2]).clamp(0.0, 1.0)
    };
    Ok(s)
}

/// Training augmentation: scale jitter + random placement, horizontal flip, HSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip.
    pub hflip: f64,
    /// Range of the scale gain over the letterbox fit.
    pub scale: (f64, f64),
    /// HSV gains; `None` turns the jitter off.
    pub hsv: Option<HsvGains>,
    /// A box cut by a crop is kept when at least this fraction of its area remains (0.25).
    pub min_visible: f64,
    /// ... and both its sides are at least this many pixels (2).
    pub min_side: f64,
    /// Padding value (0..1).
    pub fill: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            hflip: 0.5,
            scale: (0.5, 1.5),
            hsv: Some(HsvGains::default()),
            min_visible: 0.25,
            min_side: 2.0,
            fill: 114.0 / 255.0,
        }
    }
}

/// The random draws of one augmented sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentDraw {
    /// Scale gain over the letterbox fit.
    pub scale: f64,
    /// Where the resized image sits: 0 = left/top-most, 1 = right/bottom-most placement.
    pub place: (f64, f64),
    /// Mirror horizontally.
    pub flip: bool,
    /// HSV gains `r = U(-1, 1) * (h, s, v) + 1` drawn for this sample.
    pub hsv: [f64; 3],
}

impl AugmentConfig {
    /// Draws the parameters of one sample.
    pub fn draw(&self, rng: &mut SplitMix64) -> AugmentDraw {
        let scale = self.scale.0 + rng.uniform() * (self.scale.1 - self.scale.0);
        let place = (rng.uniform(), rng.uniform());
        let flip = rng.uniform() < self.hflip;
        let g = self.hsv.unwrap_or(HsvGains {
            h: 0.0,
            s: 0.0,
            v: 0.0,
        });
        let mut u = || rng.uniform() * 2.0 - 1.0;
        let hsv = [u() * g.h + 1.0, u() * g.s + 1.0, u() * g.v + 1.0];
        AugmentDraw {
            scale,
            place,
            flip,
            hsv,
        }
    }

    /// Applies `d` to `s` with output size `w x h`: the image is scaled by
    /// `d.scale * min(w / W, h / H)`, placed at `d.place` of the free (or cropped) span, then
    /// flipped and colour-jittered.
    pub fn apply(&self, s: Sample, d: &AugmentDraw, (w, h): (u32, u32)) -> Result<Sample> {
        check_target(w, h)?;
        let (ow, oh) = s.size();
        let fit = (w as f64 / ow as f64).min(h as f64 / oh as f64);
        let scale = fit * d.scale;
        let nw = ((ow as f64 * scale).round() as u32).max(1) as i64;
        let nh = ((oh as f64 * scale).round() as u32).max(1) as i64;
        // Pad: offset in [0, w - nw]; crop: offset in [w - nw, 0].
        let off = |out: u32, n: i64, f: f64| ((out as i64 - n) as f64 * f).round() as i64;
        let offset = (off(w, nw, d.place.0), off(h, nh, d.place.1));
        let mut s = scale_place(
            s,
            scale,
            offset,
            (w, h),
            self.fill,
            self.min_visible,
            self.min_side,
        )?;
        if d.flip {
            s = hflip(s)?;
        }
        if self.hsv.is_some() {
            s = hsv(s, d.hsv)?;
        }
        Ok(s)
    }
}
