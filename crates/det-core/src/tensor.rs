//! Tensor versions of the IoU family and NMS for the model crates (feature `tch`). The IoU
//! matrices are computed with tensor ops on the boxes' device and dtype, with torchvision's
//! formulas; NMS copies boxes and scores to the CPU and runs [`crate::nms()`] (torchvision's own
//! CPU kernel is sequential too), returning int64 indices on the input's device.

use tch::{Device, Kind, Tensor};

use crate::boxes::IouKind;
use crate::error::{DetError, Result};

fn check_boxes(name: &'static str, t: &Tensor) -> Result<i64> {
    let s = t.size();
    if s.len() != 2 || s[1] != 4 {
        return Err(DetError::arg(
            name,
            "a [N, 4] tensor of xyxy boxes",
            format!("{s:?}"),
        ));
    }
    if !matches!(
        t.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(DetError::arg(
            name,
            "a floating-point tensor",
            format!("{:?}", t.kind()),
        ));
    }
    Ok(s[0])
}

/// Pairwise `[N, M]` IoU / GIoU / DIoU / CIoU of `[N, 4]` and `[M, 4]` xyxy boxes.
pub fn pairwise_t(kind: IouKind, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_boxes("boxes1", a)?;
    check_boxes("boxes2", b)?;
    let area = |t: &Tensor| (t.select(1, 2) - t.select(1, 0)) * (t.select(1, 3) - t.select(1, 1));
    let (area1, area2) = (area(a), area(b));
    let a3 = a.unsqueeze(1);
    let lt = a3.narrow(2, 0, 2).maximum(&b.narrow(1, 0, 2));
    let rb = a3.narrow(2, 2, 2).minimum(&b.narrow(1, 2, 2));
    let wh = (rb - lt).clamp_min(0.0);
    let inter = wh.select(2, 0) * wh.select(2, 1);
    let union = area1.unsqueeze(1) + area2.unsqueeze(0) - &inter;
    let iou = &inter / &union;
    if kind == IouKind::Iou {
        return Ok(iou);
    }
    let lti = a3.narrow(2, 0, 2).minimum(&b.narrow(1, 0, 2));
    let rbi = a3.narrow(2, 2, 2).maximum(&b.narrow(1, 2, 2));
    let whi = (rbi - lti).clamp_min(0.0);
    if kind == IouKind::Giou {
        let hull = whi.select(2, 0) * whi.select(2, 1);
        return Ok(&iou - (&hull - &union) / &hull);
    }
    let eps = 1e-7;
    let diag = whi.select(2, 0).square() + whi.select(2, 1).square() + eps;
    let ca = (a.narrow(1, 0, 2) + a.narrow(1, 2, 2)) / 2.0;
    let cb = (b.narrow(1, 0, 2) + b.narrow(1, 2, 2)) / 2.0;
    let d = ca.unsqueeze(1) - cb.unsqueeze(0);
    let dist = d.select(2, 0).square() + d.select(2, 1).square();
    let diou = &iou - dist / diag;
    if kind == IouKind::Diou {
        return Ok(diou);
    }
    let atan =
        |t: &Tensor| ((t.select(1, 2) - t.select(1, 0)) / (t.select(1, 3) - t.select(1, 1))).atan();
    let v = (atan(a).unsqueeze(1) - atan(b).unsqueeze(0)).square()
        * (4.0 / (std::f64::consts::PI * std::f64::consts::PI));
    let alpha = tch::no_grad(|| &v / (-&iou + 1.0 + &v + eps));
    Ok(diou - alpha * v)
}

/// `torchvision.ops.box_iou`.
pub fn box_iou_t(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    pairwise_t(IouKind::Iou, a, b)
}

fn to_cpu_vecs(boxes: &Tensor, scores: &Tensor) -> Result<(Vec<[f64; 4]>, Vec<f64>)> {
    let n = check_boxes("boxes", boxes)?;
    if scores.size() != [n] {
        return Err(DetError::arg(
            "scores",
            format!("a [{n}] tensor"),
            format!("{:?}", scores.size()),
        ));
    }
    if !matches!(
        scores.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(DetError::arg(
            "scores",
            "a floating-point tensor",
            format!("{:?}", scores.kind()),
        ));
    }
    let b = boxes
        .to_device(Device::Cpu)
        .to_kind(Kind::Double)
        .contiguous();
    let s = scores
        .to_device(Device::Cpu)
        .to_kind(Kind::Double)
        .contiguous();
    let flat = Vec::<f64>::try_from(b.view([-1]))
        .map_err(|e| DetError::arg("boxes", "readable values", e))?;
    let sv = Vec::<f64>::try_from(s).map_err(|e| DetError::arg("scores", "readable values", e))?;
    Ok((
        flat.chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect(),
        sv,
    ))
}

fn indices(keep: Vec<usize>, device: Device) -> Tensor {
    Tensor::from_slice(&keep.into_iter().map(|i| i as i64).collect::<Vec<_>>()).to_device(device)
}

/// `torchvision.ops.nms` on tensors: int64 indices of the kept boxes, by descending score.
/// float32 boxes are compared in float32, as torchvision.
pub fn nms_t(boxes: &Tensor, scores: &Tensor, iou_threshold: f64) -> Result<Tensor> {
    let (b, s) = to_cpu_vecs(boxes, scores)?;
    let keep = if boxes.kind() == Kind::Float {
        let b32: Vec<[f32; 4]> = b.iter().map(|x| x.map(|v| v as f32)).collect();
        let s32: Vec<f32> = s.iter().map(|&v| v as f32).collect();
        crate::nms::nms(&b32, &s32, iou_threshold)?
    } else {
        crate::nms::nms(&b, &s, iou_threshold)?
    };
    Ok(indices(keep, boxes.device()))
}

/// `torchvision.ops.batched_nms` on tensors (`classes`: `[N]` integer tensor).
pub fn batched_nms_t(
    boxes: &Tensor,
    scores: &Tensor,
    classes: &Tensor,
    iou_threshold: f64,
) -> Result<Tensor> {
    let (b, s) = to_cpu_vecs(boxes, scores)?;
    if classes.size() != [b.len() as i64] {
        return Err(DetError::arg(
            "classes",
            format!("a [{}] tensor (one class per box)", b.len()),
            format!("{:?}", classes.size()),
        ));
    }
    if !matches!(
        classes.kind(),
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8
    ) {
        return Err(DetError::arg(
            "classes",
            "an integer tensor of class indices",
            format!("{:?}", classes.kind()),
        ));
    }
    let c = Vec::<i64>::try_from(
        classes
            .to_device(Device::Cpu)
            .to_kind(Kind::Int64)
            .contiguous()
            .view([-1]),
    )
    .map_err(|e| DetError::arg("classes", "readable values", e))?;
    let keep = if boxes.kind() == Kind::Float {
        let b32: Vec<[f32; 4]> = b.iter().map(|x| x.map(|v| v as f32)).collect();
        let s32: Vec<f32> = s.iter().map(|&v| v as f32).collect();
        crate::nms::batched_nms(&b32, &s32, &c, iou_threshold)?
    } else {
        crate::nms::batched_nms(&b, &s, &c, iou_threshold)?
    };
    Ok(indices(keep, boxes.device()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::nms_boxes;

    #[test]
    fn tensor_versions_match_the_plain_ones() {
        let (boxes, scores) = nms_boxes(300, 11);
        let flat: Vec<f32> = boxes.iter().flatten().copied().collect();
        let bt = Tensor::from_slice(&flat).view([300, 4]);
        let st = Tensor::from_slice(&scores);
        let keep = Vec::<i64>::try_from(nms_t(&bt, &st, 0.5).unwrap()).unwrap();
        let plain = crate::nms::nms(&boxes, &scores, 0.5).unwrap();
        assert_eq!(keep, plain.iter().map(|&i| i as i64).collect::<Vec<_>>());
        for kind in [IouKind::Iou, IouKind::Giou, IouKind::Diou, IouKind::Ciou] {
            let m = Vec::<f32>::try_from(pairwise_t(kind, &bt, &bt).unwrap().view([-1])).unwrap();
            let p = crate::boxes::pairwise(kind, &boxes, &boxes);
            assert_eq!(p.dim(), (300, 300));
            let worst = m
                .iter()
                .zip(p.iter())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{kind:?}: {worst}");
        }
        assert!(nms_t(&Tensor::zeros([3, 5], (Kind::Float, Device::Cpu)), &st, 0.5).is_err());
        let int_scores = Tensor::zeros([300], (Kind::Int64, Device::Cpu));
        assert!(nms_t(&bt, &int_scores, 0.5).is_err());
        let float_classes = Tensor::zeros([300], (Kind::Float, Device::Cpu));
        assert!(batched_nms_t(&bt, &st, &float_classes, 0.5).is_err());
        let short = Tensor::zeros([299], (Kind::Int64, Device::Cpu));
        assert!(batched_nms_t(&bt, &st, &short, 0.5).is_err());
        let c = Tensor::from_slice(&(0..300i64).map(|i| i % 3).collect::<Vec<_>>());
        assert!(batched_nms_t(&bt, &st, &c, 0.5).unwrap().size()[0] >= keep.len() as i64);
    }
}
