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

mod ops;

use ops::{colour_op, pixel_affine, warp};

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
    /// Checks every field's range; the error names the field and its value.
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
    /// `ImageOps.autocontrast`: each channel's 8-bit range stretched to [0, 255].
    AutoContrast,
    /// `ImageOps.equalize`: each channel's 8-bit histogram equalised.
    Equalize,
    /// `ImageOps.invert`: `1 - x`.
    Invert,
    /// Rotation about the centre by up to 30 degrees, either sign.
    Rotate,
    /// Keeps the top bits of each 8-bit level.
    Posterize,
    /// Inverts the levels above a threshold.
    Solarize,
    /// Adds to the levels below 128 (saturating).
    SolarizeAdd,
    /// `ImageEnhance.Color`: blend with the grayscale image.
    Color,
    /// `ImageEnhance.Contrast`: blend with the grayscale mean.
    Contrast,
    /// `ImageEnhance.Brightness`: blend with black.
    Brightness,
    /// `ImageEnhance.Sharpness`: blend with PIL's 3x3 smoothed image.
    Sharpness,
    /// Horizontal shear by up to 0.3, either sign.
    ShearX,
    /// Vertical shear by up to 0.3, either sign.
    ShearY,
    /// Horizontal shift by up to `translate_pct` of the width, either sign.
    TranslateXRel,
    /// Vertical shift by up to `translate_pct` of the height, either sign.
    TranslateYRel,
}

impl RandOp {
    /// The 15 ops in timm's order (the index a uniform draw picks).
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
