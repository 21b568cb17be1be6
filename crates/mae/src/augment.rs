//! Batched augmentation on tensors, on the device the batch lives on: `RandomResizedCrop` +
//! horizontal flip (torchvision's parameter sampling, one `grid_sample` for the batch),
//! normalisation, timm's `RandomErasing` and `Mixup` / CutMix with label smoothing.
//!
//! Every random draw comes from torch's generator, so [`train_kit::seed_step`] at the start of
//! a step makes the augmentation of that step reproducible (exact resume).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{MaeError, Result};

/// ImageNet mean and std (torchvision / MAE `Normalize`).
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet per-channel std (torchvision / MAE `Normalize`).
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// `RandomResizedCrop` + flip settings. `Default` is MAE pre-training: scale (0.2, 1), ratio
/// (3/4, 4/3), bicubic, flip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CropConfig {
    /// Range of the crop's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    pub ratio: (f64, f64),
    /// A horizontal flip with probability 1/2.
    pub hflip: bool,
    /// Bicubic (`interpolation=3`, the official choice) or bilinear.
    pub bicubic: bool,
}

impl Default for CropConfig {
    fn default() -> Self {
        Self {
            scale: (0.2, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            hflip: true,
            bicubic: true,
        }
    }
}

impl CropConfig {
    /// Checks `0 < scale.0 <= scale.1 <= 1` and `0 < ratio.0 <= ratio.1` (finite).
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let (r0, r1) = self.ratio;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0 && r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(MaeError::Config(format!(
                "crop scale {:?} must satisfy 0 < lo <= hi <= 1 and ratio {:?} 0 < lo <= hi",
                self.scale, self.ratio
            )));
        }
        Ok(())
    }
}

/// torchvision `RandomResizedCrop.get_params` for an `h x w` image from a stream of uniforms
/// (4 per attempt): `(top, left, crop_h, crop_w)`.
pub fn crop_params(
    h: i64,
    w: i64,
    cfg: &CropConfig,
    u: &mut impl Iterator<Item = f64>,
) -> (i64, i64, i64, i64) {
    let area = (h * w) as f64;
    let (lr0, lr1) = (cfg.ratio.0.ln(), cfg.ratio.1.ln());
    for _ in 0..10 {
        let mut next = || u.next().unwrap_or(0.5);
        let target = area * (cfg.scale.0 + (cfg.scale.1 - cfg.scale.0) * next());
        let aspect = (lr0 + (lr1 - lr0) * next()).exp();
        let cw = (target * aspect).sqrt().round() as i64;
        let ch = (target / aspect).sqrt().round() as i64;
        let (ui, uj) = (next(), next());
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let top = ((ui * (h - ch + 1) as f64) as i64).min(h - ch);
            let left = ((uj * (w - cw + 1) as f64) as i64).min(w - cw);
            return (top, left, ch, cw);
        }
    }
    // Fallback: the central crop at the nearest allowed aspect ratio.
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < cfg.ratio.0 {
        (((w as f64) / cfg.ratio.0).round() as i64, w)
    } else if in_ratio > cfg.ratio.1 {
        (h, ((h as f64) * cfg.ratio.1).round() as i64)
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

fn check_batch(x: &Tensor, what: &str) -> Result<(i64, i64, i64, i64)> {
    let s = x.size();
    if s.len() != 4 || !x.is_floating_point() {
        return Err(MaeError::input(what, "[N, C, H, W] floating point", s));
    }
    Ok((s[0], s[1], s[2], s[3]))
}

/// Random resized crops of every image of `[N, C, H, W]` to `out`, each flipped with
/// probability 1/2 when `cfg.hflip`, in one `grid_sample` (values clamped to the input range,
/// as PIL's 8-bit output is).
pub fn random_resized_crop(x: &Tensor, out: (i64, i64), cfg: &CropConfig) -> Result<Tensor> {
    cfg.validate()?;
    let (n, _, h, w) = check_batch(x, "random_resized_crop input")?;
    if out.0 < 1 || out.1 < 1 || h < 1 || w < 1 {
        return Err(MaeError::input(
            "random_resized_crop",
            format!(
                "non-empty images and an output size of at least 1x1 (got {}x{})",
                out.0, out.1
            ),
            x.size(),
        ));
    }
    let draws = Tensor::rand([n, 41], (Kind::Double, Device::Cpu));
    let draws: Vec<f64> = Vec::<f64>::try_from(draws.flatten(0, -1))?;
    let mut theta = Vec::with_capacity(n as usize * 6);
    for i in 0..n as usize {
        let row = &draws[i * 41..(i + 1) * 41];
        let mut u = row[..40].iter().copied();
        let (top, left, ch, cw) = crop_params(h, w, cfg, &mut u);
        let flip = cfg.hflip && row[40] < 0.5;
        // Output x in [-1, 1] -> input x = cw/W * x + (2 left + cw)/W - 1 (align_corners false).
        let sx = cw as f64 / w as f64 * if flip { -1.0 } else { 1.0 };
        let tx = (2 * left + cw) as f64 / w as f64 - 1.0;
        let sy = ch as f64 / h as f64;
        let ty = (2 * top + ch) as f64 / h as f64 - 1.0;
        theta.extend([sx, 0.0, tx, 0.0, sy, ty]);
    }
    let theta = Tensor::from_slice(&theta)
        .view([n, 2, 3])
        .to_kind(x.kind())
        .to_device(x.device());
    let c = x.size()[1];
    let grid = Tensor::affine_grid_generator(&theta, [n, c, out.0, out.1], false);
    // mode 2 = bicubic, 0 = bilinear; padding 1 = border.
    let mode = if cfg.bicubic { 2 } else { 0 };
    let y = x.grid_sampler(&grid, mode, 1, false);
    // Bicubic overshoots; clamp on the device (no host sync before the forward is queued).
    Ok(y.clamp_tensor(Some(&x.min()), Some(&x.max())))
}

/// `(x - mean[c]) / std[c]` per channel; `mean` and `std` have one entry per channel.
pub fn normalize(x: &Tensor, mean: &[f64], std: &[f64]) -> Result<Tensor> {
    let (_, c, _, _) = check_batch(x, "normalize input")?;
    if mean.len() != c as usize || std.len() != c as usize || std.iter().any(|s| *s <= 0.0) {
        return Err(MaeError::Config(format!(
            "normalisation for {c} channels needs {c} means and {c} positive stds, got \
             {mean:?} and {std:?}"
        )));
    }
    let opts = (x.kind(), x.device());
    let m = Tensor::from_slice(mean)
        .to_kind(opts.0)
        .to(opts.1)
        .view([1, c, 1, 1]);
    let s = Tensor::from_slice(std)
        .to_kind(opts.0)
        .to(opts.1)
        .view([1, c, 1, 1]);
    Ok((x - m) / s)
}

/// timm `RandomErasing(probability, mode="pixel")` after normalisation: with probability `p`
/// per image, one rectangle of 2%-33% of the area, aspect 0.3-3.3, is filled with N(0, 1)
/// noise per pixel and channel.
pub fn random_erasing(x: &Tensor, p: f64) -> Result<Tensor> {
    let (n, c, h, w) = check_batch(x, "random_erasing input")?;
    if p <= 0.0 {
        return Ok(x.shallow_clone());
    }
    let draws: Vec<f64> =
        Vec::<f64>::try_from(Tensor::rand([n, 41], (Kind::Double, Device::Cpu)).flatten(0, -1))?;
    let out = x.copy();
    let (lr0, lr1) = ((0.3f64).ln(), (1.0f64 / 0.3).ln());
    let area = (h * w) as f64;
    for i in 0..n {
        let row = &draws[i as usize * 41..(i as usize + 1) * 41];
        if row[0] >= p {
            continue;
        }
        for a in 0..10 {
            let u = &row[1 + 4 * a..5 + 4 * a];
            let target = area * (0.02 + (1.0 / 3.0 - 0.02) * u[0]);
            let aspect = (lr0 + (lr1 - lr0) * u[1]).exp();
            let eh = (target * aspect).sqrt().round() as i64;
            let ew = (target / aspect).sqrt().round() as i64;
            if eh > 0 && ew > 0 && ew < w && eh < h {
                let top = ((u[2] * (h - eh + 1) as f64) as i64).min(h - eh);
                let left = ((u[3] * (w - ew + 1) as f64) as i64).min(w - ew);
                let noise = Tensor::randn([c, eh, ew], (x.kind(), x.device()));
                out.get(i)
                    .narrow(1, top, eh)
                    .narrow(2, left, ew)
                    .copy_(&noise);
                break;
            }
        }
    }
    Ok(out)
}

/// timm `Mixup` settings (mode "batch"). `Default` is the MAE fine-tuning recipe: mixup 0.8,
/// CutMix 1.0, always one of them, switching with probability 1/2, label smoothing 0.1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixupConfig {
    /// Beta(a, a) parameter of mixup (0 = off).
    pub mixup_alpha: f64,
    /// Beta(a, a) parameter of CutMix (0 = off).
    pub cutmix_alpha: f64,
    /// Probability of mixing a batch at all.
    pub prob: f64,
    /// Probability of CutMix instead of mixup when both are on.
    pub switch_prob: f64,
    /// Label smoothing of the targets.
    pub label_smoothing: f64,
}

impl Default for MixupConfig {
    fn default() -> Self {
        Self {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            prob: 1.0,
            switch_prob: 0.5,
            label_smoothing: 0.1,
        }
    }
}

/// Checks class labels: int64 `[n]` and at least one class.
fn check_labels(labels: &Tensor, n: Option<i64>, classes: i64, what: &str) -> Result<()> {
    let size = labels.size();
    let n_ok = size.len() == 1 && n.is_none_or(|n| size[0] == n);
    if !n_ok || labels.kind() != Kind::Int64 || classes < 1 {
        let batch = n.map_or("N".to_owned(), |n| n.to_string());
        return Err(MaeError::input(
            what,
            format!(
                "int64 labels [{batch}] and classes >= 1 (got {:?}, {classes} classes)",
                labels.kind()
            ),
            size,
        ));
    }
    Ok(())
}

/// Smoothed one-hot targets `[N, classes]`: `1 - s + s/K` on the label, `s/K` elsewhere.
/// `labels` is int64 `[N]` with values in `[0, classes)` (a value outside is a torch error).
pub fn smooth_one_hot(labels: &Tensor, classes: i64, smoothing: f64) -> Result<Tensor> {
    check_labels(labels, None, classes, "smooth_one_hot labels")?;
    let off = smoothing / classes as f64;
    let on = 1.0 - smoothing + off;
    Ok(labels.f_one_hot(classes)?.to_kind(Kind::Float) * (on - off) + off)
}

/// A `Beta(a, a)` draw from two Gamma draws of torch's generator.
fn beta(a: f64) -> f64 {
    let g = Tensor::full([2], a, (Kind::Double, Device::Cpu)).internal_standard_gamma();
    let (x, y) = (g.double_value(&[0]), g.double_value(&[1]));
    if x + y > 0.0 {
        x / (x + y)
    } else {
        0.5
    }
}

/// Mixes the batch with its reverse (timm `Mixup`, mode "batch"): returns the mixed images,
/// the soft targets `[N, classes]` and the mixing weight actually used.
pub fn mixup_cutmix(
    x: &Tensor,
    labels: &Tensor,
    classes: i64,
    cfg: &MixupConfig,
) -> Result<(Tensor, Tensor, f64)> {
    let (n, _, h, w) = check_batch(x, "mixup input")?;
    check_labels(labels, Some(n), classes, "mixup labels")?;
    let u: Vec<f64> = Vec::<f64>::try_from(Tensor::rand([4], (Kind::Double, Device::Cpu)))?;
    let (mut lam, mut cutmix) = (1.0, false);
    let mixup_on = cfg.mixup_alpha > 0.0;
    let cutmix_on = cfg.cutmix_alpha > 0.0;
    if u[0] < cfg.prob && (mixup_on || cutmix_on) {
        cutmix = cutmix_on && (!mixup_on || u[1] < cfg.switch_prob);
        lam = beta(if cutmix {
            cfg.cutmix_alpha
        } else {
            cfg.mixup_alpha
        });
    }
    let flipped = x.flip([0]);
    let mixed = if lam >= 1.0 {
        x.shallow_clone()
    } else if cutmix {
        // rand_bbox with correct_lam: the box area sets lambda.
        let r = (1.0 - lam).sqrt();
        let (cut_h, cut_w) = ((h as f64 * r) as i64, (w as f64 * r) as i64);
        let (cy, cx) = ((u[2] * h as f64) as i64, (u[3] * w as f64) as i64);
        let (yl, yh) = ((cy - cut_h / 2).clamp(0, h), (cy + cut_h / 2).clamp(0, h));
        let (xl, xh) = ((cx - cut_w / 2).clamp(0, w), (cx + cut_w / 2).clamp(0, w));
        let out = x.copy();
        if yh > yl && xh > xl {
            out.narrow(2, yl, yh - yl)
                .narrow(3, xl, xh - xl)
                .copy_(&flipped.narrow(2, yl, yh - yl).narrow(3, xl, xh - xl));
        }
        lam = 1.0 - ((yh - yl) * (xh - xl)) as f64 / (h * w) as f64;
        out
    } else {
        x * lam + flipped * (1.0 - lam)
    };
    let y1 = smooth_one_hot(labels, classes, cfg.label_smoothing)?;
    let y2 = smooth_one_hot(&labels.flip([0]), classes, cfg.label_smoothing)?;
    Ok((mixed, y1 * lam + y2 * (1.0 - lam), lam))
}

/// Cross-entropy against soft targets (timm `SoftTargetCrossEntropy`): `logits` and
/// `targets` are float `[N, K]` of one shape on one device.
pub fn soft_target_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let size = logits.size();
    let ok = size.len() == 2
        && targets.size() == size
        && logits.is_floating_point()
        && targets.is_floating_point()
        && logits.device() == targets.device();
    if !ok {
        return Err(MaeError::input(
            "soft-target cross-entropy",
            format!(
                "float logits [N, K] and targets of the same shape on one device (got targets \
                 {:?} {:?} on {:?}, logits {:?} on {:?})",
                targets.size(),
                targets.kind(),
                targets.device(),
                logits.kind(),
                logits.device()
            ),
            size,
        ));
    }
    Ok((-targets * logits.log_softmax(-1, Kind::Float))
        .sum_dim_intlist(-1, false, None::<Kind>)
        .mean(None::<Kind>))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_params_follow_torchvision() {
        let _rng = test_support::rng_lock();
        let cfg = CropConfig::default();
        // u = (scale 0.5 -> 0.6 area, aspect 0.5 -> ratio 1, i 0, j 1 -> last column).
        let mut u = [0.5, 0.5, 0.0, 0.999].into_iter();
        let (top, left, ch, cw) = crop_params(100, 100, &cfg, &mut u);
        let side = (0.6f64 * 1e4).sqrt().round() as i64; // 77
        assert_eq!((top, left, ch, cw), (0, 100 - side, side, side));
        // Impossible draws fall back to the central crop.
        let wide = CropConfig {
            ratio: (2.0, 3.0),
            scale: (1.0, 1.0),
            ..cfg
        };
        let mut none = std::iter::repeat(1.0);
        assert_eq!(crop_params(10, 10, &wide, &mut none), (2, 0, 5, 10));
    }

    #[test]
    fn full_crop_without_flip_is_identity_and_flip_mirrors() {
        let _rng = test_support::rng_lock();
        tch::manual_seed(1);
        let x = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let whole = CropConfig {
            scale: (1.0, 1.0),
            ratio: (1.0, 1.0),
            hflip: false,
            bicubic: false,
        };
        let y = random_resized_crop(&x, (8, 8), &whole).unwrap();
        assert!(y.allclose(&x, 0.0, 1e-5, false));
        let flips = CropConfig {
            hflip: true,
            ..whole
        };
        let y = random_resized_crop(&x, (8, 8), &flips).unwrap();
        for i in 0..2 {
            let same = (y.get(i) - x.get(i)).abs().max().double_value(&[]) < 1e-5;
            let mirrored = (y.get(i) - x.get(i).flip([2]))
                .abs()
                .max()
                .double_value(&[])
                < 1e-5;
            assert!(same || mirrored);
        }
        assert!(random_resized_crop(&x.view([6, 8, 8]), (8, 8), &whole).is_err());
    }

    #[test]
    fn mixup_targets_sum_to_one_and_match_lambda() {
        let _rng = test_support::rng_lock();
        tch::manual_seed(2);
        let x = Tensor::rand([4, 1, 10, 10], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 3]);
        for _ in 0..5 {
            let (m, t, lam) = mixup_cutmix(&x, &y, 5, &MixupConfig::default()).unwrap();
            assert_eq!(m.size(), x.size());
            let sums = t.sum_dim_intlist(-1, false, None::<Kind>);
            assert!(sums.allclose(&sums.ones_like(), 0.0, 1e-6, false));
            // Image 0 mixes with image 3: its label weight is lam (1 - 0.1 + 0.02 smoothing).
            let want = lam * 0.92 + (1.0 - lam) * 0.02;
            test_support::assert_close(t.double_value(&[0, 0]), want, test_support::Tol::abs(1e-6));
        }
        let t = smooth_one_hot(&y, 5, 0.0).unwrap();
        assert_eq!(t.sum(Kind::Float).double_value(&[]), 4.0);
    }

    #[test]
    fn erasing_changes_a_rectangle_only_when_drawn() {
        let _rng = test_support::rng_lock();
        tch::manual_seed(3);
        let x = Tensor::zeros([8, 1, 16, 16], (Kind::Float, Device::Cpu));
        assert!(random_erasing(&x, 0.0).unwrap().equal(&x));
        let y = random_erasing(&x, 1.0).unwrap();
        for i in 0..8 {
            let changed = y.get(i).ne(0.0).sum(Kind::Int64).int64_value(&[]);
            assert!((4..=16 * 16 / 3 + 16).contains(&changed), "{changed}");
        }
    }
}
