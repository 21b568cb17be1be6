//! FCOS losses (Tian et al. 2019, Eq. 2; official `loss.py` `FCOSLossComputation.__call__` and
//! `fcos_core/layers/iou_loss.py` `IOULoss`).
//!
//! - Classification: sigmoid focal loss (alpha 0.25, gamma 2) summed over every location and
//!   class, divided by `max(num_pos, 1)` (the official average over GPUs of the positives).
//! - Regression: IoU loss on `(l, t, r, b)` of the positives, weighted by their centre-ness
//!   targets and divided by the sum of those targets.
//! - Centre-ness: binary cross-entropy with logits against the centre-ness targets, summed
//!   over the positives, divided by `max(num_pos, 1)`.
//!
//! With no positive location in the batch the two positive-only terms are 0 (with a
//! gradient path), the classification term is the focal loss of all-background targets.

use tch::{Kind, Reduction, Tensor};

use det_pyramid::loss::{sigmoid_focal_loss, Reduce};

use super::config::{FcosConfig, IouLossKind};
use super::targets::{centerness_target, LocationTargets};

/// Per-location IoU loss of `(l, t, r, b)` distances `pred` and `target` (`[P, 4]`), as the
/// official `IOULoss.forward` before its reduction: `IoU = (I + 1) / (U + 1)`, GIoU with the
/// enclosing box's area `+ 1e-7`.
pub fn iou_loss_elementwise(pred: &Tensor, target: &Tensor, kind: IouLossKind) -> Tensor {
    let p = |t: &Tensor, i| t.select(1, i);
    let (pl, pt, pr, pb) = (p(pred, 0), p(pred, 1), p(pred, 2), p(pred, 3));
    let (tl, tt, tr, tb) = (p(target, 0), p(target, 1), p(target, 2), p(target, 3));
    let target_area = (&tl + &tr) * (&tt + &tb);
    let pred_area = (&pl + &pr) * (&pt + &pb);
    let w_i = pl.minimum(&tl) + pr.minimum(&tr);
    let h_i = pb.minimum(&tb) + pt.minimum(&tt);
    let g_w = pl.maximum(&tl) + pr.maximum(&tr);
    let g_h = pb.maximum(&tb) + pt.maximum(&tt);
    let ac_union = g_w * g_h + 1e-7;
    let inter = w_i * h_i;
    let union = target_area + pred_area - &inter;
    let ious = (inter + 1.0) / (&union + 1.0);
    match kind {
        IouLossKind::Iou => ious.log().neg(),
        IouLossKind::LinearIou => ious.neg() + 1.0,
        IouLossKind::Giou => {
            let gious = &ious - (&ac_union - &union) / &ac_union;
            gious.neg() + 1.0
        }
    }
}

/// The official `IOULoss.forward` reduction: `sum(loss * weight)` when the weights sum above
/// zero, else `sum(loss)`.
pub fn iou_loss(
    pred: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    kind: IouLossKind,
) -> Tensor {
    let l = iou_loss_elementwise(pred, target, kind);
    match weight {
        Some(w) if w.sum(Kind::Float).double_value(&[]) > 0.0 => (l * w).sum(Kind::Float),
        _ => l.sum(Kind::Float),
    }
}

/// The loss of one batch.
#[derive(Debug)]
pub struct LossParts {
    /// Focal loss / positives.
    pub cls: Tensor,
    /// Centre-ness-weighted IoU loss / sum of centre-ness targets.
    pub reg: Tensor,
    /// Centre-ness BCE / positives.
    pub centerness: Tensor,
    /// `cls + reg + centerness`.
    pub total: Tensor,
    /// Positive locations in the batch.
    pub positives: i64,
}

/// The three FCOS terms from flattened predictions and targets: `logits` `[B, N, K]`,
/// `reg` `[B, N, 4]` (the same units as the targets), `ctr` `[B, N]` logits.
pub fn fcos_loss(
    cfg: &FcosConfig,
    logits: &Tensor,
    reg: &Tensor,
    ctr: &Tensor,
    t: &LocationTargets,
) -> LossParts {
    let k = cfg.num_classes;
    let labels = t.labels.view([-1]);
    let pos = labels.ge(0);
    let one_hot = labels.clamp_min(0).one_hot(k).to_kind(logits.kind())
        * pos.unsqueeze(-1).to_kind(logits.kind());
    let focal = sigmoid_focal_loss(
        &logits.reshape([-1, k]),
        &one_hot,
        cfg.focal_alpha,
        cfg.focal_gamma,
        Reduce::Sum,
    );
    let positives = pos.sum(Kind::Int64).int64_value(&[]);
    let norm = positives.max(1) as f64;
    let cls = focal / norm;
    let (reg_loss, ctr_loss) = if positives > 0 {
        let idx = pos.nonzero().view([-1]);
        let p = reg.reshape([-1, 4]).index_select(0, &idx);
        let g = t.reg.reshape([-1, 4]).index_select(0, &idx);
        let c = ctr.reshape([-1]).index_select(0, &idx);
        let ct = centerness_target(&g);
        let ct_sum = ct.sum(Kind::Float).double_value(&[]);
        let r = iou_loss(&p, &g, Some(&ct), cfg.iou_loss) / ct_sum.max(1e-12);
        let bce =
            c.binary_cross_entropy_with_logits::<Tensor>(&ct, None, None, Reduction::Sum) / norm;
        (r, bce)
    } else {
        (reg.sum(Kind::Float) * 0.0, ctr.sum(Kind::Float) * 0.0)
    };
    LossParts {
        total: &cls + &reg_loss + &ctr_loss,
        cls,
        reg: reg_loss,
        centerness: ctr_loss,
        positives,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn iou_losses_on_known_boxes() {
        let t = Tensor::from_slice(&[2.0f32, 2.0, 2.0, 2.0]).view([1, 4]);
        let p = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 1.0]).view([1, 4]);
        // Target 4x4 = 16, pred 2x2 inside = 4: IoU = (4 + 1) / (16 + 1).
        let iou = 5.0f64 / 17.0;
        let got = |k| iou_loss(&p, &t, None, k).double_value(&[]);
        assert!((got(IouLossKind::Iou) + iou.ln()).abs() < 1e-6);
        assert!((got(IouLossKind::LinearIou) - (1.0 - iou)).abs() < 1e-6);
        // The enclosing box is the target: GIoU = IoU - (16 - 16) / 16.
        assert!((got(IouLossKind::Giou) - (1.0 - iou)).abs() < 1e-5);
        assert!(
            iou_loss(&t, &t, None, IouLossKind::Iou)
                .double_value(&[])
                .abs()
                < 1e-6
        );
        // Zero weights fall back to the plain sum, as the official code.
        let w = Tensor::zeros([1], (Kind::Float, Device::Cpu));
        assert!(
            (iou_loss(&p, &t, Some(&w), IouLossKind::LinearIou).double_value(&[]) - (1.0 - iou))
                .abs()
                < 1e-6
        );
    }

    #[test]
    fn no_positives_gives_a_finite_loss_with_zero_box_terms() {
        let cfg = FcosConfig {
            num_classes: 3,
            ..Default::default()
        };
        let logits =
            Tensor::full([2, 5, 3], -4.6, (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let reg = Tensor::ones([2, 5, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let ctr = Tensor::zeros([2, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let t = LocationTargets {
            labels: Tensor::full([2, 5], -1, (Kind::Int64, Device::Cpu)),
            reg: Tensor::zeros([2, 5, 4], (Kind::Float, Device::Cpu)),
        };
        let l = fcos_loss(&cfg, &logits, &reg, &ctr, &t);
        assert_eq!(l.positives, 0);
        let total = l.total.double_value(&[]);
        assert!(total.is_finite() && total > 0.0, "{total}");
        assert_eq!(l.reg.double_value(&[]), 0.0);
        l.total.backward();
        assert!(reg.grad().defined());
    }

    #[test]
    fn normalisations_follow_the_official_loss() {
        let cfg = FcosConfig {
            num_classes: 2,
            iou_loss: IouLossKind::LinearIou,
            ..Default::default()
        };
        let logits = Tensor::zeros([1, 3, 2], (Kind::Float, Device::Cpu));
        let ctr = Tensor::zeros([1, 3], (Kind::Float, Device::Cpu));
        let tr = Tensor::from_slice(&[2.0f32, 2.0, 2.0, 2.0, 1.0, 4.0, 9.0, 4.0, 0., 0., 0., 0.])
            .view([1, 3, 4]);
        let t = LocationTargets {
            labels: Tensor::from_slice(&[0i64, 1, -1]).view([1, 3]),
            reg: tr.shallow_clone(),
        };
        // Perfect boxes: regression loss 0; centre-ness logits 0 give BCE ln 2 each.
        let l = fcos_loss(&cfg, &logits, &tr, &ctr, &t);
        assert_eq!(l.positives, 2);
        assert!(l.reg.double_value(&[]).abs() < 1e-6);
        let c = [1.0f64, (1.0f64 / 9.0).sqrt()];
        let bce: f64 = c.iter().map(|_| 2f64.ln()).sum::<f64>() / 2.0;
        assert!((l.centerness.double_value(&[]) - bce).abs() < 1e-5);
        // Focal at p = 0.5: 0.25 * 0.25 * ln 2 per positive entry, 0.75 * 0.25 * ln 2 per
        // negative; 2 positives, 4 negatives, divided by 2.
        let want = (2.0 * 0.0625 + 4.0 * 0.1875) * 2f64.ln() / 2.0;
        assert!((l.cls.double_value(&[]) - want).abs() < 1e-5);
    }
}
