//! FCOS decoding (official `fcos_core/modeling/rpn/fcos/inference.py`, `FCOSPostProcessor`):
//! per level and image, locations whose class score exceeds `pre_nms_thresh` (0.05) are
//! candidates, ranked by `cls * centre-ness`, the best `pre_nms_top_n` (1000) kept, boxes
//! `(x - l, y - t, x + r, y + b)` clipped to the input; then over all levels one class-wise
//! NMS (0.6, det-core's `batched_nms_t`) and the best `detections_per_image` (100) with score
//! `sqrt(cls * centre-ness)`.

use tch::{Kind, Tensor};

use det_core::data::ImageDetections;
use det_pyramid::Detector;

use super::error::Result;
use super::head::{Fcos, FcosOutputs};

impl Fcos {
    /// Boxes (input pixels), scores and classes per image from head outputs.
    pub fn postprocess(&self, out: &FcosOutputs) -> Result<Vec<ImageDetections>> {
        let cfg = self.config();
        let b = out.cls.first().map_or(0, |c| c.size()[0]);
        let k = cfg.num_classes;
        let (h, w) = out.image;
        let mut res = Vec::with_capacity(b as usize);
        for i in 0..b {
            let (mut boxes, mut scores, mut classes) = (Vec::new(), Vec::new(), Vec::new());
            for l in 0..out.cls.len() {
                let cls = out.cls[l].get(i).sigmoid();
                let ctr = out.ctr[l].get(i).sigmoid();
                let flat = cls.flatten(0, -1);
                let cand = flat.gt(cfg.pre_nms_thresh).nonzero().view([-1]);
                let n = cand.size()[0];
                if n == 0 {
                    continue;
                }
                let loc_idx = cand.divide_scalar_mode(k, "floor");
                let s = (cls * ctr.unsqueeze(1))
                    .flatten(0, -1)
                    .index_select(0, &cand);
                let (s, order) = s.topk(n.min(cfg.pre_nms_top_n), 0, true, true);
                let idx = cand.index_select(0, &order);
                let loc_idx = loc_idx.index_select(0, &order);
                let d = out
                    .reg_pixels(l, cfg.norm_reg_targets)
                    .get(i)
                    .index_select(0, &loc_idx);
                let p = out.locations[l].index_select(0, &loc_idx);
                let (x, y) = (p.select(1, 0), p.select(1, 1));
                let bx = Tensor::stack(
                    &[
                        (&x - d.select(1, 0)).clamp(0.0, w as f64),
                        (&y - d.select(1, 1)).clamp(0.0, h as f64),
                        (&x + d.select(1, 2)).clamp(0.0, w as f64),
                        (&y + d.select(1, 3)).clamp(0.0, h as f64),
                    ],
                    1,
                );
                boxes.push(bx);
                scores.push(s.sqrt());
                classes.push(idx.remainder(k));
            }
            if boxes.is_empty() {
                let dev = out.cls[0].device();
                res.push(ImageDetections {
                    boxes: Tensor::zeros([0, 4], (Kind::Float, dev)),
                    scores: Tensor::zeros([0], (Kind::Float, dev)),
                    classes: Tensor::zeros([0], (Kind::Int64, dev)),
                });
                continue;
            }
            let boxes = Tensor::cat(&boxes, 0);
            let scores = Tensor::cat(&scores, 0);
            let classes = Tensor::cat(&classes, 0);
            let keep = det_core::tensor::batched_nms_t(&boxes, &scores, &classes, cfg.nms_iou)?;
            // batched_nms_t returns the kept indices by decreasing score.
            let keep = keep.narrow(0, 0, keep.size()[0].min(cfg.detections_per_image));
            res.push(ImageDetections {
                boxes: boxes.index_select(0, &keep),
                scores: scores.index_select(0, &keep),
                classes: classes.index_select(0, &keep),
            });
        }
        Ok(res)
    }
}

impl Detector for Fcos {
    fn detect(&self, images: &Tensor) -> det_pyramid::Result<Vec<ImageDetections>> {
        let out = tch::no_grad(|| self.forward_t(images, false))?;
        Ok(self.postprocess(&out)?)
    }
}
