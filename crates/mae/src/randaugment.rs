//! timm's RandAugment (`timm/data/auto_augment.py`, `rand_augment_transform`) on batched
//! tensors, on the device the batch lives on. The official MAE fine-tuning uses
//! `rand-m9-mstd0.5-inc1`: per image, 2 ops drawn uniformly (with replacement) from the 15
//! "increasing" ops, each applied with probability 1/2 at magnitude N(9, 0.5) clipped to
//! [0, 10], signed ops negated with probability 1/2.
//!
//! timm works on 8-bit PIL images after `RandomResizedCrop` + flip; here the batch is float in
//! [0, 1] at the same place in the pipeline. The ops follow PIL's arithmetic where it matters:
//! lookup-table ops (posterize, equalize, autocontrast) and the thresholds of solarize act on
//! 8-bit levels `round(255 x)`, and the "degenerate" images of the enhance ops (grayscale,
//! grayscale mean, 3x3 smooth) are rounded to 8 bits as PIL's are; the blends themselves and
//! invert / solarize stay continuous (PIL truncates each blend to 8 bits, so results differ by
//! less than one level). Rotate, shear and translate are one batched `affine_grid` +
//! `grid_sample` (bicubic, as `create_transform(interpolation="bicubic")` sets for timm; PIL's
//! transform filter is a cubic with a = -1, torch's a = -0.75) with PIL's pixel-centre geometry
//! and its rule for the fill: an output pixel whose source centre falls outside the image takes
//! the fill colour.
//!
//! Every random draw comes from torch's generator (read back on the CPU), so
//! [`train_kit::seed_step`] at the start of a step makes the augmentation reproducible.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{MaeError, Result};

/// timm's `_LEVEL_DENOM`: magnitudes are levels out of 10.
const LEVEL_DENOM: f64 = 10.0;

/// RandAugment settings. `Default` is the official MAE fine-tuning `rand-m9-mstd0.5-inc1`
/// with `create_transform`'s hparams: translate 45% of the side, fill = the ImageNet mean
/// pixel rounded to 8 bits (124, 116, 104) as timm rounds it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandAugmentConfig {
    /// Ops per image (`n`), drawn with replacement.
    pub num_ops: usize,
    /// Magnitude level (`m`), out of 10.
    pub magnitude: f64,
    /// Std of the gaussian noise on the magnitude per op (`mstd`); above 100 (timm's
    /// convention for `mstd` > 100) the magnitude is uniform in [0, magnitude] instead.
    pub magnitude_std: f64,
    /// Upper clip of the noisy magnitude (`mmax`, timm's default 10).
    pub magnitude_max: f64,
    /// Probability of applying each drawn op (`p`).
    pub prob: f64,
    /// timm's `inc1`: posterize, solarize and the enhance ops grow stronger with the level
    /// (enhance factors `1 +- 0.9 level / 10`) instead of timm's older mappings.
    pub increasing: bool,
    /// Largest translation as a fraction of the side (timm `translate_pct`).
    pub translate_pct: f64,
    /// Fill colour of rotate / shear / translate, RGB in [0, 1]; 1-channel images take its
    /// luma (0.299 R + 0.587 G + 0.114 B).
    pub fill: [f64; 3],
}

impl Default for RandAugmentConfig {
    fn default() -> Self {
        Self {
            num_ops: 2,
            magnitude: 9.0,
            magnitude_std: 0.5,
            magnitude_max: 10.0,
            prob: 0.5,
            increasing: true,
            translate_pct: 0.45,
            fill: [124.0 / 255.0, 116.0 / 255.0, 104.0 / 255.0],
        }
    }
}

impl RandAugmentConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, want: &str, got: String| {
            Err(MaeError::Config(format!(
                "rand_augment.{field} must be {want}, got {got}"
            )))
        };
        if !(self.magnitude.is_finite() && self.magnitude >= 0.0) {
            return bad("magnitude", "finite and >= 0", self.magnitude.to_string());
        }
        if self.magnitude_std.is_nan() || self.magnitude_std < 0.0 {
            return bad("magnitude_std", ">= 0", self.magnitude_std.to_string());
        }
        if !(self.magnitude_max.is_finite() && self.magnitude_max > 0.0) {
            return bad(
                "magnitude_max",
                "finite and > 0",
                self.magnitude_max.to_string(),
            );
        }
        if !(0.0..=1.0).contains(&self.prob) {
            return bad("prob", "in [0, 1]", self.prob.to_string());
        }
        if !(0.0..=1.0).contains(&self.translate_pct) {
            return bad("translate_pct", "in [0, 1]", self.translate_pct.to_string());
        }
        if !self.fill.iter().all(|v| (0.0..=1.0).contains(v)) {
            return bad("fill", "3 values in [0, 1]", format!("{:?}", self.fill));
        }
        Ok(())
    }

    /// timm's config string, e.g. `rand-m9-mstd0.5-inc1`: `rand` then `-`-separated keys
    /// `m` (magnitude), `n` (ops), `mstd`, `mmax`, `inc` (0 / 1), `p`, in any order. Unset keys
    /// take timm's string defaults (m 10, n 2, mstd 0, mmax 10, inc 0, p 0.5), the rest
    /// (translate, fill) this type's `Default`. Unknown keys, timm's `t` (weighted op sets,
    /// not implemented) and sections without a value are errors.
    pub fn parse(s: &str) -> Result<Self> {
        let err = |why: String| Err(MaeError::Config(format!("RandAugment {s:?}: {why}")));
        let mut parts = s.split('-');
        if parts.next() != Some("rand") {
            return err("must start with \"rand\"".into());
        }
        let mut cfg = Self {
            num_ops: 2,
            magnitude: LEVEL_DENOM,
            magnitude_std: 0.0,
            magnitude_max: LEVEL_DENOM,
            prob: 0.5,
            increasing: false,
            ..Self::default()
        };
        for part in parts {
            let Some(at) = part.find(|c: char| c.is_ascii_digit()) else {
                return err(format!("section {part:?} has no numeric value"));
            };
            let (key, val) = part.split_at(at);
            let num = val.parse::<f64>().ok().filter(|v| v.is_finite());
            let Some(num) = num else {
                return err(format!("{key}: {val:?} is not a number"));
            };
            match key {
                "m" => cfg.magnitude = num,
                "n" if num.fract() == 0.0 => cfg.num_ops = num as usize,
                "mstd" => cfg.magnitude_std = num,
                "mmax" => cfg.magnitude_max = num,
                "inc" if num == 0.0 || num == 1.0 => cfg.increasing = num == 1.0,
                "p" => cfg.prob = num,
                "n" | "inc" => return err(format!("{key}{val}: expected an integer (inc 0 or 1)")),
                _ => {
                    return err(format!(
                        "unknown key {key:?} (known: m, n, mstd, mmax, inc, p)"
                    ))
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The 15 ops of timm's `_RAND_INCREASING_TRANSFORMS` (and `_RAND_TRANSFORMS`, the same ops
/// with the older level mappings when `increasing` is false), in timm's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RandOp {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    Solarize,
    SolarizeAdd,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
}

impl RandOp {
    pub const ALL: [RandOp; 15] = [
        RandOp::AutoContrast,
        RandOp::Equalize,
        RandOp::Invert,
        RandOp::Rotate,
        RandOp::Posterize,
        RandOp::Solarize,
        RandOp::SolarizeAdd,
        RandOp::Color,
        RandOp::Contrast,
        RandOp::Brightness,
        RandOp::Sharpness,
        RandOp::ShearX,
        RandOp::ShearY,
        RandOp::TranslateXRel,
        RandOp::TranslateYRel,
    ];

    /// timm's name of the op (`PosterizeIncreasing` etc. when `increasing`).
    pub fn timm_name(self, increasing: bool) -> &'static str {
        use RandOp::*;
        match (self, increasing) {
            (AutoContrast, _) => "AutoContrast",
            (Equalize, _) => "Equalize",
            (Invert, _) => "Invert",
            (Rotate, _) => "Rotate",
            (Posterize, true) => "PosterizeIncreasing",
            (Posterize, false) => "Posterize",
            (Solarize, true) => "SolarizeIncreasing",
            (Solarize, false) => "Solarize",
            (SolarizeAdd, _) => "SolarizeAdd",
            (Color, true) => "ColorIncreasing",
            (Color, false) => "Color",
            (Contrast, true) => "ContrastIncreasing",
            (Contrast, false) => "Contrast",
            (Brightness, true) => "BrightnessIncreasing",
            (Brightness, false) => "Brightness",
            (Sharpness, true) => "SharpnessIncreasing",
            (Sharpness, false) => "Sharpness",
            (ShearX, _) => "ShearX",
            (ShearY, _) => "ShearY",
            (TranslateXRel, _) => "TranslateXRel",
            (TranslateYRel, _) => "TranslateYRel",
        }
    }

    /// The op of a timm name (either level mapping), `None` for ops outside the RandAugment set.
    pub fn from_timm_name(name: &str) -> Option<RandOp> {
        RandOp::ALL
            .into_iter()
            .find(|op| op.timm_name(true) == name || op.timm_name(false) == name)
    }

    /// Rotate, shear and translate: resampled with the fill colour.
    pub fn is_geometric(self) -> bool {
        matches!(
            self,
            RandOp::Rotate
                | RandOp::ShearX
                | RandOp::ShearY
                | RandOp::TranslateXRel
                | RandOp::TranslateYRel
        )
    }

    /// timm's `LEVEL_TO_ARG`: the op's argument at magnitude `level` (already clipped), negated
    /// for signed ops when `negate` (timm's `_randomly_negate`). Degrees for rotate, bits to
    /// keep for posterize, an 8-bit threshold for solarize, the 8-bit addend for solarize-add,
    /// the blend factor for the enhance ops, the shear factor, the translation as a fraction
    /// of the side; 0 for the ops without an argument.
    pub fn arg(self, level: f64, negate: bool, cfg: &RandAugmentConfig) -> f64 {
        use RandOp::*;
        let s = if negate { -1.0 } else { 1.0 };
        let frac = level / LEVEL_DENOM;
        match self {
            AutoContrast | Equalize | Invert => 0.0,
            Rotate => frac * 30.0 * s,
            Posterize if cfg.increasing => 4.0 - (frac * 4.0).trunc(),
            Posterize => (frac * 4.0).trunc(),
            Solarize if cfg.increasing => 256.0 - (frac * 256.0).trunc().min(256.0),
            Solarize => (frac * 256.0).trunc().min(256.0),
            SolarizeAdd => (frac * 110.0).trunc().min(128.0),
            Color | Contrast | Brightness | Sharpness if cfg.increasing => {
                (1.0 + s * frac * 0.9).max(0.1)
            }
            Color | Contrast | Brightness | Sharpness => frac * 1.8 + 0.1,
            ShearX | ShearY => frac * 0.3 * s,
            TranslateXRel | TranslateYRel => frac * cfg.translate_pct * s,
        }
    }
}

/// Checks the batch and returns it in a kind the ops compute in (half kinds go through f32).
fn prepare(x: &Tensor, what: &str) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 4 || !x.is_floating_point() || !(s[1] == 1 || s[1] == 3) {
        return Err(MaeError::input(
            what,
            "[N, C, H, W] floating point with C = 1 or 3",
            s,
        ));
    }
    Ok(match x.kind() {
        Kind::Float | Kind::Double => x.shallow_clone(),
        _ => x.to_kind(Kind::Float),
    })
}

/// Applies `op` at magnitude `level` (clipped to [0, magnitude_max] as timm does) with the
/// sign `negate` to every image of `x` (`[N, C, H, W]`, [0, 1], C = 1 or 3): the
/// deterministic core of [`rand_augment`], for tests and parity checks.
pub fn apply_op(
    x: &Tensor,
    op: RandOp,
    level: f64,
    negate: bool,
    cfg: &RandAugmentConfig,
) -> Result<Tensor> {
    cfg.validate()?;
    let work = prepare(x, "apply_op input")?;
    let n = work.size()[0] as usize;
    let arg = op.arg(level.clamp(0.0, cfg.magnitude_max), negate, cfg);
    let args = vec![arg; n];
    let y = if op.is_geometric() {
        let (h, w) = (work.size()[2], work.size()[3]);
        let mats: Vec<[f64; 6]> = args.iter().map(|a| pixel_affine(op, *a, h, w)).collect();
        warp(&work, &mats, &cfg.fill)
    } else {
        colour_op(&work, op, &args)
    };
    Ok(y.clamp(0.0, 1.0).to_kind(x.kind()))
}

/// timm `RandAugment` over a batch `[N, C, H, W]` (float in [0, 1], C = 1 or 3, any device):
/// each image draws its own `num_ops` ops, application coins, magnitudes and signs. The ops
/// run slot by slot; within a slot the images that drew a colour op are processed together
/// per op (`index_select` / `index_copy`) and all geometric ops in one `grid_sample`. Output:
/// same shape, kind and device, clamped to [0, 1].
pub fn rand_augment(x: &Tensor, cfg: &RandAugmentConfig) -> Result<Tensor> {
    cfg.validate()?;
    let work = prepare(x, "rand_augment input")?;
    let (n, h, w) = (work.size()[0], work.size()[2], work.size()[3]);
    let k = cfg.num_ops as i64;
    if n == 0 || k == 0 {
        return Ok(x.shallow_clone());
    }
    // Our own copy, updated in place group by group.
    let mut y = work.copy();
    // Per image and slot: op, apply coin, sign coin, uniform magnitude; then the gaussian
    // magnitude noise. Always drawn in full so the generator advances the same way whatever
    // the settings.
    let u: Vec<f64> =
        Vec::<f64>::try_from(Tensor::rand([n, k, 4], (Kind::Double, Device::Cpu)).flatten(0, -1))?;
    let g: Vec<f64> =
        Vec::<f64>::try_from(Tensor::randn([n, k], (Kind::Double, Device::Cpu)).flatten(0, -1))?;
    let device = y.device();
    for slot in 0..k as usize {
        let mut colour: Vec<(Vec<i64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); 15];
        let (mut geo_idx, mut geo_mats) = (Vec::new(), Vec::new());
        for i in 0..n as usize {
            let at = i * k as usize + slot;
            let d = &u[at * 4..at * 4 + 4];
            let which = ((d[0] * 15.0) as usize).min(14);
            if d[1] >= cfg.prob {
                continue;
            }
            let level = if cfg.magnitude_std > 100.0 {
                d[3] * cfg.magnitude
            } else {
                cfg.magnitude + cfg.magnitude_std * g[at]
            };
            let level = level.clamp(0.0, cfg.magnitude_max);
            let op = RandOp::ALL[which];
            // timm negates when random() > 0.5.
            let arg = op.arg(level, d[2] > 0.5, cfg);
            if op.is_geometric() {
                geo_idx.push(i as i64);
                geo_mats.push(pixel_affine(op, arg, h, w));
            } else {
                colour[which].0.push(i as i64);
                colour[which].1.push(arg);
            }
        }
        for (which, (idx, args)) in colour.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let index = Tensor::from_slice(idx).to_device(device);
            let out = colour_op(&y.index_select(0, &index), RandOp::ALL[which], args);
            let _ = y.index_copy_(0, &index, &out);
        }
        if !geo_idx.is_empty() {
            let index = Tensor::from_slice(&geo_idx).to_device(device);
            let out = warp(&y.index_select(0, &index), &geo_mats, &cfg.fill);
            let _ = y.index_copy_(0, &index, &out);
        }
    }
    Ok(y.clamp_(0.0, 1.0).to_kind(x.kind()))
}

/// PIL's `Image.transform(AFFINE)` coefficients `(a, b, c, d, e, f)` of a geometric op on an
/// `h x w` image: the source of output pixel centre `(x, y)` is `(a x + b y + c, d x + e y +
/// f)` in pixel units (timm's `shear_x`, `shear_y`, `translate_*_rel`, and PIL's `rotate`
/// about the centre, counter-clockwise for positive degrees).
fn pixel_affine(op: RandOp, arg: f64, h: i64, w: i64) -> [f64; 6] {
    let (hf, wf) = (h as f64, w as f64);
    match op {
        RandOp::ShearX => [1.0, arg, 0.0, 0.0, 1.0, 0.0],
        RandOp::ShearY => [1.0, 0.0, 0.0, arg, 1.0, 0.0],
        RandOp::TranslateXRel => [1.0, 0.0, arg * wf, 0.0, 1.0, 0.0],
        RandOp::TranslateYRel => [1.0, 0.0, 0.0, 0.0, 1.0, arg * hf],
        RandOp::Rotate => {
            // PIL rounds the rotation matrix to 15 decimals (exact zeros at right angles).
            let r = |v: f64| (v * 1e15).round() / 1e15;
            let t = -arg.to_radians();
            let (a, b, d, e) = (r(t.cos()), r(t.sin()), r(-t.sin()), r(t.cos()));
            let (cx, cy) = (wf / 2.0, hf / 2.0);
            let c = a * -cx + b * -cy + cx;
            let f = d * -cx + e * -cy + cy;
            [a, b, c, d, e, f]
        }
        _ => [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    }
}

/// Resamples each image of `x` through its pixel affine (one `affine_grid` + bicubic
/// `grid_sample` with border-clamped taps, like PIL's filter); pixels whose source centre lies
/// outside the image take `fill`, as PIL decides per output pixel.
fn warp(x: &Tensor, mats: &[[f64; 6]], fill: &[f64; 3]) -> Tensor {
    let s = x.size();
    let (m, c, h, w) = (s[0], s[1], s[2], s[3]);
    let (hf, wf) = (h as f64, w as f64);
    // Pixel coordinates -> grid_sample's [-1, 1] (align_corners = false): x_pix = (u + 1) W / 2.
    let mut theta = Vec::with_capacity(mats.len() * 6);
    for &[a, b, c0, d, e, f] in mats {
        theta.extend([
            a,
            b * hf / wf,
            a + b * hf / wf + 2.0 * c0 / wf - 1.0,
            d * wf / hf,
            e,
            d * wf / hf + e + 2.0 * f / hf - 1.0,
        ]);
    }
    let theta = Tensor::from_slice(&theta)
        .view([m, 2, 3])
        .to_kind(x.kind())
        .to_device(x.device());
    let grid = Tensor::affine_grid_generator(&theta, [m, c, h, w], false);
    // Bicubic (2), border padding (1).
    let sampled = x.grid_sampler(&grid, 2, 1, false);
    let inside = grid
        .ge(-1.0)
        .logical_and(&grid.lt(1.0))
        .all_dim(-1, false)
        .unsqueeze(1);
    let fill = if c == 1 {
        vec![0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]]
    } else {
        fill.to_vec()
    };
    let fill = Tensor::from_slice(&fill)
        .to_kind(x.kind())
        .to_device(x.device())
        .view([1, c, 1, 1]);
    sampled.where_self(&inside, &fill)
}

/// 8-bit levels `round(255 x)` in [0, 255], in `x`'s kind.
fn levels(x: &Tensor) -> Tensor {
    (x * 255.0).round().clamp(0.0, 255.0)
}

/// One value per image, `[m, 1, 1, 1]`, in `x`'s kind and device.
fn per_image(x: &Tensor, v: &[f64]) -> Tensor {
    Tensor::from_slice(v)
        .to_kind(x.kind())
        .to_device(x.device())
        .view([-1, 1, 1, 1])
}

/// PIL's `convert("L")` of 8-bit levels: `(19595 R + 38470 G + 7471 B + 2^15) >> 16` (exact
/// in f32: the sum stays below 2^24). Returns `[m, 1, H, W]` levels; 1-channel input as is.
fn gray_levels(lv: &Tensor) -> Tensor {
    if lv.size()[1] == 1 {
        return lv.shallow_clone();
    }
    let wts = Tensor::from_slice(&[19595.0, 38470.0, 7471.0])
        .to_kind(lv.kind())
        .to_device(lv.device())
        .view([1, 3, 1, 1]);
    ((lv * wts).sum_dim_intlist(1, true, None::<Kind>) + 32768.0)
        .divide_scalar(65536.0)
        .floor()
}

/// PIL's `Image.blend(degenerate, image, factor)` (`ImageEnhance`), continuous.
fn blend(degenerate: &Tensor, x: &Tensor, factor: &Tensor) -> Tensor {
    degenerate + factor * (x - degenerate)
}

/// Applies a colour op to every image of `x`, with one argument per image.
fn colour_op(x: &Tensor, op: RandOp, args: &[f64]) -> Tensor {
    match op {
        RandOp::Invert => 1.0 - x,
        RandOp::Posterize => {
            // ImageOps.posterize keeps the top `bits` bits; timm returns the image as is for
            // bits >= 8.
            let div: Vec<f64> = args
                .iter()
                .map(|b| 2f64.powf(8.0 - b.clamp(0.0, 8.0)))
                .collect();
            let keep: Vec<f64> = args.iter().map(|b| f64::from(*b >= 8.0)).collect();
            let div = per_image(x, &div);
            let q = levels(x).divide(&div).floor() * &div / 255.0;
            x.where_self(&per_image(x, &keep).gt(0.5), &q)
        }
        RandOp::Solarize => {
            // Levels below the threshold stay, the others are inverted.
            let below = levels(x).lt_tensor(&per_image(x, args));
            x.where_self(&below, &(1.0 - x))
        }
        RandOp::SolarizeAdd => {
            let add: Vec<f64> = args.iter().map(|a| a / 255.0).collect();
            let added = (x + per_image(x, &add)).clamp_max(1.0);
            added.where_self(&levels(x).lt(128.0), x)
        }
        RandOp::AutoContrast => auto_contrast(x),
        RandOp::Equalize => equalize(x),
        RandOp::Color => {
            let gray = gray_levels(&levels(x)) / 255.0;
            blend(&gray, x, &per_image(x, args))
        }
        RandOp::Contrast => {
            // ImageEnhance.Contrast: the mean of the 8-bit grayscale, rounded to a level.
            let mean = gray_levels(&levels(x)).to_kind(Kind::Double).mean_dim(
                &[1, 2, 3][..],
                true,
                None::<Kind>,
            );
            let mean = (mean + 0.5).floor().to_kind(x.kind()) / 255.0;
            blend(&mean, x, &per_image(x, args))
        }
        RandOp::Brightness => x * per_image(x, args),
        RandOp::Sharpness => sharpness(x, &per_image(x, args)),
        // Geometric ops are handled by `warp`.
        _ => x.shallow_clone(),
    }
}

/// `ImageOps.autocontrast` (no cutoff): per image and channel, the 8-bit range [lo, hi] is
/// stretched to [0, 255] by the table `int(v * 255 / (hi - lo) - lo * 255 / (hi - lo))`,
/// computed in f64 as PIL does; a flat channel is left alone.
fn auto_contrast(x: &Tensor) -> Tensor {
    let s = x.size();
    let lv = levels(x).flatten(2, -1).to_kind(Kind::Int64);
    let lo = lv.amin(&[2][..], true).to_kind(Kind::Double);
    let hi = lv.amax(&[2][..], true).to_kind(Kind::Double);
    let scale = (hi.ones_like() * 255.0) / (&hi - &lo).clamp_min(1.0);
    let offset = -&lo * &scale;
    let ramp = Tensor::arange(256, (Kind::Double, x.device())).view([1, 1, 256]);
    let lut = (ramp * &scale + offset).floor().clamp(0.0, 255.0);
    let out = lut
        .gather(2, &lv, false)
        .view(s.as_slice())
        .to_kind(x.kind())
        / 255.0;
    let flat = hi.le_tensor(&lo).unsqueeze(-1);
    x.where_self(&flat, &out)
}

/// `ImageOps.equalize`: per image and channel, from the 8-bit histogram `h`, `step = (count -
/// h[last non-empty level]) // 256` and the table `(step // 2 + cumulative count below v) //
/// step` (clipped to 255); channels with one level or `step = 0` are left alone. Integer
/// arithmetic throughout, as PIL's.
fn equalize(x: &Tensor) -> Tensor {
    let s = x.size();
    let lv = levels(x).flatten(2, -1).to_kind(Kind::Int64);
    let (m, c, count) = (s[0], s[1], s[2] * s[3]);
    let hist =
        Tensor::zeros([m, c, 256], (Kind::Int64, x.device())).scatter_add(2, &lv, &lv.ones_like());
    let last = lv.amax(&[2][..], true);
    let step = (hist.gather(2, &last, false) * -1 + count).floor_divide_scalar(256);
    let below = hist.cumsum(2, Kind::Int64) - &hist;
    let lut = (below + step.floor_divide_scalar(2))
        .floor_divide(&step.clamp_min(1))
        .clamp(0, 255);
    let out = lut
        .gather(2, &lv, false)
        .view(s.as_slice())
        .to_kind(x.kind())
        / 255.0;
    let used = hist.gt(0).sum_dim_intlist(2, true, Kind::Int64);
    let leave = used.le(1).logical_or(&step.eq(0)).unsqueeze(-1);
    x.where_self(&leave, &out)
}

/// `ImageEnhance.Sharpness`: blend with PIL's `SMOOTH` filter (3x3 kernel [[1, 1, 1], [1, 5,
/// 1], [1, 1, 1]] / 13, rounded to 8 bits); PIL's filter leaves the 1-pixel border as is, so
/// the border is unchanged.
fn sharpness(x: &Tensor, factor: &Tensor) -> Tensor {
    let s = x.size();
    let (h, w) = (s[2], s[3]);
    if h < 3 || w < 3 {
        return x.shallow_clone();
    }
    // [[1, 1, 1], [1, 5, 1], [1, 1, 1]] = the 3x3 box sum + 4 x the centre.
    let v = x * 255.0;
    let boxsum = v.avg_pool2d([3, 3], [1, 1], [0, 0], false, true, None::<i64>) * 9.0;
    let centre = v.narrow(2, 1, h - 2).narrow(3, 1, w - 2);
    let smooth = ((boxsum + centre * 4.0) / 13.0).round().clamp(0.0, 255.0) / 255.0;
    let inner = x.narrow(2, 1, h - 2).narrow(3, 1, w - 2);
    let blended = blend(&smooth, &inner, factor);
    let out = x.copy();
    out.narrow(2, 1, h - 2).narrow(3, 1, w - 2).copy_(&blended);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RandAugmentConfig {
        RandAugmentConfig::default()
    }

    /// A `[1, 3, h, w]` image of 8-bit levels.
    fn image(levels: &[f64], c: i64, h: i64, w: i64) -> Tensor {
        Tensor::from_slice(levels)
            .view([1, c, h, w])
            .to_kind(Kind::Float)
            / 255.0
    }

    fn as_levels(x: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from((x * 255.0).round().flatten(0, -1).to_kind(Kind::Double)).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn default_is_the_official_string_and_parse_reads_timm_keys() {
        let _rng = crate::test_rng_lock();
        let c = RandAugmentConfig::parse("rand-m9-mstd0.5-inc1").unwrap();
        assert_eq!(c, RandAugmentConfig::default());
        let c = RandAugmentConfig::parse("rand-n3-m7-mmax12-p0.25-mstd101").unwrap();
        assert_eq!(
            (
                c.num_ops,
                c.magnitude,
                c.magnitude_max,
                c.prob,
                c.increasing
            ),
            (3, 7.0, 12.0, 0.25, false)
        );
        assert_eq!(c.magnitude_std, 101.0);
        // timm's string defaults: m 10, no noise, not increasing.
        let c = RandAugmentConfig::parse("rand").unwrap();
        assert_eq!(
            (c.magnitude, c.magnitude_std, c.increasing),
            (10.0, 0.0, false)
        );
        for bad in [
            "augmix-m9",
            "rand-m9-x3",
            "rand-m9-tweights",
            "rand-inc",
            "rand-m9x",
            "rand-n2.5",
            "rand-inc2",
            "rand-p1.5",
            "",
        ] {
            let e = RandAugmentConfig::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("RandAugment") || e.contains("rand_augment"),
                "{e}"
            );
        }
        let e = RandAugmentConfig::parse("rand-m9-q1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"q\""), "{e}");
        let e = RandAugmentConfig::parse("rand-p1.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rand_augment.prob") && e.contains("1.5"), "{e}");
    }

    #[test]
    fn validate_names_the_field_and_value() {
        let _rng = crate::test_rng_lock();
        let cases = [
            (
                RandAugmentConfig {
                    prob: -0.1,
                    ..cfg()
                },
                "prob",
                "-0.1",
            ),
            (
                RandAugmentConfig {
                    magnitude: f64::NAN,
                    ..cfg()
                },
                "magnitude",
                "NaN",
            ),
            (
                RandAugmentConfig {
                    magnitude_std: -1.0,
                    ..cfg()
                },
                "magnitude_std",
                "-1",
            ),
            (
                RandAugmentConfig {
                    magnitude_max: 0.0,
                    ..cfg()
                },
                "magnitude_max",
                "0",
            ),
            (
                RandAugmentConfig {
                    translate_pct: 2.0,
                    ..cfg()
                },
                "translate_pct",
                "2",
            ),
            (
                RandAugmentConfig {
                    fill: [0.5, 1.5, 0.0],
                    ..cfg()
                },
                "fill",
                "1.5",
            ),
        ];
        for (c, field, value) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains(&format!("rand_augment.{field} ")) && e.contains(value),
                "{e}"
            );
        }
        cfg().validate().unwrap();
        // serde: defaults fill in, unknown fields are refused.
        let c: RandAugmentConfig = serde_json::from_str(r#"{"num_ops": 3}"#).unwrap();
        assert_eq!(c.num_ops, 3);
        assert_eq!(c.fill, cfg().fill);
        assert!(serde_json::from_str::<RandAugmentConfig>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn level_mappings_follow_timm() {
        let _rng = crate::test_rng_lock();
        let inc = cfg();
        let old = RandAugmentConfig {
            increasing: false,
            ..cfg()
        };
        assert_eq!(RandOp::Rotate.arg(9.0, true, &inc), -27.0);
        assert_eq!(RandOp::Posterize.arg(9.0, false, &inc), 1.0); // 4 - int(3.6)
        assert_eq!(RandOp::Posterize.arg(9.0, false, &old), 3.0);
        assert_eq!(RandOp::Solarize.arg(9.0, false, &inc), 256.0 - 230.0);
        assert_eq!(RandOp::Solarize.arg(9.0, false, &old), 230.0);
        assert_eq!(RandOp::SolarizeAdd.arg(9.0, false, &inc), 99.0);
        assert!((RandOp::Color.arg(9.0, false, &inc) - 1.81).abs() < 1e-12);
        assert!((RandOp::Color.arg(9.0, true, &inc) - 0.19).abs() < 1e-12);
        assert!((RandOp::Color.arg(9.0, true, &old) - 1.72).abs() < 1e-12);
        assert!((RandOp::ShearX.arg(10.0, true, &inc) + 0.3).abs() < 1e-12);
        assert!((RandOp::TranslateYRel.arg(10.0, false, &inc) - 0.45).abs() < 1e-12);
        assert_eq!(
            RandOp::from_timm_name("SharpnessIncreasing"),
            Some(RandOp::Sharpness)
        );
        assert_eq!(RandOp::from_timm_name("Cutout"), None);
    }

    #[test]
    fn lookup_ops_on_known_levels() {
        let _rng = crate::test_rng_lock();
        // One row of levels per channel.
        let px = [0.0, 37.0, 100.0, 127.0, 128.0, 200.0, 254.0, 255.0];
        let x = image(&px, 1, 1, 8);
        let c = cfg();
        // Invert is 1 - x, on any float.
        let r = Tensor::rand([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let inv = apply_op(&r, RandOp::Invert, 9.0, false, &c).unwrap();
        assert!(max_diff(&inv, &(1.0 - &r)) < 1e-7);
        // Posterize at level 9 (increasing) keeps 1 bit: v & 128.
        let y = apply_op(&x, RandOp::Posterize, 9.0, false, &c).unwrap();
        assert_eq!(
            as_levels(&y),
            vec![0.0, 0.0, 0.0, 0.0, 128.0, 128.0, 128.0, 128.0]
        );
        // Level 2.5 keeps 4 - int(1.0) = 3 bits: v & 224.
        let y = apply_op(&x, RandOp::Posterize, 2.5, false, &c).unwrap();
        assert_eq!(
            as_levels(&y),
            vec![0.0, 32.0, 96.0, 96.0, 128.0, 192.0, 224.0, 224.0]
        );
        // Solarize at level 5 (increasing): threshold 256 - 128 = 128.
        let y = apply_op(&x, RandOp::Solarize, 5.0, false, &c).unwrap();
        assert_eq!(
            as_levels(&y),
            vec![0.0, 37.0, 100.0, 127.0, 127.0, 55.0, 1.0, 0.0]
        );
        // Solarize-add at level 5: +55 below 128, saturating.
        let y = apply_op(&x, RandOp::SolarizeAdd, 5.0, false, &c).unwrap();
        assert_eq!(
            as_levels(&y),
            vec![55.0, 92.0, 155.0, 182.0, 128.0, 200.0, 254.0, 255.0]
        );
        // Autocontrast stretches [37, 200] to [0, 255] by int(v * s - 37 s).
        let x2 = image(&[37.0, 100.0, 150.0, 200.0], 1, 2, 2);
        let y = apply_op(&x2, RandOp::AutoContrast, 0.0, false, &c).unwrap();
        let s = 255.0 / 163.0;
        let want: Vec<f64> = [37.0f64, 100.0, 150.0, 200.0]
            .iter()
            .map(|v| (v * s - 37.0 * s).floor())
            .collect();
        assert_eq!(as_levels(&y), want);
        // A flat channel is left alone by autocontrast and equalize.
        let flat = Tensor::full([1, 1, 3, 3], 0.3, (Kind::Float, Device::Cpu));
        for op in [RandOp::AutoContrast, RandOp::Equalize] {
            assert!(apply_op(&flat, op, 0.0, false, &c).unwrap().equal(&flat));
        }
    }

    #[test]
    fn equalize_follows_pil_table() {
        let _rng = crate::test_rng_lock();
        // 16 x 32 pixels: levels 10 (x 256), 20 (x 128), 30 (x 128).
        let mut px = vec![10.0; 256];
        px.extend(vec![20.0; 128]);
        px.extend(vec![30.0; 128]);
        let x = image(&px, 1, 16, 32);
        let y = apply_op(&x, RandOp::Equalize, 0.0, false, &cfg()).unwrap();
        // step = (512 - 128) // 256 = 1; lut[v] = (0 + count below v) // 1, clipped.
        let got = as_levels(&y);
        assert_eq!((got[0], got[256], got[511]), (0.0, 255.0, 255.0));
    }

    #[test]
    fn enhance_ops_blend_with_their_degenerate() {
        let _rng = crate::test_rng_lock();
        let c = cfg();
        let px = [
            10.0, 200.0, 30.0, 90.0, 60.0, 120.0, 250.0, 0.0, 80.0, 40.0, 220.0, 100.0,
        ];
        let x = image(&px, 3, 2, 2);
        // Brightness: factor 1 + 0.9 * 0.5 = 1.45, times the image.
        let y = apply_op(&x, RandOp::Brightness, 5.0, false, &c).unwrap();
        assert!(max_diff(&y, &(&x * 1.45).clamp(0.0, 1.0)) < 1e-6);
        // Brightness down (negated): 0.55.
        let y = apply_op(&x, RandOp::Brightness, 5.0, true, &c).unwrap();
        assert!(max_diff(&y, &(&x * 0.55)) < 1e-6);
        // Color 0.55: blend with the 8-bit grayscale of each pixel.
        let y = apply_op(&x, RandOp::Color, 5.0, true, &c).unwrap();
        let lv = as_levels(&x);
        for p in 0..4 {
            let (r, g, b) = (lv[p], lv[4 + p], lv[8 + p]);
            let gray = ((19595.0 * r + 38470.0 * g + 7471.0 * b + 32768.0) / 65536.0f64).floor();
            for (ch, v) in [r, g, b].into_iter().enumerate() {
                let want = (gray + 0.55 * (v - gray)) / 255.0;
                let got = y.double_value(&[0, ch as i64, p as i64 / 2, p as i64 % 2]);
                assert!((got - want).abs() < 1e-6, "{got} {want}");
            }
        }
        // Contrast 0.55: blend with the rounded mean of the grayscale.
        let y = apply_op(&x, RandOp::Contrast, 5.0, true, &c).unwrap();
        let grays: Vec<f64> = (0..4)
            .map(|p| {
                ((19595.0 * lv[p] + 38470.0 * lv[4 + p] + 7471.0 * lv[8 + p] + 32768.0)
                    / 65536.0f64)
                    .floor()
            })
            .collect();
        let mean = (grays.iter().sum::<f64>() / 4.0 + 0.5).floor() / 255.0;
        let want = (&x - mean) * 0.55 + mean;
        assert!(max_diff(&y, &want) < 1e-6);
        // Sharpness: the border is untouched; the centre of a 3x3 blends with the smooth value.
        let x3 = image(&[0.0, 0.0, 0.0, 0.0, 130.0, 0.0, 0.0, 0.0, 0.0], 1, 3, 3);
        let y = apply_op(&x3, RandOp::Sharpness, 5.0, false, &c).unwrap();
        let smooth = (130.0f64 * 5.0 / 13.0).round(); // 50
        let want = smooth + 1.45 * (130.0 - smooth);
        assert!((y.double_value(&[0, 0, 1, 1]) * 255.0 - want).abs() < 1e-3);
        let border = y.sum(Kind::Double).double_value(&[]) - y.double_value(&[0, 0, 1, 1]);
        assert_eq!(border, 0.0);
    }

    #[test]
    fn geometric_ops_move_pixels_and_fill() {
        let _rng = crate::test_rng_lock();
        let c = cfg();
        tch::manual_seed(4);
        let x = Tensor::rand([2, 3, 10, 20], (Kind::Float, Device::Cpu));
        // Rotate and shear at level 0 are the identity.
        for op in [RandOp::Rotate, RandOp::ShearX, RandOp::ShearY] {
            let y = apply_op(&x, op, 0.0, false, &c).unwrap();
            assert!(max_diff(&y, &x) < 1e-5, "{op:?}");
        }
        // TranslateXRel at level 5 with translate_pct 0.2: 0.1 * 20 = 2 pixels; the source of
        // column j is column j + 2, the last 2 columns take the fill.
        let tc = RandAugmentConfig {
            translate_pct: 0.2,
            ..c
        };
        let y = apply_op(&x, RandOp::TranslateXRel, 5.0, false, &tc).unwrap();
        assert!(max_diff(&y.narrow(3, 0, 18), &x.narrow(3, 2, 18)) < 1e-5);
        for (ch, f) in c.fill.iter().enumerate() {
            let tail = y.get(1).get(ch as i64).narrow(1, 18, 2);
            assert!((tail - *f).abs().max().double_value(&[]) < 1e-6);
        }
        // Negated: 2 pixels the other way.
        let y = apply_op(&x, RandOp::TranslateXRel, 5.0, true, &tc).unwrap();
        assert!(max_diff(&y.narrow(3, 2, 18), &x.narrow(3, 0, 18)) < 1e-5);
        // TranslateYRel by 0.1 * 10 = 1 row.
        let y = apply_op(&x, RandOp::TranslateYRel, 5.0, false, &tc).unwrap();
        assert!(max_diff(&y.narrow(2, 0, 9), &x.narrow(2, 1, 9)) < 1e-5);
        // Rotating by 90 degrees (level 30 with mmax 30) on a square is a transpose + flip.
        let sq = Tensor::rand([1, 1, 6, 6], (Kind::Float, Device::Cpu));
        let big = RandAugmentConfig {
            magnitude_max: 30.0,
            ..c
        };
        let y = apply_op(&sq, RandOp::Rotate, 30.0, false, &big).unwrap();
        // Counter-clockwise: output (row i, col j) = input (row j, col W-1-i).
        let want = sq.transpose(2, 3).flip([2]);
        assert!(max_diff(&y, &want) < 1e-5);
        // 1-channel images fill with the luma of the fill colour.
        let g = Tensor::zeros([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        let y = apply_op(&g, RandOp::TranslateXRel, 10.0, false, &c).unwrap();
        let luma = 0.299 * c.fill[0] + 0.587 * c.fill[1] + 0.114 * c.fill[2];
        assert!((y.double_value(&[0, 0, 0, 3]) - luma).abs() < 1e-6);
    }

    #[test]
    fn batch_keeps_shape_kind_device_and_is_reproducible() {
        let _rng = crate::test_rng_lock();
        let c = cfg();
        tch::manual_seed(5);
        let x = Tensor::rand([16, 3, 12, 12], (Kind::Float, Device::Cpu));
        tch::manual_seed(6);
        let a = rand_augment(&x, &c).unwrap();
        assert_eq!(
            (a.size(), a.kind(), a.device()),
            (x.size(), x.kind(), x.device())
        );
        assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
        // Some images change, and the same seed gives the same batch.
        assert!(max_diff(&a, &x) > 0.01);
        tch::manual_seed(6);
        assert!(rand_augment(&x, &c).unwrap().equal(&a));
        tch::manual_seed(7);
        assert!(!rand_augment(&x, &c).unwrap().equal(&a));
        // Double and 1-channel batches work too.
        let xd = x.to_kind(Kind::Double).narrow(1, 0, 1);
        let d = rand_augment(&xd, &c).unwrap();
        assert_eq!((d.size(), d.kind()), (xd.size(), Kind::Double));
        // prob 0 is the identity; prob 1 with 1 op changes almost every image.
        let off = RandAugmentConfig { prob: 0.0, ..c };
        assert!(rand_augment(&x, &off).unwrap().equal(&x));
        let on = RandAugmentConfig {
            prob: 1.0,
            num_ops: 1,
            ..c
        };
        let y = rand_augment(&x, &on).unwrap();
        let changed = (&y - &x)
            .abs()
            .amax(&[1, 2, 3][..], false)
            .gt(1e-4)
            .sum(Kind::Int64)
            .int64_value(&[]);
        assert!(changed >= 12, "{changed}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let _rng = crate::test_rng_lock();
        let c = cfg();
        let e = rand_augment(&Tensor::zeros([3, 8, 8], (Kind::Float, Device::Cpu)), &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[N, C, H, W]") && e.contains("[3, 8, 8]"), "{e}");
        let ints = Tensor::zeros([1, 3, 8, 8], (Kind::Uint8, Device::Cpu));
        assert!(rand_augment(&ints, &c).is_err());
        let four = Tensor::zeros([1, 4, 8, 8], (Kind::Float, Device::Cpu));
        let e = rand_augment(&four, &c).unwrap_err().to_string();
        assert!(
            e.contains("C = 1 or 3") && e.contains("[1, 4, 8, 8]"),
            "{e}"
        );
        let bad = RandAugmentConfig { prob: 2.0, ..c };
        let x = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        assert!(rand_augment(&x, &bad).is_err());
    }

    #[test]
    fn finetuning_defaults_to_it_and_checks_it() {
        let _rng = crate::test_rng_lock();
        use crate::finetune::FinetuneConfig;
        let f = FinetuneConfig::default();
        assert_eq!(f.rand_augment, Some(cfg()));
        let bad = FinetuneConfig {
            rand_augment: Some(RandAugmentConfig { prob: 3.0, ..cfg() }),
            ..f.clone()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("rand_augment.prob") && e.contains('3'), "{e}");
        let off: FinetuneConfig = serde_json::from_str(r#"{"rand_augment": null}"#).unwrap();
        assert_eq!(off.rand_augment, None);
        let m5: FinetuneConfig =
            serde_json::from_str(r#"{"rand_augment": {"magnitude": 5.0}}"#).unwrap();
        assert_eq!(m5.rand_augment.unwrap().magnitude, 5.0);
    }
}
