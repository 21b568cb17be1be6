//! The YOLO v1 loss (Redmon et al. 2016, Sec. 2.2, Eq. 3), vectorised over the grid, and
//! darknet's variant (`src/detection_layer.c`, `forward_detection_layer`; targets as
//! `src/data.c`, `fill_truth_region`).
//!
//! Per image, with `1obj_i` = an object's centre falls in cell `i` and `1obj_ij` = predictor
//! `j` of cell `i` is responsible for it (highest IoU with the object among the cell's `B`):
//!
//! ```text
//! l_coord * sum_ij 1obj_ij [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
//! + sum_ij 1obj_ij (C - C^)^2 + l_noobj * sum_ij 1noobj_ij C^2
//! + sum_i 1obj_i sum_c (p(c) - p^(c))^2
//! ```
//!
//! `x, y` are offsets in the cell, `w, h` fractions of the image; the network predicts
//! `sqrt w`, `sqrt h` directly (Sec. 2.2), so the coordinate term compares the prediction
//! with the square root of the target. Class probabilities are raw outputs (no softmax), as
//! both the paper (linear last layer) and darknet (`softmax=0`).
//!
//! darknet's departures, each an option of [`LossConfig`]:
//! - `rescore=1`: the responsible confidence's target is its IoU (detached), not 1;
//! - when every IoU in the cell is 0 the responsible predictor is the one with the lowest
//!   RMSE between the boxes (`box_rmse`, [`TieRule::LowestRmse`]); otherwise the first of the
//!   highest IoU (strict `>`), which is also the paper rule here ([`TieRule::First`]);
//! - boxes narrower or lower than 0.005 of the image are skipped (`min_wh`);
//! - the stored deltas are `lambda (t - o)`, the gradient of `lambda / 2 (t - o)^2`
//!   (`half`); the noobject delta written on every box first is overwritten for the
//!   responsible one, so the result equals `1noobj_ij` of the paper.
//!
//! Both keep one object per cell: the first in ground-truth order whose centre falls in it
//! (`if (truth[index]) continue;` in `fill_truth_region`; darknet shuffles the boxes first,
//! so there a random one wins). The loss is summed over the grid and divided by the images.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Result, YoloError};

/// Which predictor answers for an object when IoUs tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TieRule {
    /// The first predictor with the highest IoU (every IoU 0: predictor 0).
    First,
    /// As darknet: when every IoU is 0, the lowest `box_rmse` (first on ties).
    LowestRmse,
}

/// Weights and rules of the loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// `lambda_coord` (5).
    pub lambda_coord: f64,
    /// `lambda_noobj` (0.5).
    pub lambda_noobj: f64,
    /// Weight of the responsible confidence (darknet `object_scale`, 1).
    pub lambda_obj: f64,
    /// Weight of the class term (darknet `class_scale`, 1).
    pub lambda_class: f64,
    /// Confidence target = IoU of the responsible box (darknet `rescore=1`) instead of 1.
    pub rescore: bool,
    /// Responsible-predictor rule when every IoU is 0.
    pub tie: TieRule,
    /// Multiply by 1/2 so that the gradient equals darknet's deltas.
    pub half: bool,
    /// Objects narrower or lower than this fraction of the image are skipped (darknet 0.005).
    pub min_wh: f64,
}

impl LossConfig {
    /// The paper's Eq. 3.
    pub fn paper() -> Self {
        Self {
            lambda_coord: 5.0,
            lambda_noobj: 0.5,
            lambda_obj: 1.0,
            lambda_class: 1.0,
            rescore: false,
            tie: TieRule::First,
            half: false,
            min_wh: 0.0,
        }
    }

    /// darknet's `detection_layer` with the CVPR-era `yolo.cfg` (rescore, lowest-RMSE rule,
    /// the 0.005 size filter, deltas as gradients).
    pub fn darknet() -> Self {
        Self {
            rescore: true,
            tie: TieRule::LowestRmse,
            half: true,
            min_wh: 0.005,
            ..Self::paper()
        }
    }
}

/// Ground truth on the grid, one object per cell.
#[derive(Debug)]
pub struct GridTargets {
    /// `[N, S, S]` 1 where a cell holds an object, else 0 (prediction kind).
    pub obj: Tensor,
    /// `[N, S, S, 2]` centre offsets in the cell, in `[0, 1)`.
    pub xy: Tensor,
    /// `[N, S, S, 2]` width and height as fractions of the image.
    pub wh: Tensor,
    /// `[N, S, S, C]` one-hot class of the cell's object (zeros elsewhere).
    pub class: Tensor,
    /// Objects placed on the grid (after one-per-cell).
    pub placed: i64,
    /// Valid objects in the batch (before one-per-cell).
    pub objects: i64,
}

/// Places `[N, M, 4]` xyxy boxes (input pixels) with `[N, M]` classes (-1: padding) of an
/// `(h, w)` input on an `S x S` grid, in `kind`. Errors: an image size the grid does not
/// divide, a class outside `[0, C)`, a non-finite box, an image with more objects than cells.
pub fn grid_targets(
    boxes: &Tensor,
    classes: &Tensor,
    (h, w): (i64, i64),
    grid: i64,
    num_classes: i64,
    min_wh: f64,
    kind: Kind,
) -> Result<GridTargets> {
    let s = grid;
    if s < 1 || h % s != 0 || w % s != 0 {
        return Err(YoloError::config(
            "input size",
            format!("an image size the {s}x{s} grid divides"),
            format!("{w}x{h}"),
        ));
    }
    let bs = boxes.size();
    let cs = classes.size();
    if bs.len() != 3 || bs[2] != 4 || cs.len() != 2 || cs[..] != bs[..2] {
        return Err(YoloError::input(
            "target boxes",
            format!("[N, M, 4] boxes with [N, M] classes (classes have shape {cs:?})"),
            bs,
        ));
    }
    let (n, m) = (bs[0], bs[1]);
    let dev = boxes.device();
    let cells = s * s;
    if m == 0 {
        let z = |d: &[i64]| Tensor::zeros(d, (kind, dev));
        return Ok(GridTargets {
            obj: z(&[n, s, s]),
            xy: z(&[n, s, s, 2]),
            wh: z(&[n, s, s, 2]),
            class: z(&[n, s, s, num_classes]),
            placed: 0,
            objects: 0,
        });
    }
    let b = boxes.to_kind(Kind::Double);
    let cls = classes.to_kind(Kind::Int64);
    let present = cls.ge(0);
    let max_cls = cls.max().int64_value(&[]);
    if max_cls >= num_classes {
        return Err(YoloError::Targets(format!(
            "class {max_cls} in the targets, the model has C = {num_classes} classes (0 ..= {})",
            num_classes - 1
        )));
    }
    let finite = b
        .isfinite()
        .all_dim(2, false)
        .logical_or(&present.logical_not());
    if !bool::try_from(finite.all())? {
        return Err(YoloError::Targets(
            "a target box has a NaN or infinite coordinate".into(),
        ));
    }
    let (x1, y1, x2, y2) = (
        b.select(2, 0),
        b.select(2, 1),
        b.select(2, 2),
        b.select(2, 3),
    );
    // darknet's box: centre and size as fractions of the image.
    let cx = (&x1 + &x2) / 2.0 / w as f64;
    let cy = (&y1 + &y2) / 2.0 / h as f64;
    let bw = (&x2 - &x1) / w as f64;
    let bh = (&y2 - &y1) / h as f64;
    let valid = present
        .logical_and(&bw.ge(min_wh))
        .logical_and(&bh.ge(min_wh))
        .logical_and(&bw.gt(0.0))
        .logical_and(&bh.gt(0.0));
    let per_image = valid.sum_dim_intlist(1, false, Kind::Int64);
    let most = per_image.max().int64_value(&[]);
    if most > cells {
        return Err(YoloError::Targets(format!(
            "an image has {most} objects, more than the {s}x{s} = {cells} cells of the grid"
        )));
    }
    let gx = &cx * s as f64;
    let gy = &cy * s as f64;
    let col = gx.floor().clamp(0.0, (s - 1) as f64);
    let row = gy.floor().clamp(0.0, (s - 1) as f64);
    let ox = &gx - &col;
    let oy = &gy - &row;
    let cell = (&row * s as f64 + &col)
        .to_kind(Kind::Int64)
        .where_self(&valid, &Tensor::zeros_like(&cls));
    // The first valid object of each cell: min over object indices (M = none).
    let idx = Tensor::arange(m, (Kind::Int64, dev))
        .unsqueeze(0)
        .expand([n, m], false);
    let key = idx.where_self(&valid, &Tensor::full_like(&idx, m));
    // `scatter_reduce.two` (tch names it `internal_scatter_reduce`).
    let first = Tensor::full([n, cells], m, (Kind::Int64, dev))
        .f_internal_scatter_reduce(1, &cell, &key, "amin", true)?;
    let obj = first.lt(m);
    let g = first.clamp_max(m - 1);
    let pick = |t: &Tensor| t.gather(1, &g, false);
    let objf = obj.to_kind(Kind::Double);
    let xy = Tensor::stack(&[pick(&ox), pick(&oy)], 2) * objf.unsqueeze(2);
    let wh = Tensor::stack(&[pick(&bw), pick(&bh)], 2) * objf.unsqueeze(2);
    let c = pick(&cls).clamp_min(0);
    let class = c.one_hot(num_classes).to_kind(Kind::Double) * objf.unsqueeze(2);
    let placed = obj.sum(Kind::Int64).int64_value(&[]);
    let objects = per_image.sum(Kind::Int64).int64_value(&[]);
    Ok(GridTargets {
        obj: objf.reshape([n, s, s]).to_kind(kind),
        xy: xy.reshape([n, s, s, 2]).to_kind(kind),
        wh: wh.reshape([n, s, s, 2]).to_kind(kind),
        class: class.reshape([n, s, s, num_classes]).to_kind(kind),
        placed,
        objects,
    })
}

/// The loss of one batch, by term (each already weighted and divided by the images).
#[derive(Debug)]
pub struct LossParts {
    /// `lambda_coord` term (x, y, sqrt w, sqrt h of responsible predictors).
    pub coord: Tensor,
    /// Responsible confidences against 1 (or their IoU with rescore).
    pub obj: Tensor,
    /// `lambda_noobj` term (every other predictor's confidence against 0).
    pub noobj: Tensor,
    /// Class probabilities of object cells.
    pub class: Tensor,
    /// The sum of the four.
    pub total: Tensor,
    /// Mean IoU of the responsible predictors (detached; 0 without objects).
    pub mean_iou: f64,
}

/// darknet's `box_iou` of centre-size boxes `[..., 4]` (`x, y, w, h`): 0 when the boxes do
/// not overlap (or the union is empty).
pub fn center_iou(a: &Tensor, b: &Tensor) -> Tensor {
    let overlap = |i: i64, j: i64| {
        let (x1, w1, x2, w2) = (
            a.select(-1, i),
            a.select(-1, j),
            b.select(-1, i),
            b.select(-1, j),
        );
        let left = (&x1 - &w1 / 2.0).maximum(&(&x2 - &w2 / 2.0));
        let right = (&x1 + &w1 / 2.0).minimum(&(&x2 + &w2 / 2.0));
        right - left
    };
    let (ow, oh) = (overlap(0, 2), overlap(1, 3));
    let inter = (&ow * &oh).where_self(
        &ow.ge(0.0).logical_and(&oh.ge(0.0)),
        &Tensor::zeros_like(&ow),
    );
    let area = |t: &Tensor| t.select(-1, 2) * t.select(-1, 3);
    let union = area(a) + area(b) - &inter;
    let safe = union.gt(0.0);
    (&inter / union.where_self(&safe, &Tensor::ones_like(&union)))
        .where_self(&safe, &Tensor::zeros_like(&inter))
}

/// The loss of `[N, S, S, B*5 + C]` predictions against `t` with `B` boxes per cell.
pub fn yolo_loss(
    pred: &Tensor,
    t: &GridTargets,
    boxes: i64,
    cfg: &LossConfig,
) -> Result<LossParts> {
    let ps = pred.size();
    let ts = t.class.size();
    if ps.len() != 4 || ts.len() != 4 || ps[..3] != ts[..3] || ps[3] != boxes * 5 + ts[3] {
        return Err(YoloError::input(
            "predictions",
            format!(
                "[N, S, S, B*5 + C] = [{}, {}, {}, {}] (the targets' grid with B = {boxes})",
                ts.first().copied().unwrap_or(0),
                ts.get(1).copied().unwrap_or(0),
                ts.get(2).copied().unwrap_or(0),
                boxes * 5 + ts.get(3).copied().unwrap_or(0)
            ),
            ps,
        ));
    }
    let (n, s, c) = (ps[0], ps[1], ts[3]);
    let bx = pred.narrow(3, 0, boxes * 5).reshape([n, s, s, boxes, 5]);
    let probs = pred.narrow(3, boxes * 5, c);
    let coords = bx.narrow(4, 0, 4);
    let conf = bx.select(4, 4);
    // Target box per predictor: (x, y) offsets and (sqrt w, sqrt h).
    let txy = t.xy.unsqueeze(3);
    let twh = t.wh.unsqueeze(3);
    let (iou, resp) = tch::no_grad(|| -> (Tensor, Tensor) {
        let d = coords.detach();
        // darknet divides the offsets by S (`out.x /= l.side`) and squares sqrt w, sqrt h.
        let out = Tensor::cat(
            &[d.narrow(4, 0, 2) / s as f64, d.narrow(4, 2, 2).square()],
            4,
        );
        let truth = Tensor::cat(&[&txy / s as f64, twh.shallow_clone()], 4).expand_as(&out);
        let iou = center_iou(&out, &truth);
        let best = iou.argmax(3, false);
        let best = match cfg.tie {
            TieRule::First => best,
            TieRule::LowestRmse => {
                let rmse = (&out - &truth)
                    .square()
                    .sum_dim_intlist(4, false, None)
                    .sqrt();
                let low = rmse.argmin(3, false);
                let any = iou.amax(3, false).gt(0.0);
                best.where_self(&any, &low)
            }
        };
        let resp = best.one_hot(boxes).to_kind(pred.kind()) * t.obj.unsqueeze(3);
        (iou, resp)
    });
    let target_wh = twh.sqrt();
    let dxy = (coords.narrow(4, 0, 2) - &txy)
        .square()
        .sum_dim_intlist(4, false, None);
    let dwh = (coords.narrow(4, 2, 2) - &target_wh)
        .square()
        .sum_dim_intlist(4, false, None);
    let scale = if cfg.half { 0.5 } else { 1.0 } / n.max(1) as f64;
    let coord = ((dxy + dwh) * &resp).sum(pred.kind()) * (cfg.lambda_coord * scale);
    let conf_target = if cfg.rescore {
        iou.shallow_clone()
    } else {
        Tensor::ones_like(&conf)
    };
    let obj = ((&conf - conf_target).square() * &resp).sum(pred.kind()) * (cfg.lambda_obj * scale);
    let noobj = (conf.square() * (-&resp + 1.0)).sum(pred.kind()) * (cfg.lambda_noobj * scale);
    let class = ((probs - &t.class).square() * t.obj.unsqueeze(3)).sum(pred.kind())
        * (cfg.lambda_class * scale);
    let total = &coord + &obj + &noobj + &class;
    let placed = resp.sum(Kind::Double).double_value(&[]);
    let mean_iou = if placed > 0.0 {
        (&iou * &resp).sum(Kind::Double).double_value(&[]) / placed
    } else {
        0.0
    };
    Ok(LossParts {
        coord,
        obj,
        noobj,
        class,
        total,
        mean_iou,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).reshape(shape)
    }

    #[test]
    fn a_box_lands_in_its_cell_with_offsets() {
        // 70x70 image, S = 7 (10 px cells): centre (25, 61) -> col 2, row 6, offsets .5, .1.
        let boxes = t(&[20.0, 56.0, 30.0, 66.0], &[1, 1, 4]);
        let cls = Tensor::from_slice(&[3i64]).reshape([1, 1]);
        let g = grid_targets(&boxes, &cls, (70, 70), 7, 5, 0.0, Kind::Double).unwrap();
        assert_eq!(g.obj.sum(Kind::Double).double_value(&[]), 1.0);
        assert_eq!(g.obj.double_value(&[0, 6, 2]), 1.0);
        assert!((g.xy.double_value(&[0, 6, 2, 0]) - 0.5).abs() < 1e-12);
        assert!((g.xy.double_value(&[0, 6, 2, 1]) - 0.1).abs() < 1e-9);
        assert!((g.wh.double_value(&[0, 6, 2, 0]) - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(g.class.double_value(&[0, 6, 2, 3]), 1.0);
    }

    #[test]
    fn first_object_of_a_cell_wins_and_padding_is_ignored() {
        let boxes = t(
            &[0.0, 0.0, 8.0, 8.0, 1.0, 1.0, 9.0, 9.0, 0.0, 0.0, 0.0, 0.0],
            &[1, 3, 4],
        );
        let cls = Tensor::from_slice(&[1i64, 2, -1]).reshape([1, 3]);
        let g = grid_targets(&boxes, &cls, (20, 20), 2, 3, 0.0, Kind::Float).unwrap();
        assert_eq!((g.placed, g.objects), (1, 2));
        assert_eq!(g.class.double_value(&[0, 0, 0, 1]), 1.0);
        assert_eq!(g.class.double_value(&[0, 0, 0, 2]), 0.0);
    }

    #[test]
    fn bad_targets_are_named() {
        let boxes = t(&[0.0, 0.0, 8.0, 8.0], &[1, 1, 4]);
        let cls = Tensor::from_slice(&[5i64]).reshape([1, 1]);
        let e = grid_targets(&boxes, &cls, (20, 20), 2, 5, 0.0, Kind::Float).unwrap_err();
        assert!(e.to_string().contains("class 5"), "{e}");
        let cls = Tensor::from_slice(&[0i64]).reshape([1, 1]);
        let e = grid_targets(&boxes, &cls, (20, 21), 2, 5, 0.0, Kind::Float).unwrap_err();
        assert!(e.to_string().contains("grid divides"), "{e}");
        let many = Tensor::rand([1, 5, 4], (Kind::Float, Device::Cpu)) * 0.0
            + t(&[0.0, 0.0, 4.0, 4.0], &[1, 1, 4]).to_kind(Kind::Float);
        let cls5 = Tensor::zeros([1, 5], (Kind::Int64, Device::Cpu));
        let e = grid_targets(&many, &cls5, (20, 20), 2, 5, 0.0, Kind::Float).unwrap_err();
        assert!(e.to_string().contains("more than the 2x2 = 4 cells"), "{e}");
        let nan = t(&[0.0, f64::NAN, 4.0, 4.0], &[1, 1, 4]);
        let e = grid_targets(&nan, &cls, (20, 20), 2, 5, 0.0, Kind::Float).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }

    #[test]
    fn a_perfect_prediction_costs_nothing_but_rescore() {
        // One object in cell (0, 0) of a 2x2 grid, B = 2, C = 2.
        let boxes = t(&[0.0, 0.0, 4.0, 6.0], &[1, 1, 4]);
        let cls = Tensor::from_slice(&[1i64]).reshape([1, 1]);
        let g = grid_targets(&boxes, &cls, (20, 20), 2, 2, 0.0, Kind::Double).unwrap();
        let pred = Tensor::zeros([1, 2, 2, 12], (Kind::Double, Device::Cpu));
        let cell = [0.2, 0.3, 0.2f64.sqrt(), 0.3f64.sqrt(), 1.0];
        for (k, v) in cell.iter().enumerate() {
            let _ = pred.get(0).get(0).get(0).get(k as i64).fill_(*v);
        }
        let _ = pred.get(0).get(0).get(0).get(11).fill_(1.0);
        let l = yolo_loss(&pred, &g, 2, &LossConfig::paper()).unwrap();
        assert!(l.total.double_value(&[]).abs() < 1e-12);
        assert!((l.mean_iou - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gradients_reach_every_term_and_empty_batches_only_push_noobj() {
        let g = grid_targets(
            &Tensor::zeros([2, 0, 4], (Kind::Float, Device::Cpu)),
            &Tensor::zeros([2, 0], (Kind::Int64, Device::Cpu)),
            (14, 14),
            7,
            3,
            0.0,
            Kind::Float,
        )
        .unwrap();
        let pred = Tensor::randn([2, 7, 7, 13], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let l = yolo_loss(&pred, &g, 2, &LossConfig::paper()).unwrap();
        let conf = pred.narrow(3, 0, 10).reshape([2, 7, 7, 2, 5]).select(4, 4);
        let want = conf.square().sum(Kind::Float).double_value(&[]) * 0.5 / 2.0;
        assert!((l.total.double_value(&[]) - want).abs() < 1e-4);
        l.total.backward();
        assert!(pred.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}
