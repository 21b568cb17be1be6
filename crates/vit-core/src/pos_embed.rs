//! Position embeddings: fixed 2-D sin-cos (MAE `util/pos_embed.py`) and resampling of a learned
//! embedding to another grid (timm `resample_abs_pos_embed`, MAE `interpolate_pos_embed`).

use tch::{Kind, Tensor};

use crate::config::PosResample;
use crate::error::{Result, ViTError};

/// 2-D sin-cos embedding of a `grid_h x grid_w` grid, row-major, `[grid_h * grid_w, dim]` in
/// float64. The first half of each row encodes the column (w) index, the second half the row
/// (h) index, as MAE's `get_2d_sincos_pos_embed` does (its `meshgrid(grid_w, grid_h)` puts w first).
/// Each half is `[sin(pos * omega), cos(pos * omega)]` with `omega_i = 1 / 10000^(i / (dim/4))`.
pub fn sincos_2d(dim: i64, grid_h: i64, grid_w: i64) -> Result<Vec<f64>> {
    if dim <= 0 || dim % 4 != 0 {
        return Err(ViTError::Config(format!(
            "2-D sin-cos position embedding needs a width divisible by 4, got {dim}"
        )));
    }
    if grid_h < 0 || grid_w < 0 {
        return Err(ViTError::Config(format!(
            "2-D sin-cos position embedding needs a grid of size >= 0, got {grid_h}x{grid_w}"
        )));
    }
    let quarter = (dim / 4) as usize;
    let omega: Vec<f64> = (0..quarter)
        .map(|i| 1.0 / 10000f64.powf(i as f64 / quarter as f64))
        .collect();
    let mut out = Vec::with_capacity((grid_h * grid_w * dim) as usize);
    for r in 0..grid_h {
        for c in 0..grid_w {
            for pos in [c as f64, r as f64] {
                out.extend(omega.iter().map(|w| (pos * w).sin()));
                out.extend(omega.iter().map(|w| (pos * w).cos()));
            }
        }
    }
    Ok(out)
}

/// The sin-cos embedding as a `[1, prefix + grid_h * grid_w, dim]` float32 tensor whose prefix rows
/// are zero (MAE's `cls_token=True`).
pub fn sincos_2d_tensor(dim: i64, grid_h: i64, grid_w: i64, prefix: i64) -> Result<Tensor> {
    let grid = Tensor::from_slice(&sincos_2d(dim, grid_h, grid_w)?).view([grid_h * grid_w, dim]);
    let zeros = Tensor::zeros([prefix, dim], (Kind::Double, tch::Device::Cpu));
    Ok(Tensor::cat(&[zeros, grid], 0)
        .to_kind(Kind::Float)
        .unsqueeze(0))
}

/// Resamples `pos_embed` `[1, prefix + old_h * old_w, D]` to `new` grid: the prefix rows are kept
/// as they are, the grid is resized bicubically with `align_corners = false` (antialiased or not,
/// as `how` says) in float32 and cast back.
pub fn resample(
    pos_embed: &Tensor,
    old: (i64, i64),
    new: (i64, i64),
    prefix: i64,
    how: PosResample,
) -> Result<Tensor> {
    let size = pos_embed.size();
    if size.len() != 3 || size[0] != 1 || size[1] != prefix + old.0 * old.1 {
        return Err(ViTError::Input {
            expected: format!("position embedding [1, {prefix} + {}x{}, D]", old.0, old.1),
            got: size,
        });
    }
    if old == new {
        return Ok(pos_embed.shallow_clone());
    }
    let dim = size[2];
    let kind = pos_embed.kind();
    let head = pos_embed.narrow(1, 0, prefix);
    let grid = pos_embed
        .narrow(1, prefix, old.0 * old.1)
        .to_kind(Kind::Float)
        .reshape([1, old.0, old.1, dim])
        .permute([0, 3, 1, 2]);
    let out = if how.antialias {
        grid.f_internal_upsample_bicubic2d_aa([new.0, new.1], false, None, None)?
    } else {
        grid.f_upsample_bicubic2d([new.0, new.1], false, None, None)?
    };
    let out = out
        .permute([0, 2, 3, 1])
        .reshape([1, new.0 * new.1, dim])
        .to_kind(kind);
    Ok(Tensor::cat(&[head, out], 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_matches_the_formula() {
        let (dim, gh, gw) = (8, 2, 3);
        let e = sincos_2d(dim, gh, gw).unwrap();
        assert_eq!(e.len(), 48);
        // Token (r=1, c=2) is row 5; quarter = 2, omega = [1, 1/100].
        let row = &e[5 * 8..6 * 8];
        let want = [
            2f64.sin(),
            0.02f64.sin(),
            2f64.cos(),
            0.02f64.cos(),
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
        ];
        for (a, b) in row.iter().zip(want) {
            assert_eq!(*a, b);
        }
        assert!(sincos_2d(6, 2, 2).is_err());
        assert!(sincos_2d(8, -1, 2).is_err());
        assert!(sincos_2d_tensor(8, 2, -3, 1).is_err());
        let t = sincos_2d_tensor(8, 2, 3, 1).unwrap();
        assert_eq!(t.size(), [1, 7, 8]);
        assert_eq!(
            t.get(0).get(0).abs().sum(Kind::Float).double_value(&[]),
            0.0
        );
    }

    #[test]
    fn resample_keeps_prefix_and_identity() {
        let pe = Tensor::randn([1, 1 + 16, 8], (Kind::Float, tch::Device::Cpu));
        let same = resample(&pe, (4, 4), (4, 4), 1, PosResample::default()).unwrap();
        assert!(same.equal(&pe));
        for antialias in [true, false] {
            let up = resample(&pe, (4, 4), (6, 5), 1, PosResample { antialias }).unwrap();
            assert_eq!(up.size(), [1, 31, 8]);
            assert!(up.narrow(1, 0, 1).equal(&pe.narrow(1, 0, 1)));
        }
        // A constant grid stays constant under bicubic resampling.
        let c = Tensor::ones([1, 16, 4], (Kind::Float, tch::Device::Cpu)) * 0.5;
        let r = resample(&c, (4, 4), (7, 3), 0, PosResample::default()).unwrap();
        assert!(r.allclose(&r.full_like(0.5), 0.0, 1e-6, false));
        assert!(resample(&pe, (3, 4), (4, 4), 1, PosResample::default()).is_err());
    }
}
