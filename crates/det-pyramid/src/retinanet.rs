//! A RetinaNet-style dense detector over any pyramid (Lin et al. 2017b, "Focal Loss for Dense
//! Object Detection", arXiv 1708.02002, Sec. 4): per level, a classification subnet and a box
//! subnet (four 3x3 convs with ReLU each, shared across levels), `A * K` sigmoid scores and
//! `A * 4` box deltas per location; IoU assignment 0.5 / 0.4, focal loss normalised by the
//! positive anchors, box regression on positives; the classification prior `pi = 0.01`
//! (bias `-log((1 - pi) / pi)`, weights N(0, 0.01)). Decoding follows torchvision
//! `models/detection/retinanet.py` (`postprocess_detections`): per level, scores above 0.05,
//! the best 1000, decoded and clipped; one class-wise NMS (0.5) over all levels.
//!
//! The pyramid comes from a [`Backbone`]: ResNet + FPN ([`ResNetFpn`], which with
//! [`crate::FpnConfig::c5_only`] is also the single-scale baseline) or TridentNet
//! ([`crate::trident::TridentNet`]), so the same head compares them.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use det_core::data::{DetBatch, ImageDetections};

use crate::anchors::{grid_anchors, AnchorConfig};
use crate::assign::{assign, decode, encode, MatcherConfig, IGNORED};
use crate::error::{PyramidError, Result};
use crate::fpn::{Fpn, FpnConfig, Pyramid};
use crate::levels::ValidRange;
use crate::loss::{giou_loss_sum, sigmoid_focal_loss, smooth_l1_sum, Reduce};
use crate::resnet::{ResNet, ResNetConfig};

/// Something that turns an image batch into feature maps for the head.
pub trait Backbone {
    /// The maps of `[B, 3, H, W]` images (already normalised).
    fn features(&self, images: &Tensor, train: bool) -> Result<Pyramid>;
    /// Channels of every map.
    fn out_channels(&self) -> i64;
    /// Maps a full forward returns (levels or branches).
    fn num_levels(&self) -> usize;
}

/// A detector: images in, boxes, scores and classes out in the images' pixel coordinates.
/// Image-pyramid and tiled inference ([`crate::inference`]) and the evaluation helper work on
/// any implementation.
pub trait Detector {
    /// Detections per image of a `[B, C, H, W]` float batch in `[0, 1]`.
    fn detect(&self, images: &Tensor) -> Result<Vec<ImageDetections>>;
}

/// A ResNet trunk with an FPN on top.
#[derive(Debug)]
pub struct ResNetFpn {
    /// The trunk.
    pub trunk: ResNet,
    /// The pyramid.
    pub fpn: Fpn,
}

impl ResNetFpn {
    /// Builds `p / "body"` (the trunk) and `p / "fpn"`, as torchvision's `BackboneWithFPN`.
    pub fn new(p: &nn::Path, trunk: &ResNetConfig, fpn: &FpnConfig) -> Result<Self> {
        let trunk = ResNet::new(&(p / "body"), trunk)?;
        let fpn = Fpn::new(&(p / "fpn"), fpn)?;
        Ok(Self { trunk, fpn })
    }
}

impl Backbone for ResNetFpn {
    fn features(&self, images: &Tensor, train: bool) -> Result<Pyramid> {
        let f = self.trunk.forward_t(images, train)?;
        self.fpn.forward_features(&f)
    }

    fn out_channels(&self) -> i64 {
        self.fpn.config().out_channels
    }

    fn num_levels(&self) -> usize {
        self.fpn.config().levels().len()
    }
}

/// The box regression loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum BoxLoss {
    /// Smooth L1 on the deltas with transition `beta` (0: L1, torchvision's RetinaNet;
    /// detectron2 uses 0.1).
    SmoothL1 {
        /// The transition point.
        beta: f64,
    },
    /// `1 - GIoU` on the decoded boxes.
    Giou,
}

/// The detector's configuration. `Default`: the paper's RetinaNet on P3-P7 with 80 classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetinaNetConfig {
    /// Object classes (no background class).
    pub num_classes: i64,
    /// Anchor sizes and ratios, one entry per backbone level.
    pub anchors: AnchorConfig,
    /// IoU thresholds.
    pub matcher: MatcherConfig,
    /// Focal loss alpha (0.25).
    pub focal_alpha: f64,
    /// Focal loss gamma (2).
    pub focal_gamma: f64,
    /// Box loss.
    pub box_loss: BoxLoss,
    /// 3x3 convs in each subnet (4).
    pub head_convs: usize,
    /// The classification prior pi (0.01).
    pub prior: f64,
    /// Scores at or below are dropped before NMS (0.05).
    pub score_thresh: f64,
    /// Candidates kept per level before NMS (1000).
    pub topk_candidates: i64,
    /// NMS IoU (0.5).
    pub nms_iou: f64,
    /// Detections kept per image (100, detectron2's `TEST.DETECTIONS_PER_IMAGE`).
    pub detections_per_image: i64,
    /// Per level, the sizes (`sqrt(wh)` in original-image pixels) it is trained on and detects
    /// (TridentNet's scale-aware ranges); empty: every level sees every size and anchors are
    /// matched across levels at once (RetinaNet).
    pub level_ranges: Vec<ValidRange>,
    /// ImageNet mean / std normalisation of the `[0, 1]` input.
    pub normalize: bool,
}

impl Default for RetinaNetConfig {
    fn default() -> Self {
        Self {
            num_classes: 80,
            anchors: AnchorConfig::default(),
            matcher: MatcherConfig::default(),
            focal_alpha: 0.25,
            focal_gamma: 2.0,
            box_loss: BoxLoss::SmoothL1 { beta: 0.1 },
            head_convs: 4,
            prior: 0.01,
            score_thresh: 0.05,
            topk_candidates: 1000,
            nms_iou: 0.5,
            detections_per_image: 100,
            level_ranges: Vec::new(),
            normalize: true,
        }
    }
}

/// The head's raw outputs with their anchors.
#[derive(Debug)]
pub struct HeadOutputs {
    /// Per map, `[B, H_l * W_l * A, K]` logits.
    pub cls: Vec<Tensor>,
    /// Per map, `[B, H_l * W_l * A, 4]` deltas.
    pub reg: Vec<Tensor>,
    /// Per map, `[H_l * W_l * A, 4]` anchors in input pixels.
    pub anchors: Vec<Tensor>,
    /// Per map, its index in the per-level settings.
    pub ids: Vec<usize>,
    /// The input's `(h, w)`.
    pub image: (i64, i64),
}

/// The loss of one batch.
#[derive(Debug)]
pub struct LossParts {
    /// Focal loss / positives.
    pub cls: Tensor,
    /// Box loss / positives.
    pub reg: Tensor,
    /// `cls + reg`.
    pub total: Tensor,
    /// Positive anchors in the batch.
    pub positives: i64,
}

/// Ground truth of a batch for [`RetinaNet::loss`], from a [`DetBatch`].
#[derive(Debug)]
pub struct Targets<'a> {
    /// `[B, M, 4]` xyxy boxes in input pixels.
    pub boxes: &'a Tensor,
    /// `[B, M]` classes, -1 where padded.
    pub classes: &'a Tensor,
    /// `[B, M]` crowd / difficult boxes, never matched (ignored).
    pub ignore: Option<&'a Tensor>,
    /// Input pixels per original-image pixel (a SNIP training scale), to measure sizes for
    /// the valid ranges.
    pub size_scale: f64,
    /// Sizes (original pixels) trained at this scale (SNIP); the rest is ignored.
    pub range: ValidRange,
}

impl<'a> Targets<'a> {
    /// Every box of `batch`, at scale 1 with every size valid.
    pub fn of(batch: &'a DetBatch) -> Self {
        Self {
            boxes: &batch.boxes,
            classes: &batch.classes,
            ignore: Some(&batch.ignore),
            size_scale: 1.0,
            range: ValidRange::ALL,
        }
    }
}

fn head_conv(p: &nn::Path, cin: i64, cout: i64, bias: f64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: 1,
        ws_init: nn::Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        },
        bs_init: nn::Init::Const(bias),
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, 3, cfg)
}

/// The dense detector.
pub struct RetinaNet {
    cfg: RetinaNetConfig,
    backbone: Box<dyn Backbone>,
    cls_convs: Vec<nn::Conv2D>,
    cls_logits: nn::Conv2D,
    box_convs: Vec<nn::Conv2D>,
    box_deltas: nn::Conv2D,
    a: i64,
}

impl std::fmt::Debug for RetinaNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetinaNet").field("cfg", &self.cfg).finish()
    }
}

impl RetinaNet {
    /// The head under `p / "head"` on `backbone` (built by the caller under its own path).
    pub fn new(p: &nn::Path, backbone: Box<dyn Backbone>, cfg: &RetinaNetConfig) -> Result<Self> {
        let levels = backbone.num_levels();
        if cfg.anchors.sizes.len() != levels {
            return Err(PyramidError::config(
                "RetinaNetConfig.anchors",
                format!("one anchor level per backbone map ({levels})"),
                cfg.anchors.sizes.len(),
            ));
        }
        if !cfg.level_ranges.is_empty() && cfg.level_ranges.len() != levels {
            return Err(PyramidError::config(
                "RetinaNetConfig.level_ranges",
                format!("empty or one range per backbone map ({levels})"),
                cfg.level_ranges.len(),
            ));
        }
        let per = cfg.anchors.per_location();
        if per.iter().any(|&a| a != per[0]) || cfg.num_classes < 1 {
            return Err(PyramidError::config(
                "RetinaNetConfig",
                "the same number of anchors on every level and num_classes >= 1",
                format!("anchors per level {per:?}, {} classes", cfg.num_classes),
            ));
        }
        let a = per[0];
        let d = backbone.out_channels();
        let h = p / "head";
        let convs = |name: &str| -> Vec<nn::Conv2D> {
            (0..cfg.head_convs)
                .map(|i| head_conv(&(&h / name / i), d, d, 0.0))
                .collect()
        };
        let cls_convs = convs("cls_subnet");
        let box_convs = convs("bbox_subnet");
        let prior_bias = -((1.0 - cfg.prior) / cfg.prior).ln();
        let cls_logits = head_conv(&(&h / "cls_score"), d, a * cfg.num_classes, prior_bias);
        let box_deltas = head_conv(&(&h / "bbox_pred"), d, a * 4, 0.0);
        Ok(Self {
            cfg: cfg.clone(),
            backbone,
            cls_convs,
            cls_logits,
            box_convs,
            box_deltas,
            a,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RetinaNetConfig {
        &self.cfg
    }

    /// The backbone.
    pub fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }

    fn normalize(&self, images: &Tensor) -> Result<Tensor> {
        ResNet::check_input(images)?;
        if !self.cfg.normalize {
            return Ok(images.shallow_clone());
        }
        let dev = images.device();
        let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).to_device(dev);
        let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).to_device(dev);
        Ok((images - mean.view([1, 3, 1, 1])) / std.view([1, 3, 1, 1]))
    }

    /// Head outputs and anchors of `[B, 3, H, W]` images in `[0, 1]`.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<HeadOutputs> {
        let x = self.normalize(images)?;
        let pyr = self.backbone.features(&x, train)?;
        let s = images.size();
        let image = (s[2], s[3]);
        let b = s[0];
        let (mut cls, mut reg) = (Vec::new(), Vec::new());
        let mut sizes = Vec::new();
        for m in &pyr.maps {
            let ms = m.size();
            sizes.push((ms[2], ms[3]));
            let mut c = m.shallow_clone();
            // ReLU in place, as torchvision's Conv2dNormActivation: the conv's fresh output
            // is needed by no backward.
            for conv in &self.cls_convs {
                c = conv.forward(&c);
                let _ = c.relu_();
            }
            let mut r = m.shallow_clone();
            for conv in &self.box_convs {
                r = conv.forward(&r);
                let _ = r.relu_();
            }
            let k = self.cfg.num_classes;
            // [B, A*K, H, W] -> [B, H, W, A, K] -> [B, HWA, K], torchvision's order.
            let c = self
                .cls_logits
                .forward(&c)
                .view([b, self.a, k, ms[2], ms[3]]);
            cls.push(c.permute([0, 3, 4, 1, 2]).reshape([b, -1, k]));
            let r = self
                .box_deltas
                .forward(&r)
                .view([b, self.a, 4, ms[2], ms[3]]);
            reg.push(r.permute([0, 3, 4, 1, 2]).reshape([b, -1, 4]));
        }
        let cfg_levels = AnchorConfig {
            sizes: pyr
                .ids
                .iter()
                .map(|&i| self.cfg.anchors.sizes[i].clone())
                .collect(),
            ratios: pyr
                .ids
                .iter()
                .map(|&i| self.cfg.anchors.ratios[i].clone())
                .collect(),
        };
        let anchors = grid_anchors(&cfg_levels, image, &sizes, images.device())?;
        Ok(HeadOutputs {
            cls,
            reg,
            anchors,
            ids: pyr.ids,
            image,
        })
    }

    /// Focal loss and box loss of `out` against `t`, each normalised by the positives. The
    /// matching runs per image without gradient; both losses are then one masked reduction
    /// over the whole batch (one backward path through the head outputs).
    pub fn loss(&self, out: &HeadOutputs, t: &Targets) -> Result<LossParts> {
        let b = out.cls.first().map_or(0, |c| c.size()[0]);
        self.loss_scaled(out, t, &vec![t.size_scale; b.max(0) as usize])
    }

    /// [`RetinaNet::loss`] with one size scale per image (input pixels per original pixel,
    /// for the valid ranges) instead of `t.size_scale`: SNIP training with scale jitter or
    /// images of several sizes in one batch ([`crate::levels::snip`]).
    pub fn loss_scaled(
        &self,
        out: &HeadOutputs,
        t: &Targets,
        size_scales: &[f64],
    ) -> Result<LossParts> {
        let s = t.boxes.size();
        let b = out.cls.first().map_or(0, |c| c.size()[0]);
        if size_scales.len() as i64 != b || size_scales.iter().any(|&f| !(f > 0.0 && f.is_finite()))
        {
            return Err(PyramidError::config(
                "size scales",
                format!("{b} finite factors > 0, one per image"),
                format!("{size_scales:?}"),
            ));
        }
        if s.len() != 3 || s[2] != 4 || s[0] != b || t.classes.size() != [s[0], s[1]] {
            return Err(PyramidError::input(
                "target boxes",
                format!("[{b}, M, 4] boxes with [{b}, M] classes"),
                s,
            ));
        }
        let k = self.cfg.num_classes;
        let groups: Vec<Vec<usize>> = if self.cfg.level_ranges.is_empty() {
            vec![(0..out.cls.len()).collect()]
        } else {
            (0..out.cls.len()).map(|l| vec![l]).collect()
        };
        let anchors = Tensor::cat(&out.anchors, 0);
        let (matches, gt_boxes, gt_classes) = tch::no_grad(|| -> Result<_> {
            let (mut ms, mut bs, mut cs) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..b {
                let cls_i = t.classes.get(i);
                let mut real = cls_i.ge(0);
                let mut crowd = real.zeros_like();
                if let Some(ig) = t.ignore {
                    crowd = ig.get(i).logical_and(&real);
                    real = real.logical_and(&crowd.logical_not());
                }
                let keep = real.nonzero().view([-1]);
                let gt = t.boxes.get(i).index_select(0, &keep);
                let gt_cls = cls_i.index_select(0, &keep);
                check_inside(&gt, out.image)?;
                if gt_cls.numel() > 0 && gt_cls.max().int64_value(&[]) >= k {
                    return Err(PyramidError::config(
                        "target classes",
                        format!("0 ..< {k}"),
                        gt_cls.max().int64_value(&[]),
                    ));
                }
                let crowd_boxes = t.boxes.get(i).index_select(0, &crowd.nonzero().view([-1]));
                let mut per_group = Vec::new();
                for g in &groups {
                    let a = Tensor::cat(&g.iter().map(|&l| &out.anchors[l]).collect::<Vec<_>>(), 0);
                    let range = match self.cfg.level_ranges.get(out.ids[g[0]]) {
                        Some(r) if g.len() == 1 => intersect(r, &t.range),
                        _ => t.range,
                    };
                    let mut m =
                        assign(&a, &gt, &range, size_scales[i as usize], &self.cfg.matcher)?;
                    if crowd_boxes.size()[0] > 0 {
                        let near = det_core::tensor::box_iou_t(&crowd_boxes, &a)?
                            .amax([0], false)
                            .gt(self.cfg.matcher.bg_iou);
                        m = m.masked_fill(&near.logical_and(&m.lt(0)), IGNORED);
                    }
                    per_group.push(m);
                }
                let m = Tensor::cat(&per_group, 0);
                let idx = m.clamp_min(0);
                if gt.size()[0] > 0 {
                    bs.push(gt.index_select(0, &idx));
                    cs.push(gt_cls.index_select(0, &idx));
                } else {
                    bs.push(anchors.zeros_like());
                    cs.push(m.zeros_like());
                }
                ms.push(m);
            }
            Ok((
                Tensor::stack(&ms, 0),
                Tensor::stack(&bs, 0),
                Tensor::stack(&cs, 0),
            ))
        })?;
        let logits = Tensor::cat(&out.cls, 1);
        let deltas = Tensor::cat(&out.reg, 1);
        let pos = matches.ge(0);
        let valid = matches.ne(IGNORED).unsqueeze(-1).to_kind(logits.kind());
        let target =
            gt_classes.one_hot(k).to_kind(logits.kind()) * pos.unsqueeze(-1).to_kind(logits.kind());
        let focal = sigmoid_focal_loss(
            &logits,
            &target,
            self.cfg.focal_alpha,
            self.cfg.focal_gamma,
            Reduce::None,
        );
        let cls_sum = (focal * valid).sum(Kind::Float);
        let positives = pos.sum(Kind::Int64).int64_value(&[]);
        let reg_sum = if positives > 0 {
            let idx = pos.view([-1]).nonzero().view([-1]);
            let d = deltas.view([-1, 4]).index_select(0, &idx);
            let a = anchors.repeat([b, 1]).index_select(0, &idx);
            let g = gt_boxes.view([-1, 4]).index_select(0, &idx);
            match self.cfg.box_loss {
                BoxLoss::SmoothL1 { beta } => smooth_l1_sum(&d, &encode(&g, &a), beta),
                BoxLoss::Giou => giou_loss_sum(&decode(&d, &a), &g),
            }
        } else {
            deltas.sum(Kind::Float) * 0.0
        };
        let norm = positives.max(1) as f64;
        let cls = cls_sum / norm;
        let reg = reg_sum / norm;
        Ok(LossParts {
            total: &cls + &reg,
            cls,
            reg,
            positives,
        })
    }

    /// Boxes, scores and classes per image from head outputs (input pixels).
    pub fn postprocess(&self, out: &HeadOutputs) -> Result<Vec<ImageDetections>> {
        let b = out.cls.first().map_or(0, |c| c.size()[0]);
        let k = self.cfg.num_classes;
        let (h, w) = out.image;
        let mut res = Vec::with_capacity(b as usize);
        for i in 0..b {
            let (mut boxes, mut scores, mut classes) = (Vec::new(), Vec::new(), Vec::new());
            for l in 0..out.cls.len() {
                let s = out.cls[l].get(i).sigmoid().flatten(0, -1);
                let keep = s.gt(self.cfg.score_thresh).nonzero().view([-1]);
                let s = s.index_select(0, &keep);
                let n = s.size()[0].min(self.cfg.topk_candidates);
                let (top, order) = s.topk(n, 0, true, true);
                let idx = keep.index_select(0, &order);
                let anchor_idx = idx.divide_scalar_mode(k, "floor");
                let cls = idx.remainder(k);
                let d = out.reg[l].get(i).index_select(0, &anchor_idx);
                let a = out.anchors[l].index_select(0, &anchor_idx);
                let bx = decode(&d, &a);
                let bx = Tensor::stack(
                    &[
                        bx.select(1, 0).clamp(0.0, w as f64),
                        bx.select(1, 1).clamp(0.0, h as f64),
                        bx.select(1, 2).clamp(0.0, w as f64),
                        bx.select(1, 3).clamp(0.0, h as f64),
                    ],
                    1,
                );
                boxes.push(bx);
                scores.push(top);
                classes.push(cls);
            }
            let boxes = Tensor::cat(&boxes, 0);
            let scores = Tensor::cat(&scores, 0);
            let classes = Tensor::cat(&classes, 0);
            let keep =
                det_core::tensor::batched_nms_t(&boxes, &scores, &classes, self.cfg.nms_iou)?;
            let keep = keep.narrow(0, 0, keep.size()[0].min(self.cfg.detections_per_image));
            res.push(ImageDetections {
                boxes: boxes.index_select(0, &keep),
                scores: scores.index_select(0, &keep),
                classes: classes.index_select(0, &keep),
            });
        }
        Ok(res)
    }

    /// The device of the head's weights.
    pub fn device(&self) -> Device {
        self.cls_logits.ws.device()
    }
}

/// Ground truth must lie in the image (1 px of slack) with `x1 <= x2`, `y1 <= y2`.
fn check_inside(gt: &Tensor, (h, w): (i64, i64)) -> Result<()> {
    if gt.size()[0] == 0 {
        return Ok(());
    }
    let v = Vec::<f32>::try_from(gt.to_device(Device::Cpu).contiguous().view([-1]))?;
    for b in v.chunks_exact(4) {
        let ok = b.iter().all(|x| x.is_finite())
            && b[0] >= -1.0
            && b[1] >= -1.0
            && b[2] <= w as f32 + 1.0
            && b[3] <= h as f32 + 1.0
            && b[0] <= b[2]
            && b[1] <= b[3];
        if !ok {
            return Err(PyramidError::config(
                "target box",
                format!("an xyxy box inside the {w}x{h} input"),
                format!("{b:?}"),
            ));
        }
    }
    Ok(())
}

fn intersect(a: &ValidRange, b: &ValidRange) -> ValidRange {
    let max = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    };
    let min = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    };
    ValidRange {
        lo: max(a.lo, b.lo),
        hi: min(a.hi, b.hi),
    }
}

impl Detector for RetinaNet {
    fn detect(&self, images: &Tensor) -> Result<Vec<ImageDetections>> {
        let out = tch::no_grad(|| self.forward_t(images, false))?;
        self.postprocess(&out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resnet::Depth;
    use train_kit::Optimizer;

    pub(crate) fn tiny(vs: &nn::VarStore, classes: i64) -> RetinaNet {
        let trunk = ResNetConfig::small(Depth::R18, 8);
        let fpn = FpnConfig::retinanet(trunk.channels(), 16);
        let bb = ResNetFpn::new(&(vs.root() / "backbone"), &trunk, &fpn).unwrap();
        let cfg = RetinaNetConfig {
            num_classes: classes,
            anchors: AnchorConfig::retinanet(&[16.0, 32.0, 64.0, 128.0, 256.0]),
            head_convs: 1,
            ..Default::default()
        };
        RetinaNet::new(&vs.root(), Box::new(bb), &cfg).unwrap()
    }

    #[test]
    fn prior_init_loss_and_a_few_steps_learn_one_image() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = tiny(&vs, 3);
        let x = Tensor::rand([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let out = model.forward_t(&x, true).unwrap();
        // Every score starts at the prior 0.01.
        let p = out.cls[0].sigmoid().mean(Kind::Float).double_value(&[]);
        assert!((p - 0.01).abs() < 2e-3, "{p}");
        assert_eq!(out.anchors.len(), 5);
        assert_eq!(out.cls[0].size(), [1, 8 * 8 * 9, 3]);
        assert_eq!(out.anchors[0].size(), [8 * 8 * 9, 4]);
        let boxes =
            Tensor::from_slice(&[8.0f32, 8.0, 40.0, 30.0, 0.0, 0.0, 0.0, 0.0]).view([1, 2, 4]);
        let classes = Tensor::from_slice(&[2i64, -1]).view([1, 2]);
        let t = Targets {
            boxes: &boxes,
            classes: &classes,
            ignore: None,
            size_scale: 1.0,
            range: ValidRange::ALL,
        };
        let first = model.loss(&out, &t).unwrap();
        assert!(first.positives > 0);
        let sgd = train_kit::SgdConfig {
            lr: 0.01,
            ..Default::default()
        };
        let mut opt = train_kit::Sgd::with_single_group(&vs, sgd).unwrap();
        let mut last = first.total.double_value(&[]);
        for _ in 0..15 {
            opt.zero_grad();
            let out = model.forward_t(&x, true).unwrap();
            let l = model.loss(&out, &t).unwrap();
            l.total.backward();
            opt.step().unwrap();
            last = l.total.double_value(&[]);
        }
        assert!(
            last < 0.7 * first.total.double_value(&[]),
            "{first:?} -> {last}"
        );
        let dets = model.detect(&x).unwrap();
        assert_eq!(dets.len(), 1);
        let v = dets[0].to_vecs().unwrap();
        assert!(v.len() <= 100);
        // Bad targets name what they expected.
        let wrong = Tensor::zeros([2, 2, 4], (Kind::Float, Device::Cpu));
        let t2 = Targets { boxes: &wrong, ..t };
        assert!(model
            .loss(&out, &t2)
            .unwrap_err()
            .to_string()
            .contains("[1, M, 4]"));
        let big_class = Tensor::from_slice(&[3i64, -1]).view([1, 2]);
        let t3 = Targets {
            classes: &big_class,
            ..t2
        };
        let t3 = Targets {
            boxes: &boxes,
            ..t3
        };
        assert!(model.loss(&out, &t3).is_err());
        let outside = Tensor::from_slice(&[8.0f32, 8.0, 80.0, 30.0]).view([1, 1, 4]);
        let one = Tensor::from_slice(&[0i64]).view([1, 1]);
        let t4 = Targets {
            boxes: &outside,
            classes: &one,
            ..t3
        };
        let msg = model.loss(&out, &t4).unwrap_err().to_string();
        assert!(
            msg.contains("inside the 64x64 input") && msg.contains("80.0"),
            "{msg}"
        );
    }
}
