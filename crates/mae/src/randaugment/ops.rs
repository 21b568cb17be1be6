//! The pixel arithmetic of [`super::rand_augment`]'s ops, batched on the device: PIL's
//! affine geometry and fill rule for rotate / shear / translate (one `grid_sample`), and the
//! colour ops on 8-bit levels where PIL's lookup tables, thresholds and "degenerate" images
//! are 8-bit (posterize, solarize, autocontrast, equalize, the enhance blends).

use tch::{Kind, Tensor};

use super::RandOp;

/// PIL's `Image.transform(AFFINE)` coefficients `(a, b, c, d, e, f)` of a geometric op on an
/// `h x w` image: the source of output pixel centre `(x, y)` is `(a x + b y + c, d x + e y +
/// f)` in pixel units (timm's `shear_x`, `shear_y`, `translate_*_rel`, and PIL's `rotate`
/// about the centre, counter-clockwise for positive degrees).
pub(super) fn pixel_affine(op: RandOp, arg: f64, h: i64, w: i64) -> [f64; 6] {
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
pub(super) fn warp(x: &Tensor, mats: &[[f64; 6]], fill: &[f64; 3]) -> Tensor {
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
pub(super) fn colour_op(x: &Tensor, op: RandOp, args: &[f64]) -> Tensor {
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
