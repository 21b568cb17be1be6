//! Patches as the loss sees them: `patchify` / `unpatchify` in the official order
//! (`einsum('nchpwq->nhwpqc')`: row-major patches, each patch `p x p x C` with the channel
//! fastest) and the per-patch statistics of the norm-pix target (paper Sec. 3, Table 1d).

use tch::{Kind, Tensor};

use crate::error::{MaeError, Result};

/// Added to the per-patch variance before the square root (official `forward_loss`).
pub const NORM_PIX_EPS: f64 = 1e-6;

/// `[N, C, H, W]` -> `[N, (H/p) * (W/p), p * p * C]`.
pub fn patchify(imgs: &Tensor, p: i64) -> Result<Tensor> {
    let size = imgs.size();
    let ok = size.len() == 4 && p > 0 && size[2] % p == 0 && size[3] % p == 0;
    if !ok {
        return Err(MaeError::input(
            "patchify",
            format!("[N, C, H, W] with H and W multiples of the patch size {p}"),
            size,
        ));
    }
    let (n, c, h, w) = (size[0], size[1], size[2] / p, size[3] / p);
    Ok(imgs
        .reshape([n, c, h, p, w, p])
        .permute([0, 2, 4, 3, 5, 1])
        .reshape([n, h * w, p * p * c]))
}

/// `[N, h * w, p * p * C]` -> `[N, C, h * p, w * p]`, the inverse of [`patchify`].
pub fn unpatchify(x: &Tensor, p: i64, channels: i64, grid: (i64, i64)) -> Result<Tensor> {
    let size = x.size();
    let (h, w) = grid;
    let positive = p > 0 && channels > 0 && h > 0 && w > 0;
    if !positive || size.len() != 3 || size[1] != h * w || size[2] != p * p * channels {
        return Err(MaeError::input(
            "unpatchify",
            format!(
                "[N, {}, {}] (a {h}x{w} grid of {p}x{p}x{channels} patches)",
                h * w,
                p * p * channels
            ),
            size,
        ));
    }
    let n = size[0];
    Ok(x.reshape([n, h, w, p, p, channels])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([n, channels, h * p, w * p]))
}

/// Checks `[N, L, P]` floating-point patches with P >= 2 (the unbiased variance needs two
/// values).
fn check_patches(patches: &Tensor, what: &str) -> Result<()> {
    let size = patches.size();
    if size.len() != 3 || size[2] < 2 || !patches.is_floating_point() {
        return Err(MaeError::input(
            what,
            format!(
                "patches [N, L, P] with P >= 2, floating point (got {:?})",
                patches.kind()
            ),
            size,
        ));
    }
    Ok(())
}

/// Per-patch mean and unbiased variance of `[N, L, P]` patches, each `[N, L, 1]`.
pub fn patch_stats(patches: &Tensor) -> Result<(Tensor, Tensor)> {
    check_patches(patches, "patch_stats")?;
    let mean = patches.mean_dim(-1, true, None::<Kind>);
    let var = patches.var_dim(-1, true, true);
    Ok((mean, var))
}

/// The norm-pix target: `(x - mean) / sqrt(var + 1e-6)` per patch.
pub fn norm_pix(patches: &Tensor) -> Result<Tensor> {
    let (mean, var) = patch_stats(patches)?;
    Ok((patches - mean) / (var + NORM_PIX_EPS).sqrt())
}

/// Undoes [`norm_pix`] with the statistics of `reference` patches (for display: each
/// predicted patch is rescaled with the mean and variance of the true patch at its place).
/// `pred` and `reference` are `[N, L, P]` of the same shape on the same device.
pub fn denorm_pix(pred: &Tensor, reference: &Tensor) -> Result<Tensor> {
    let (mean, var) = patch_stats(reference)?;
    if pred.size() != reference.size() || pred.device() != reference.device() {
        return Err(MaeError::input(
            "denorm_pix prediction",
            format!(
                "{:?} on {:?}, the reference patches' shape and device (got {:?})",
                reference.size(),
                reference.device(),
                pred.device()
            ),
            pred.size(),
        ));
    }
    Ok(pred * (var + NORM_PIX_EPS).sqrt() + mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;
    use test_support::{assert_close, Tol};

    #[test]
    fn patchify_order_and_inverse() {
        let _rng = test_support::rng_lock();
        // 1 image, 2 channels, 4x6 pixels, patch 2: a 2x3 grid of 8-value patches.
        let x = Tensor::arange(48, (Kind::Float, Device::Cpu)).view([1, 2, 4, 6]);
        let p = patchify(&x, 2).unwrap();
        assert_eq!(p.size(), [1, 6, 8]);
        // Patch (row 1, col 2) is index 5; its value (pp=0, qq=1, c=1) is pixel (c1, y2, x5).
        let want = x.int64_value(&[0, 1, 2, 5]);
        // Order within a patch: (pp, qq, c) -> pp * (2 * 2) + qq * 2 + c.
        assert_eq!(p.int64_value(&[0, 5, 3]), want);
        let back = unpatchify(&p, 2, 2, (2, 3)).unwrap();
        assert!(back.equal(&x));
        assert!(patchify(&x, 4).is_err());
        assert!(unpatchify(&p, 2, 3, (2, 3)).is_err());
    }

    #[test]
    fn norm_pix_uses_unbiased_variance() {
        let _rng = test_support::rng_lock();
        let p = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 6.0]).view([1, 1, 4]);
        // mean 3, unbiased var (4 + 1 + 0 + 9) / 3 = 14/3.
        let n = norm_pix(&p).unwrap();
        let want = -2.0 / (14.0f64 / 3.0 + 1e-6).sqrt();
        assert_close(n.double_value(&[0, 0, 0]), want, Tol::abs(1e-6));
        let back = denorm_pix(&n, &p).unwrap();
        assert!(back.allclose(&p, 0.0, 1e-5, false));
        // Bad patches are errors naming what arrived.
        let e = norm_pix(&p.view([4])).unwrap_err().to_string();
        assert!(e.contains("[N, L, P]") && e.contains("[4]"), "{e}");
        assert!(norm_pix(&p.narrow(2, 0, 1)).is_err());
        assert!(norm_pix(&p.to_kind(Kind::Int64)).is_err());
        let e = denorm_pix(&n.view([1, 2, 2]), &p).unwrap_err().to_string();
        assert!(e.contains("[1, 1, 4]") && e.contains("[1, 2, 2]"), "{e}");
        assert!(unpatchify(&p, 0, 1, (1, 1)).is_err());
    }
}
