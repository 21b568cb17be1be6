//! Losses of the dense detector.
//!
//! - Sigmoid focal loss (Lin et al. 2017b, arXiv 1708.02002, Eq. 5; torchvision
//!   `ops/focal_loss.py`): `FL = alpha_t (1 - p_t)^gamma BCE(x, t)` with `p_t = p t + (1 - p)(1 -
//!   t)`, `alpha_t = alpha t + (1 - alpha)(1 - t)` (no weighting when `alpha < 0`).
//! - Smooth L1 (Girshick 2015, Fast R-CNN Eq. 3, with detectron2's `beta`; beta 0 is L1).
//! - GIoU loss `1 - GIoU` (Rezatofighi et al. 2019, arXiv 1902.09630, Alg. 1) on decoded boxes.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// How a loss is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduce {
    /// Elementwise.
    None,
    /// Sum.
    Sum,
    /// Mean.
    Mean,
}

fn reduce(t: Tensor, r: Reduce) -> Tensor {
    match r {
        Reduce::None => t,
        Reduce::Sum => t.sum(Kind::Float),
        Reduce::Mean => t.mean(Kind::Float),
    }
}

/// `torchvision.ops.sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction)`.
pub fn sigmoid_focal_loss(
    inputs: &Tensor,
    targets: &Tensor,
    alpha: f64,
    gamma: f64,
    reduction: Reduce,
) -> Tensor {
    let p = inputs.sigmoid();
    let ce =
        inputs.binary_cross_entropy_with_logits::<Tensor>(targets, None, None, Reduction::None);
    let p_t = &p * targets + (p.ones_like() - &p) * (targets.ones_like() - targets);
    let mut loss = ce * (p_t.ones_like() - p_t).pow_tensor_scalar(gamma);
    if alpha >= 0.0 {
        let alpha_t = targets * alpha + (targets.ones_like() - targets) * (1.0 - alpha);
        loss = alpha_t * loss;
    }
    reduce(loss, reduction)
}

/// Smooth L1 with transition `beta` (elementwise `0.5 x^2 / beta` below `beta`, `|x| - 0.5
/// beta` above; plain L1 when `beta` is 0), summed.
pub fn smooth_l1_sum(pred: &Tensor, target: &Tensor, beta: f64) -> Tensor {
    let d = (pred - target).abs();
    if beta <= 0.0 {
        return d.sum(Kind::Float);
    }
    let quad = d.square() * (0.5 / beta);
    let lin = &d - 0.5 * beta;
    quad.where_self(&d.lt(beta), &lin).sum(Kind::Float)
}

/// Elementwise GIoU of `[N, 4]` and `[N, 4]` xyxy boxes.
pub fn giou_elementwise(a: &Tensor, b: &Tensor) -> Tensor {
    let area = |t: &Tensor| {
        (t.select(1, 2) - t.select(1, 0)).clamp_min(0.0)
            * (t.select(1, 3) - t.select(1, 1)).clamp_min(0.0)
    };
    let lt = a.narrow(1, 0, 2).maximum(&b.narrow(1, 0, 2));
    let rb = a.narrow(1, 2, 2).minimum(&b.narrow(1, 2, 2));
    let wh = (rb - lt).clamp_min(0.0);
    let inter = wh.select(1, 0) * wh.select(1, 1);
    let union = area(a) + area(b) - &inter + 1e-7;
    let lti = a.narrow(1, 0, 2).minimum(&b.narrow(1, 0, 2));
    let rbi = a.narrow(1, 2, 2).maximum(&b.narrow(1, 2, 2));
    let whi = (rbi - lti).clamp_min(0.0);
    let hull = whi.select(1, 0) * whi.select(1, 1) + 1e-7;
    &inter / &union - (&hull - &union) / hull
}

/// `sum(1 - GIoU)` of matched boxes.
pub fn giou_loss_sum(pred: &Tensor, target: &Tensor) -> Tensor {
    (giou_elementwise(pred, target).neg() + 1.0).sum(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn focal_loss_matches_the_formula_on_one_value() {
        let x = Tensor::from_slice(&[2.0f32, -1.0]);
        let t = Tensor::from_slice(&[1.0f32, 1.0]);
        let l = Vec::<f32>::try_from(sigmoid_focal_loss(&x, &t, 0.25, 2.0, Reduce::None)).unwrap();
        let p = 1.0 / (1.0 + (-2.0f64).exp());
        let want = 0.25 * (1.0 - p).powi(2) * -(p.ln());
        assert!((l[0] as f64 - want).abs() < 1e-6);
        // gamma 0, alpha < 0: plain BCE.
        let bce = sigmoid_focal_loss(&x, &t, -1.0, 0.0, Reduce::Sum).double_value(&[]);
        let q = 1.0 / (1.0 + 1f64.exp());
        assert!((bce - (-(p.ln()) - q.ln())).abs() < 1e-5);
    }

    #[test]
    fn box_losses_vanish_on_equal_boxes() {
        let a = Tensor::from_slice(&[0.0f32, 0.0, 10.0, 10.0, 5.0, 5.0, 8.0, 9.0]).view([2, 4]);
        assert!(giou_loss_sum(&a, &a).double_value(&[]).abs() < 1e-5);
        let far = &a + 100.0;
        let g = Vec::<f32>::try_from(giou_elementwise(&a, &far)).unwrap();
        assert!(g.iter().all(|&v| (-1.0..-0.9).contains(&v)));
        let z = Tensor::zeros([2, 4], (Kind::Float, Device::Cpu));
        let d = Tensor::from_slice(&[0.05f32, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).view([2, 4]);
        let s = smooth_l1_sum(&d, &z, 0.1).double_value(&[]);
        assert!((s - (0.5 * 0.05 * 0.05 / 0.1 + (0.2 - 0.05))).abs() < 1e-6);
        assert!((smooth_l1_sum(&d, &z, 0.0).double_value(&[]) - 0.25).abs() < 1e-6);
    }
}
