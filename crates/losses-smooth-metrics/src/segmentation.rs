//! Soft IoU (Jaccard), the Lovasz hinge and the Lovasz-Softmax loss (Berman, Rannen Triki,
//! Blaschko 2018, "The Lovasz-Softmax loss", arXiv 1705.08790), beside the hard IoU.
//!
//! The Lovasz extension of the Jaccard loss (Alg. 1 of the paper, `lovasz_grad` in the
//! reference `lovasz_losses.py`): sort the pixel errors in decreasing order, with `gt` the
//! ground truth in that order, `intersection = gts - cumsum(gt)`, `union = gts + cumsum(1 - gt)`,
//! `jaccard = 1 - intersection / union`, and the loss is the dot product of the sorted errors
//! with the first differences of `jaccard`. The hinge takes `errors = 1 - z (2y - 1)` through a
//! ReLU; the softmax takes `|fg_c - p_c|` per class.
//!
//! Conventions kept from the reference: `classes = present` averages over the classes that
//! appear in the labels, the mean of an empty list is 0, a batch of only ignored pixels gives a
//! zero loss with zero gradient. The hard IoU of a class absent from both prediction and labels
//! is 1 (the reference's `EMPTY`); under `classes = all` the soft IoU of a class absent from the
//! labels is `1 - max p_c`, which tends to that value (the Lovasz loss of such a class is
//! `max p_c` too).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::check;
use crate::error::{Result, SmoothError};

/// Which classes a multi-class IoU or Lovasz-Softmax loss averages over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Classes {
    /// The classes present in the labels (the reference's default).
    #[default]
    Present,
    /// Every class.
    All,
    /// These classes, present or not.
    List(Vec<i64>),
}

/// Options of [`lovasz_softmax`]; `Default` = the reference's (`present`, whole batch, no void
/// label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LovaszSoftmax {
    /// Classes averaged over.
    pub classes: Classes,
    /// One loss per image, then their mean (instead of one loss over the batch's pixels).
    pub per_image: bool,
    /// A void label whose pixels are left out.
    pub ignore: Option<i64>,
}

/// The gradient of the Lovasz extension of the Jaccard loss with respect to the sorted errors,
/// for each row of `gt_sorted` (`[.., P]`, 0/1 in error order).
pub fn lovasz_grad(gt_sorted: &Tensor) -> Tensor {
    let k = gt_sorted.kind();
    let gts = gt_sorted.sum_dim_intlist([-1i64].as_slice(), true, k);
    let intersection = &gts - gt_sorted.cumsum(-1, k);
    let union = &gts + (-gt_sorted + 1.0).cumsum(-1, k);
    let jaccard = -(intersection / union) + 1.0;
    let p = jaccard.size().last().copied().unwrap_or(0);
    if p > 1 {
        let tail = jaccard.narrow(-1, 1, p - 1) - jaccard.narrow(-1, 0, p - 1);
        Tensor::cat(&[jaccard.narrow(-1, 0, 1), tail], -1)
    } else {
        jaccard
    }
}

fn mean_or_zero(losses: &[Tensor], zero: &Tensor) -> Tensor {
    match losses.len() {
        0 => zero.shallow_clone(),
        n => Tensor::stack(losses, 0).sum(zero.kind()) / n as f64,
    }
}

fn hinge_flat(logits: &Tensor, labels: &Tensor) -> Tensor {
    if labels.numel() == 0 {
        return logits.sum(logits.kind()) * 0.0;
    }
    let signs = labels * 2.0 - 1.0;
    let errors = -(logits * signs) + 1.0;
    let (sorted, perm) = errors.sort(0, true);
    let grad = lovasz_grad(&labels.index_select(0, &perm));
    sorted.relu().dot(&grad)
}

fn valid_pixels(labels: &Tensor, ignore: Option<i64>) -> Option<Tensor> {
    ignore.map(|i| labels.ne(i))
}

/// The binary Lovasz hinge of `logits [B, ...]` against 0/1 `labels` of the same shape: per
/// image then averaged (`per_image`, the reference's default) or over the batch's pixels;
/// pixels labelled `ignore` are left out.
pub fn lovasz_hinge(
    logits: &Tensor,
    labels: &Tensor,
    per_image: bool,
    ignore: Option<i64>,
) -> Result<Tensor> {
    check::scores("logits", logits)?;
    check::same_shape("labels", logits, labels)?;
    if logits.dim() < 1 {
        return Err(SmoothError::Shape {
            what: "logits",
            expected: "[B, ...] logits".into(),
            got: logits.size(),
            kind: format!("{:?}", logits.kind()),
        });
    }
    let flat = |z: &Tensor, y: &Tensor| -> Result<Tensor> {
        let (z, y) = (z.reshape([-1]), y.reshape([-1]));
        let (z, y) = match valid_pixels(&y, ignore) {
            Some(m) => (z.masked_select(&m), y.masked_select(&m)),
            None => (z, y),
        };
        let y = check::binary_targets("labels", &y, &z)?;
        Ok(hinge_flat(&z, &y))
    };
    if per_image {
        let b = logits.size()[0];
        let losses = (0..b)
            .map(|i| flat(&logits.get(i), &labels.get(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(mean_or_zero(&losses, &(logits.sum(logits.kind()) * 0.0)))
    } else {
        flat(logits, labels)
    }
}

fn class_list(classes: &Classes, c: i64) -> Result<Option<Vec<i64>>> {
    match classes {
        Classes::List(list) => {
            if let Some(&bad) = list.iter().find(|&&k| !(0..c).contains(&k)) {
                return Err(SmoothError::Label {
                    what: "classes",
                    expected: format!("0..{c}"),
                    got: bad as f64,
                });
            }
            Ok(Some(list.clone()))
        }
        _ => Ok(None),
    }
}

/// `[P, C]` probabilities and `[P]` labels with void pixels removed.
fn flatten_probas(probas: &Tensor, labels: &Tensor, ignore: Option<i64>) -> (Tensor, Tensor) {
    let c = probas.size()[1];
    let p = probas
        .movedim([1], [probas.dim() as i64 - 1])
        .reshape([-1, c]);
    let y = labels.reshape([-1]).to_kind(Kind::Int64);
    match valid_pixels(&y, ignore) {
        Some(m) => {
            let idx = m.nonzero().squeeze_dim(1);
            (p.index_select(0, &idx), y.index_select(0, &idx))
        }
        None => (p, y),
    }
}

/// Every class at once: sorts the `[C, P]` errors along the pixels.
fn softmax_flat(p: &Tensor, y: &Tensor, classes: &Classes, list: &Option<Vec<i64>>) -> Tensor {
    let zero = p.sum(p.kind()) * 0.0;
    if y.numel() == 0 {
        return zero;
    }
    let c = p.size()[1];
    let fg = y.one_hot(c).to_kind(p.kind()).transpose(0, 1);
    let errors = (&fg - p.transpose(0, 1)).abs();
    let (sorted, perm) = errors.sort(1, true);
    let grad = lovasz_grad(&fg.gather(1, &perm, false));
    let losses = (sorted * grad).sum_dim_intlist([1i64].as_slice(), false, p.kind());
    let keep: Vec<i64> = match (classes, list) {
        (_, Some(l)) => l.clone(),
        (Classes::All, _) => (0..c).collect(),
        _ => {
            let present = fg
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
                .gt(0.0);
            Vec::<i64>::try_from(&present.nonzero().squeeze_dim(1)).unwrap_or_default()
        }
    };
    if keep.is_empty() {
        return zero;
    }
    let idx = Tensor::from_slice(&keep).to_device(p.device());
    losses.index_select(0, &idx).mean(p.kind())
}

fn multiclass_inputs(
    what: &'static str,
    probas: &Tensor,
    labels: &Tensor,
    ignore: Option<i64>,
) -> Result<i64> {
    check::scores(what, probas)?;
    let s = probas.size();
    if s.len() < 2 || s[1] < 2 || labels.size() != [&s[..1], &s[2..]].concat() {
        return Err(SmoothError::Shape {
            what,
            expected: format!(
                "[B, C >= 2, ...] scores for labels of shape {:?} ([B, ...])",
                labels.size()
            ),
            got: s,
            kind: format!("{:?}", probas.kind()),
        });
    }
    check::class_labels("labels", labels, s[1], ignore)?;
    Ok(s[1])
}

/// The multi-class Lovasz-Softmax loss of class probabilities `probas [B, C, ...]` (a softmax
/// over dim 1) against class indices `labels [B, ...]`.
pub fn lovasz_softmax(probas: &Tensor, labels: &Tensor, opts: &LovaszSoftmax) -> Result<Tensor> {
    let c = multiclass_inputs("probas", probas, labels, opts.ignore)?;
    let list = class_list(&opts.classes, c)?;
    if opts.per_image {
        let b = probas.size()[0];
        let losses: Vec<Tensor> = (0..b)
            .map(|i| {
                let (p, y) = flatten_probas(
                    &probas.get(i).unsqueeze(0),
                    &labels.get(i).unsqueeze(0),
                    opts.ignore,
                );
                softmax_flat(&p, &y, &opts.classes, &list)
            })
            .collect();
        Ok(mean_or_zero(&losses, &(probas.sum(probas.kind()) * 0.0)))
    } else {
        let (p, y) = flatten_probas(probas, labels, opts.ignore);
        Ok(softmax_flat(&p, &y, &opts.classes, &list))
    }
}

fn selected(classes: &Classes, c: i64, present: &[bool]) -> Result<Vec<usize>> {
    Ok(match class_list(classes, c)? {
        Some(l) => l.iter().map(|&k| k as usize).collect(),
        None => (0..c as usize)
            .filter(|&k| *classes == Classes::All || present[k])
            .collect(),
    })
}

/// Soft mean IoU of `softmax(logits / tau)` (`logits [B, C, ...]`) against `labels [B, ...]`,
/// over the batch's pixels: per class `sum p t / sum (p + t - p t)`, averaged over `classes`
/// (an empty selection gives 1, no class to get wrong). Tends to [`mean_iou`] of the argmax.
pub fn soft_iou(logits: &Tensor, labels: &Tensor, tau: f64, classes: &Classes) -> Result<Tensor> {
    check::temperature("tau", tau)?;
    let c = multiclass_inputs("logits", logits, labels, None)?;
    let p = (logits / tau).softmax(1, logits.kind());
    let (p, y) = flatten_probas(&p, labels, None);
    let t = y.one_hot(c).to_kind(p.kind());
    let k = p.kind();
    let inter = (&p * &t).sum_dim_intlist([0i64].as_slice(), false, k);
    let union = (&p + &t - &p * &t).sum_dim_intlist([0i64].as_slice(), false, k);
    let gts = t.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
    let present: Vec<bool> = Vec::<f64>::try_from(&gts)?
        .iter()
        .map(|&g| g > 0.0)
        .collect();
    // A class absent from the labels: 1 - max p (its Lovasz value), -> 1 if never predicted.
    let absent = 1.0 - p.amax([0], false);
    let per_class = (inter / union.clamp_min(1e-12)).where_self(&gts.gt(0.0), &absent);
    let keep = selected(classes, c, &present)?;
    if keep.is_empty() {
        return Ok(p.sum(k) * 0.0 + 1.0);
    }
    let idx = Tensor::from_slice(&keep.iter().map(|&k| k as i64).collect::<Vec<_>>())
        .to_device(p.device());
    Ok(per_class.index_select(0, &idx).mean(k))
}

/// The soft Jaccard loss, `1 - soft_iou`.
pub fn soft_jaccard_loss(
    logits: &Tensor,
    labels: &Tensor,
    tau: f64,
    classes: &Classes,
) -> Result<Tensor> {
    Ok(1.0 - soft_iou(logits, labels, tau, classes)?)
}

/// Per-class IoU of predicted class indices `pred` against `labels` (same shape), over all
/// pixels (the dataset-level IoU of the reference's `iou`, `per_image = False`): `None` for a
/// class absent from both, whose IoU counts as 1 in [`mean_iou`] when it is selected. Pixels
/// labelled `ignore` are left out.
pub fn per_class_iou(
    pred: &Tensor,
    labels: &Tensor,
    num_classes: i64,
    ignore: Option<i64>,
) -> Result<Vec<Option<f64>>> {
    check::same_shape("labels", pred, labels)?;
    check::class_labels("pred", pred, num_classes, None)?;
    check::class_labels("labels", labels, num_classes, ignore)?;
    let (p, y) = (
        pred.reshape([-1]).to_kind(Kind::Int64),
        labels.reshape([-1]).to_kind(Kind::Int64),
    );
    let (p, y) = match ignore {
        Some(i) => {
            let m = y.ne(i);
            (p.masked_select(&m), y.masked_select(&m))
        }
        None => (p, y),
    };
    let joint = (&y * num_classes + &p).bincount::<Tensor>(None, num_classes * num_classes);
    let m = Vec::<i64>::try_from(&joint)?;
    let n = num_classes as usize;
    Ok((0..n)
        .map(|c| {
            let inter = m[c * n + c];
            let row: i64 = (0..n).map(|j| m[c * n + j]).sum();
            let col: i64 = (0..n).map(|i| m[i * n + c]).sum();
            let union = row + col - inter;
            (union > 0).then(|| inter as f64 / union as f64)
        })
        .collect())
}

/// Mean IoU over `classes` of [`per_class_iou`]: a class absent from both counts 1 (the
/// reference's `EMPTY`); `present` means present in the labels; an empty selection gives 1.
pub fn mean_iou(
    pred: &Tensor,
    labels: &Tensor,
    num_classes: i64,
    classes: &Classes,
    ignore: Option<i64>,
) -> Result<f64> {
    let per = per_class_iou(pred, labels, num_classes, ignore)?;
    let y = labels.reshape([-1]).to_kind(Kind::Int64);
    let y = match ignore {
        Some(i) => y.masked_select(&y.ne(i)),
        None => y,
    };
    let counts = Vec::<i64>::try_from(&y.bincount::<Tensor>(None, num_classes))?;
    let present: Vec<bool> = counts.iter().map(|&c| c > 0).collect();
    let keep = selected(classes, num_classes, &present)?;
    if keep.is_empty() {
        return Ok(1.0);
    }
    Ok(keep.iter().map(|&k| per[k].unwrap_or(1.0)).sum::<f64>() / keep.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fd_check, rand64};
    use tch::Device;

    fn labels(shape: &[i64], c: i64, seed: i64) -> Tensor {
        let _g = test_support::rng_lock();
        tch::manual_seed(seed);
        Tensor::randint(c, shape, (Kind::Int64, Device::Cpu))
    }

    #[test]
    fn lovasz_grad_matches_the_algorithm_by_hand() {
        // gt = [1, 0, 1]: gts 2; I = [1, 1, 0]; U = [2, 3, 3]; J = [1/2, 2/3, 1].
        let g = lovasz_grad(&Tensor::from_slice(&[1.0f64, 0.0, 1.0]));
        let v = Vec::<f64>::try_from(&g).unwrap();
        let want = [0.5, 2.0 / 3.0 - 0.5, 1.0 - 2.0 / 3.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn lovasz_on_saturated_predictions_is_the_jaccard_loss() {
        // One-hot probabilities of a prediction: the Lovasz-Softmax equals 1 - mIoU (present).
        let y = labels(&[2, 6, 5], 4, 21);
        let pred = labels(&[2, 6, 5], 4, 22);
        let p = pred.one_hot(4).to_kind(Kind::Double).permute([0, 3, 1, 2]);
        let l = lovasz_softmax(&p, &y, &LovaszSoftmax::default())
            .unwrap()
            .double_value(&[]);
        let miou = mean_iou(&pred, &y, 4, &Classes::Present, None).unwrap();
        assert!((l - (1.0 - miou)).abs() < 1e-12, "{l} vs 1 - {miou}");
        // The hinge on +-1 logits of a prediction: 1 - IoU of the foreground... times 2 margin
        // per wrong pixel; on a perfect prediction with margin >= 1 it is 0.
        let t = y.remainder(2).to_kind(Kind::Double);
        let z = (&t * 2.0 - 1.0) * 3.0;
        let h = lovasz_hinge(&z, &t, true, None).unwrap().double_value(&[]);
        assert_eq!(h, 0.0);
    }

    #[test]
    fn soft_iou_tends_to_the_hard_iou() {
        let z = rand64(&[2, 5, 6, 6], 23) * 2.0;
        let mut y = labels(&[2, 6, 6], 5, 24);
        // Class 4 absent from the labels.
        y = y.where_scalarother(&y.ne(4), 0);
        let pred = z.argmax(1, false);
        for classes in [Classes::Present, Classes::All, Classes::List(vec![0, 4])] {
            let soft = soft_iou(&z, &y, 1e-5, &classes).unwrap().double_value(&[]);
            let hard = mean_iou(&pred, &y, 5, &classes, None).unwrap();
            assert!((soft - hard).abs() < 1e-6, "{classes:?}: {soft} vs {hard}");
        }
    }

    #[test]
    fn empty_classes_and_void_pixels() {
        let y = Tensor::from_slice(&[0i64, 0, 1, 1]).view([1, 2, 2]);
        let z = rand64(&[1, 3, 2, 2], 25);
        let p = z.softmax(1, Kind::Double);
        let present = lovasz_softmax(&p, &y, &LovaszSoftmax::default()).unwrap();
        let all = lovasz_softmax(
            &p,
            &y,
            &LovaszSoftmax {
                classes: Classes::All,
                ..Default::default()
            },
        )
        .unwrap();
        // Class 2 is absent: under `all` its loss is max p_2, so the mean changes accordingly.
        let max2 = p.select(1, 2).max().double_value(&[]);
        let want = (present.double_value(&[]) * 2.0 + max2) / 3.0;
        assert!((all.double_value(&[]) - want).abs() < 1e-12);
        // Every pixel void: zero loss with a zero gradient, not NaN.
        let void = y.full_like(255);
        let pg = p.detach().set_requires_grad(true);
        let l = lovasz_softmax(
            &pg,
            &void,
            &LovaszSoftmax {
                ignore: Some(255),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.double_value(&[]), 0.0);
        l.backward();
        assert_eq!(pg.grad().abs().sum(Kind::Double).double_value(&[]), 0.0);
        let h = lovasz_hinge(&z.select(1, 0), &void, true, Some(255)).unwrap();
        assert_eq!(h.double_value(&[]), 0.0);
        // A class selected in a list but absent from labels and predictions: IoU 1.
        let pred = y.copy();
        assert_eq!(
            mean_iou(&pred, &y, 3, &Classes::List(vec![2]), None).unwrap(),
            1.0
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let z = rand64(&[2, 3, 4, 4], 26);
        let y = labels(&[2, 4, 4], 3, 27);
        for opts in [
            LovaszSoftmax::default(),
            LovaszSoftmax {
                classes: Classes::All,
                per_image: true,
                ignore: None,
            },
        ] {
            fd_check("lovasz_softmax", &z, |z| {
                lovasz_softmax(&z.softmax(1, Kind::Double), &y, &opts).unwrap()
            });
        }
        let t = y.remainder(2).to_kind(Kind::Double);
        let zb = z.select(1, 0);
        fd_check("lovasz_hinge", &zb, |z| {
            lovasz_hinge(z, &t, true, None).unwrap()
        });
        fd_check("lovasz_hinge batch", &zb, |z| {
            lovasz_hinge(z, &t, false, None).unwrap()
        });
        fd_check("soft_jaccard", &z, |z| {
            soft_jaccard_loss(z, &y, 0.5, &Classes::All).unwrap()
        });
    }

    #[test]
    fn bad_inputs_are_errors() {
        let z = rand64(&[1, 3, 2, 2], 28);
        let y = Tensor::from_slice(&[0i64, 3, 1, 1]).view([1, 2, 2]);
        assert!(matches!(
            lovasz_softmax(&z, &y, &LovaszSoftmax::default()),
            Err(SmoothError::Label { .. })
        ));
        let wrong = Tensor::zeros([1, 3, 2], (Kind::Int64, Device::Cpu));
        assert!(matches!(
            soft_iou(&z, &wrong, 1.0, &Classes::All),
            Err(SmoothError::Shape { .. })
        ));
        let ok = Tensor::zeros([1, 2, 2], (Kind::Int64, Device::Cpu));
        let list = LovaszSoftmax {
            classes: Classes::List(vec![5]),
            ..Default::default()
        };
        assert!(matches!(
            lovasz_softmax(&z, &ok, &list),
            Err(SmoothError::Label { .. })
        ));
        let not_binary = y.to_kind(Kind::Double);
        assert!(matches!(
            lovasz_hinge(&z.select(1, 0), &not_binary, false, None),
            Err(SmoothError::Label { .. })
        ));
    }
}
