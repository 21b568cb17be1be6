//! Decoding (Redmon et al. 2016, Sec. 2, Eq. 1-2): the class-specific confidence of box `j`
//! in cell `i` is `Pr(class_c | object) * confidence_j`; scores above a threshold, one NMS
//! per class (det-core's `batched_nms_t`), the best `max_detections`, boxes back in input
//! pixels: `cx = (col + x) / S * W`, `w = (sqrt w)^2 * W`, clipped to the image. darknet's
//! `get_detection_boxes` does the same with its flat layout (`thresh` .2 in the demo; 0.005
//! here for AP, which needs the low-score tail).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use det_core::data::ImageDetections;

use crate::error::{Result, YoloError};
use crate::net::Yolo;

/// Thresholds of [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodeConfig {
    /// Class-specific confidences at or below this are dropped.
    pub score_thresh: f64,
    /// IoU of the per-class NMS.
    pub nms_iou: f64,
    /// Detections kept per image (best scores).
    pub max_detections: i64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            score_thresh: 0.005,
            nms_iou: 0.5,
            max_detections: 100,
        }
    }
}

/// Boxes `[N, S*S*B, 4]` (xyxy input pixels) and class-specific scores `[N, S*S*B, C]` of
/// `[N, S, S, B*5 + C]` predictions for an `(h, w)` input.
pub fn boxes_and_scores(pred: &Tensor, boxes: i64, (h, w): (i64, i64)) -> Result<(Tensor, Tensor)> {
    let ps = pred.size();
    if ps.len() != 4 || ps[1] != ps[2] || ps[3] <= boxes * 5 {
        return Err(YoloError::input(
            "predictions",
            format!("[N, S, S, B*5 + C] with B = {boxes} and C >= 1"),
            ps,
        ));
    }
    let (n, s, d) = (ps[0], ps[1], ps[3]);
    let c = d - boxes * 5;
    let p = pred.to_kind(Kind::Float);
    let bx = p.narrow(3, 0, boxes * 5).reshape([n, s, s, boxes, 5]);
    let dev = p.device();
    let ar = Tensor::arange(s, (Kind::Float, dev));
    let col = ar.view([1, 1, s, 1]);
    let row = ar.view([1, s, 1, 1]);
    let cx = (bx.select(4, 0) + col) / s as f64 * w as f64;
    let cy = (bx.select(4, 1) + row) / s as f64 * h as f64;
    let bw = bx.select(4, 2).square() * w as f64;
    let bh = bx.select(4, 3).square() * h as f64;
    let xyxy = Tensor::stack(
        &[
            (&cx - &bw / 2.0).clamp(0.0, w as f64),
            (&cy - &bh / 2.0).clamp(0.0, h as f64),
            (&cx + &bw / 2.0).clamp(0.0, w as f64),
            (&cy + &bh / 2.0).clamp(0.0, h as f64),
        ],
        4,
    )
    .reshape([n, s * s * boxes, 4]);
    let conf = bx.select(4, 4).unsqueeze(4);
    let probs = p.narrow(3, boxes * 5, c).unsqueeze(3);
    let scores = (conf * probs).reshape([n, s * s * boxes, c]);
    Ok((xyxy, scores))
}

/// Detections per image of `[N, S, S, B*5 + C]` predictions for an `(h, w)` input.
pub fn decode(
    pred: &Tensor,
    boxes: i64,
    image: (i64, i64),
    cfg: &DecodeConfig,
) -> Result<Vec<ImageDetections>> {
    let (xyxy, scores) = boxes_and_scores(pred, boxes, image)?;
    let (n, c) = (scores.size()[0], scores.size()[2]);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let s = scores.get(i).flatten(0, -1);
        let keep = s.gt(cfg.score_thresh).nonzero().view([-1]);
        let sc = s.index_select(0, &keep);
        let bi = keep.divide_scalar_mode(c, "floor");
        let cls = keep.remainder(c);
        let bx = xyxy.get(i).index_select(0, &bi);
        let k = det_core::tensor::batched_nms_t(&bx, &sc, &cls, cfg.nms_iou)?;
        let k = k.narrow(0, 0, k.size()[0].min(cfg.max_detections));
        out.push(ImageDetections {
            boxes: bx.index_select(0, &k),
            scores: sc.index_select(0, &k),
            classes: cls.index_select(0, &k),
        });
    }
    Ok(out)
}

/// A [`Yolo`] network with its decoding: a [`det_pyramid::Detector`].
#[derive(Debug)]
pub struct YoloDetector<'a> {
    /// The network.
    pub model: &'a Yolo,
    /// Thresholds.
    pub cfg: DecodeConfig,
}

impl YoloDetector<'_> {
    /// Detections of `[N, 3, input, input]` images in `[0, 1]` (inference mode, no grad).
    pub fn run(&self, images: &Tensor) -> Result<Vec<ImageDetections>> {
        let pred = tch::no_grad(|| self.model.forward_t(images, false))?;
        let (h, w) = (images.size()[2], images.size()[3]);
        decode(&pred, self.model.config().boxes, (h, w), &self.cfg)
    }
}

impl det_pyramid::Detector for YoloDetector<'_> {
    fn detect(&self, images: &Tensor) -> det_pyramid::Result<Vec<ImageDetections>> {
        Ok(self.run(images)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn one_confident_box_comes_back_in_pixels() {
        // S = 2, B = 1, C = 2, a 100x100 input; cell (row 1, col 0), x .5, y .5, w = h = .4.
        let pred = Tensor::zeros([1, 2, 2, 7], (Kind::Float, Device::Cpu));
        let cell = pred.get(0).get(1).get(0);
        for (k, v) in [0.5, 0.5, 0.4f64.sqrt(), 0.4f64.sqrt(), 0.9, 0.1, 0.8]
            .iter()
            .enumerate()
        {
            let _ = cell.get(k as i64).fill_(*v);
        }
        let d = decode(&pred, 1, (100, 100), &DecodeConfig::default()).unwrap();
        let v = d[0].to_vecs().unwrap();
        assert_eq!(v.len(), 2);
        let (b, s, c) = v[0];
        assert_eq!(c, 1);
        assert!((s - 0.72).abs() < 1e-6);
        for (got, want) in b.iter().zip([5.0, 55.0, 45.0, 95.0]) {
            assert!((got - want).abs() < 1e-4, "{b:?}");
        }
    }

    #[test]
    fn nms_merges_duplicates_of_a_class() {
        let pred = Tensor::zeros([2, 1, 1, 11], (Kind::Float, Device::Cpu));
        for j in 0..2 {
            for (k, v) in [0.5, 0.5, 0.5, 0.5, 0.9 - 0.1 * j as f64]
                .iter()
                .enumerate()
            {
                let _ = pred.get(0).get(0).get(0).get(j * 5 + k as i64).fill_(*v);
            }
        }
        let _ = pred.get(0).get(0).get(0).get(10).fill_(1.0);
        let d = decode(&pred, 2, (32, 32), &DecodeConfig::default()).unwrap();
        assert_eq!(d[0].to_vecs().unwrap().len(), 1);
        assert_eq!(d[1].to_vecs().unwrap().len(), 0);
    }
}
