//! The paper's reconstruction figure (Fig. 2-4, official `demo/mae_visualize.ipynb`): per image
//! the original, the masked input, the reconstruction and the reconstruction with the visible
//! patches pasted back, as one PNG grid.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{MaeError, Result};
use crate::model::MaskedAutoencoder;
use crate::patches::{denorm_pix, patchify, unpatchify};

/// The four panels of each image, `[N, C, H, W]` in display range [0, 1].
#[derive(Debug)]
pub struct Reconstruction {
    /// The input images.
    pub original: Tensor,
    /// The input with the removed patches shown as the mean colour.
    pub masked: Tensor,
    /// The decoder's prediction of every patch.
    pub reconstruction: Tensor,
    /// The prediction with the visible patches pasted back.
    pub pasted: Tensor,
    /// The loss of this forward.
    pub loss: f64,
}

/// Runs the model on normalised `imgs` at `mask_ratio` (with `noise` if given) and builds the
/// panels. Under norm-pix the predictions are per-patch normalised; each is mapped back with
/// the mean and variance of the true patch at its place. `mean` / `std` undo the input
/// normalisation for display; masked patches show as 0 in normalised space (the mean colour),
/// as in the official notebook.
pub fn reconstruct(
    model: &MaskedAutoencoder,
    imgs: &Tensor,
    mask_ratio: f64,
    noise: Option<&Tensor>,
    mean: &[f64],
    std: &[f64],
) -> Result<Reconstruction> {
    let cfg = model.config();
    let e = &cfg.encoder;
    let p = e.patch_size;
    let out = tch::no_grad(|| model.forward_masked(imgs, mask_ratio, noise, false))?;
    let pred = out.pred.to_kind(Kind::Float);
    let pred = if cfg.norm_pix_loss {
        denorm_pix(&pred, &patchify(&imgs.to_kind(Kind::Float), p)?)?
    } else {
        pred
    };
    let grid = e.grid_size();
    let recon = unpatchify(&pred, p, e.in_chans, grid)?;
    let mask = out
        .mask
        .to_kind(Kind::Float)
        .unsqueeze(-1)
        .expand([-1, -1, cfg.patch_dim()], false);
    let mask = unpatchify(&mask, p, e.in_chans, grid)?;
    let x = imgs.to_kind(Kind::Float);
    let masked = &x * (1.0 - &mask);
    let pasted = &x * (1.0 - &mask) + &recon * &mask;
    let c = e.in_chans;
    if mean.len() != c as usize || std.len() != c as usize {
        return Err(MaeError::Config(format!(
            "display needs {c} means and stds, got {mean:?} and {std:?}"
        )));
    }
    let m = Tensor::from_slice(mean)
        .view([1, c, 1, 1])
        .to_device(x.device());
    let s = Tensor::from_slice(std)
        .view([1, c, 1, 1])
        .to_device(x.device());
    let show = |t: &Tensor| (t * &s + &m).clamp(0.0, 1.0).to_kind(Kind::Float);
    Ok(Reconstruction {
        original: show(&x),
        masked: show(&masked),
        reconstruction: show(&recon),
        pasted: show(&pasted),
        loss: out.loss.double_value(&[]),
    })
}

/// Writes the panels as a PNG: one row per image, four columns, each tile scaled up `scale`
/// times (nearest) with a 2-pixel white gap, written atomically ([`cvlab_util::AtomicFile`]).
/// The four panels must be `[N, C, H, W]` of one shape with C = 1 or 3 (float; as
/// [`reconstruct`] makes them).
pub fn save_grid(r: &Reconstruction, path: &Path, scale: u32) -> Result<()> {
    let size = r.original.size();
    let panels = [&r.original, &r.masked, &r.reconstruction, &r.pasted];
    let ok = size.len() == 4
        && (size[1] == 1 || size[1] == 3)
        && panels
            .iter()
            .all(|p| p.size() == size && p.is_floating_point());
    if !ok {
        return Err(MaeError::input(
            "reconstruction panels",
            "four float [N, C, H, W] panels of one shape with C = 1 or 3",
            size,
        ));
    }
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let scale = scale.max(1);
    let gap = 2u32;
    let (th, tw) = (h as u32 * scale, w as u32 * scale);
    let (width, height) = (4 * tw + 5 * gap, n as u32 * th + (n as u32 + 1) * gap);
    let mut img = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (col, panel) in panels.iter().enumerate() {
        let data: Vec<f32> = Vec::<f32>::try_from(
            panel
                .to_device(tch::Device::Cpu)
                .contiguous()
                .flatten(0, -1),
        )?;
        for i in 0..n {
            for y in 0..h {
                for x in 0..w {
                    let at = |ch: i64| {
                        let ch = if c == 1 { 0 } else { ch };
                        let v = data[(((i * c + ch) * h + y) * w + x) as usize];
                        (v * 255.0).round().clamp(0.0, 255.0) as u8
                    };
                    let px = image::Rgb([at(0), at(1), at(2)]);
                    let x0 = gap + col as u32 * (tw + gap) + x as u32 * scale;
                    let y0 = gap + i as u32 * (th + gap) + y as u32 * scale;
                    for dy in 0..scale {
                        for dx in 0..scale {
                            img.put_pixel(x0 + dx, y0 + dy, px);
                        }
                    }
                }
            }
        }
    }
    let fail = |reason: String| MaeError::Figure {
        path: path.into(),
        reason,
    };
    let file = cvlab_util::AtomicFile::new(path).map_err(|e| fail(e.to_string()))?;
    img.save_with_format(file.tmp_path(), image::ImageFormat::Png)
        .map_err(|e| fail(e.to_string()))?;
    file.commit().map_err(|e| fail(e.to_string()))
}
