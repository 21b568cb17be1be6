//! CenterNet's losses: the penalty-reduced pixel-wise focal loss on the heatmap and the L1
//! losses of size and offset at the object centres.
//!
//! Sources: Zhou et al. 2019, Eq. 1-3; CenterNet `src/lib/models/losses.py` (`_neg_loss`,
//! `RegL1Loss`), `src/lib/models/utils.py` (`_sigmoid`: clamp to `[1e-4, 1 - 1e-4]`,
//! `_transpose_and_gather_feat`), `src/lib/trains/ctdet.py` (`CtdetLoss`: weights 1, 0.1, 1).

use tch::{Kind, Tensor};

use super::error::{CenterNetError, Result};
use super::targets::CenterNetTargets;

/// Focal loss exponents and the loss weights.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossConfig {
    /// Exponent on `(1 - p)` / `p` (alpha = 2 in the paper).
    pub alpha: f64,
    /// Exponent on `(1 - gt)` of the negatives (beta = 4).
    pub beta: f64,
    /// Heatmap weight (1).
    pub hm_weight: f64,
    /// Size weight (0.1).
    pub wh_weight: f64,
    /// Offset weight (1).
    pub off_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            alpha: 2.0,
            beta: 4.0,
            hm_weight: 1.0,
            wh_weight: 0.1,
            off_weight: 1.0,
        }
    }
}

/// The official `_sigmoid`: sigmoid clamped to `[1e-4, 1 - 1e-4]`.
pub fn clamped_sigmoid(logits: &Tensor) -> Tensor {
    logits.sigmoid().clamp(1e-4, 1.0 - 1e-4)
}

/// `_neg_loss` with exponents `alpha`, `beta`: `pred` are probabilities, `gt` the Gaussian
/// heatmap. `-(pos + neg) / num_pos`, or `-neg` when no cell equals 1 (no objects: finite).
pub fn focal_loss(pred: &Tensor, gt: &Tensor, alpha: f64, beta: f64) -> Result<Tensor> {
    if pred.size() != gt.size() {
        return Err(CenterNetError::input(
            "heatmap target",
            format!("the prediction's shape {:?}", pred.size()),
            gt.size(),
        ));
    }
    let pos = gt.eq(1.0).to_kind(Kind::Float);
    let neg = gt.lt(1.0).to_kind(Kind::Float);
    // `1 - x` as one kernel (rsub), and `1 - pred` made once for both terms: on an
    // 8 x 80 x 128 x 128 heatmap each element-wise op is a 42 MB pass, forward and backward.
    let neg_w = gt.rsub_scalar(1.0).pow_tensor_scalar(beta);
    let one_minus = pred.rsub_scalar(1.0);
    let pos_loss = (pred.log() * one_minus.pow_tensor_scalar(alpha) * &pos).sum(Kind::Float);
    let neg_loss = (one_minus.log() * pred.pow_tensor_scalar(alpha) * neg_w * neg).sum(Kind::Float);
    let num_pos = pos.sum(Kind::Float);
    // -(pos + neg) / max(num_pos, 1) equals -neg when there is no positive (pos_loss is 0).
    Ok(-(pos_loss + neg_loss) / num_pos.clamp_min(1.0))
}

/// `_transpose_and_gather_feat`: `[B, D, H, W]` features at flat indices `[B, M]` -> `[B, M, D]`.
pub fn gather_at(feat: &Tensor, ind: &Tensor) -> Result<Tensor> {
    let s = feat.size();
    let i = ind.size();
    if s.len() != 4 || i.len() != 2 || i[0] != s[0] {
        return Err(CenterNetError::input(
            "features to gather",
            format!("[B, D, H, W] with indices [B, M] (indices {i:?})"),
            s,
        ));
    }
    let f = feat
        .permute([0, 2, 3, 1])
        .reshape([s[0], s[2] * s[3], s[1]]);
    let idx = ind.unsqueeze(2).expand([i[0], i[1], s[1]], false);
    Ok(f.gather(1, &idx, false))
}

/// `RegL1Loss`: `sum |pred * mask - target * mask| / (sum(mask expanded over D) + 1e-4)`.
pub fn reg_l1_loss(
    output: &Tensor,
    mask: &Tensor,
    ind: &Tensor,
    target: &Tensor,
) -> Result<Tensor> {
    let pred = gather_at(output, ind)?;
    if pred.size() != target.size() {
        return Err(CenterNetError::input(
            "regression target",
            format!("the gathered prediction's shape {:?}", pred.size()),
            target.size(),
        ));
    }
    let m = mask.unsqueeze(2).expand_as(&pred).to_kind(Kind::Float);
    let l = (&pred * &m - target * &m).abs().sum(Kind::Float);
    Ok(l / (m.sum(Kind::Float) + 1e-4))
}

/// The three losses and their weighted sum.
#[derive(Debug)]
pub struct CenterNetLoss {
    /// Weighted sum (what is minimised).
    pub total: Tensor,
    /// Heatmap focal loss.
    pub hm: Tensor,
    /// Size L1.
    pub wh: Tensor,
    /// Offset L1.
    pub off: Tensor,
}

/// `CtdetLoss` on raw head outputs: heatmap logits `[B, C, H, W]`, sizes and offsets
/// `[B, 2, H, W]`.
pub fn centernet_loss(
    hm_logits: &Tensor,
    wh: &Tensor,
    reg: &Tensor,
    t: &CenterNetTargets,
    cfg: &LossConfig,
) -> Result<CenterNetLoss> {
    let hm = focal_loss(&clamped_sigmoid(hm_logits), &t.hm, cfg.alpha, cfg.beta)?;
    let wh_l = reg_l1_loss(wh, &t.mask, &t.ind, &t.wh)?;
    let off = reg_l1_loss(reg, &t.mask, &t.ind, &t.reg)?;
    let total = &hm * cfg.hm_weight + &wh_l * cfg.wh_weight + &off * cfg.off_weight;
    Ok(CenterNetLoss {
        total,
        hm,
        wh: wh_l,
        off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn focal_loss_by_hand_and_without_objects() {
        let gt = Tensor::from_slice(&[1.0f32, 0.5, 0.0, 0.0]).view([1, 1, 2, 2]);
        let p = Tensor::from_slice(&[0.8f32, 0.3, 0.1, 0.6]).view([1, 1, 2, 2]);
        let l = focal_loss(&p, &gt, 2.0, 4.0).unwrap().double_value(&[]);
        let pos = 0.8f64.ln() * 0.2f64.powi(2);
        let neg = 0.7f64.ln() * 0.09 * 0.0625 + 0.9f64.ln() * 0.01 + 0.4f64.ln() * 0.36;
        assert!((l + pos + neg).abs() < 1e-6, "{l}");
        let none = Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        let l = focal_loss(&p, &none, 2.0, 4.0).unwrap().double_value(&[]);
        let neg = 0.2f64.ln() * 0.64 + 0.7f64.ln() * 0.09 + 0.9f64.ln() * 0.01 + 0.4f64.ln() * 0.36;
        assert!(l.is_finite() && (l + neg).abs() < 1e-6, "{l}");
    }

    #[test]
    fn l1_gathers_at_the_indices_and_empty_mask_is_zero() {
        let out = Tensor::arange(2 * 2 * 3, (Kind::Float, Device::Cpu)).view([1, 2, 2, 3]);
        let ind = Tensor::from_slice(&[4i64, 0]).view([1, 2]);
        let g = gather_at(&out, &ind).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(g.view([-1])).unwrap(),
            vec![4.0, 10.0, 0.0, 6.0]
        );
        let mask = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
        let target = Tensor::from_slice(&[5.0f32, 8.0, 100.0, 100.0]).view([1, 2, 2]);
        let l = reg_l1_loss(&out, &mask, &ind, &target)
            .unwrap()
            .double_value(&[]);
        assert!((l - 3.0 / (2.0 + 1e-4)).abs() < 1e-6, "{l}");
        let zero = Tensor::zeros([1, 2], (Kind::Float, Device::Cpu));
        let l = reg_l1_loss(&out, &zero, &ind, &target)
            .unwrap()
            .double_value(&[]);
        assert_eq!(l, 0.0);
    }
}
