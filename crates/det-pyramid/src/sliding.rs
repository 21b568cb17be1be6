//! Multi-scale sliding-window detection: the pre-FPN, pre-YOLO baseline. A crop classifier
//! (K object classes + background) on the same ResNet trunk as the dense detectors is trained
//! on crops cut from the training images (objects with some context and jitter; background
//! squares overlapping no object), then run on every window of an image pyramid at a fixed
//! stride, and the windows' scores are merged with one class-wise NMS.
//!
//! This is the family YOLO's paper argues against (Redmon et al. 2016, arXiv 1506.02640,
//! Sec. 1 and 4: DPM "uses a sliding window approach where the classifier is run at evenly
//! spaced locations over the entire image"; R-CNN's "complex pipelines are slow"): the cost
//! grows with the number of windows (about `sum_s (s H / stride)^2`), each a full classifier
//! forward. The image pyramid and the class-wise NMS follow [`crate::inference`].
//!
//! Crops are resampled with `affine_grid` + `grid_sample` (bilinear, zeros outside the image,
//! `align_corners = false`): output pixel `k` of a window `[x0, x0 + L]` samples the input at
//! `x0 + (k + 0.5) L / w`.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use det_core::data::{DetBatch, DetLoader, ImageDetections};

use crate::error::{PyramidError, Result};
use crate::resnet::{ResNet, ResNetConfig};
use crate::retinanet::Detector;

/// How training crops are cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropConfig {
    /// Side of the classifier's input (pixels).
    pub window: i64,
    /// An object crop is a square `context * max(w, h)` around the box (1.25).
    pub context: f64,
    /// Random shift of an object crop's centre, as a fraction of its side (0.15), and scale
    /// jitter `1 +- jitter` (the windows at test time are not centred on the objects).
    pub jitter: f64,
    /// Background crops per image.
    pub negatives_per_image: i64,
    /// A background crop overlaps every object with IoU below this (0.3).
    pub negative_max_iou: f64,
    /// Side range of background crops (pixels of the input).
    pub negative_sides: (f64, f64),
}

impl Default for CropConfig {
    fn default() -> Self {
        Self {
            window: 32,
            context: 1.25,
            jitter: 0.15,
            negatives_per_image: 8,
            negative_max_iou: 0.3,
            negative_sides: (8.0, 64.0),
        }
    }
}

/// Square crops `(cx, cy, side)` of the images in `images` (`[N, C, H, W]`), `index[i]` the
/// image of crop `i`, resampled to `window x window`.
pub fn cut(images: &Tensor, index: &Tensor, squares: &Tensor, window: i64) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 4 || squares.size().len() != 2 || squares.size()[1] != 3 {
        return Err(PyramidError::input(
            "crops",
            "[N, C, H, W] images and [K, 3] (cx, cy, side) squares",
            squares.size(),
        ));
    }
    let k = squares.size()[0];
    let (h, w) = (s[2] as f64, s[3] as f64);
    let sq = squares.to_kind(Kind::Float);
    let (cx, cy, side) = (sq.select(1, 0), sq.select(1, 1), sq.select(1, 2));
    let zeros = Tensor::zeros_like(&cx);
    let theta = Tensor::stack(
        &[
            &side / w,
            zeros.shallow_clone(),
            &cx * (2.0 / w) - 1.0,
            zeros,
            &side / h,
            &cy * (2.0 / h) - 1.0,
        ],
        1,
    )
    .view([k, 2, 3])
    .to_kind(images.kind());
    let grid = Tensor::f_affine_grid_generator(&theta, [k, s[1], window, window], false)?;
    let src = images.index_select(0, index);
    Ok(src.f_grid_sampler_2d(&grid, 0, 0, false)?)
}

/// One batch of crops with labels (`K` = background).
#[derive(Debug)]
pub struct CropBatch {
    /// `[B', C, window, window]`.
    pub crops: Tensor,
    /// `[B']` int64 class indices, `K` for background.
    pub labels: Tensor,
}

/// Object and background crops of a detection batch, for `num_classes` object classes.
pub fn crops_of(batch: &DetBatch, num_classes: i64, cfg: &CropConfig) -> Result<CropBatch> {
    let dev = batch.images.device();
    let s = batch.images.size();
    let (n, m) = (s[0], batch.boxes.size()[1]);
    let (h, w) = (s[2] as f64, s[3] as f64);
    // Objects: every real box, jittered.
    let valid = batch.classes.ge(0).view([-1]);
    let keep = valid.nonzero().view([-1]);
    let boxes = batch
        .boxes
        .view([-1, 4])
        .index_select(0, &keep)
        .to_kind(Kind::Float);
    let labels = batch.classes.view([-1]).index_select(0, &keep);
    let img = Tensor::arange(n, (Kind::Int64, dev))
        .unsqueeze(1)
        .expand([n, m], false)
        .reshape([-1])
        .index_select(0, &keep);
    let p = boxes.size()[0];
    let bw = boxes.select(1, 2) - boxes.select(1, 0);
    let bh = boxes.select(1, 3) - boxes.select(1, 1);
    let side0 = bw.maximum(&bh) * cfg.context;
    let u = |shape: &[i64]| Tensor::rand(shape, (Kind::Float, dev)) * 2.0 - 1.0;
    let side = &side0 * (u(&[p]) * cfg.jitter + 1.0);
    let cx = (boxes.select(1, 0) + boxes.select(1, 2)) / 2.0 + &side0 * u(&[p]) * cfg.jitter;
    let cy = (boxes.select(1, 1) + boxes.select(1, 3)) / 2.0 + &side0 * u(&[p]) * cfg.jitter;
    let pos = Tensor::stack(&[cx, cy, side], 1);
    // Background: random squares, kept when they overlap no object much.
    let tries = cfg.negatives_per_image * 4;
    let (lo, hi) = cfg.negative_sides;
    let nside = Tensor::rand([n, tries], (Kind::Float, dev)) * (hi - lo) + lo;
    let ncx = Tensor::rand([n, tries], (Kind::Float, dev)) * (w - &nside) + &nside / 2.0;
    let ncy = Tensor::rand([n, tries], (Kind::Float, dev)) * (h - &nside) + &nside / 2.0;
    let nb = Tensor::stack(
        &[
            &ncx - &nside / 2.0,
            &ncy - &nside / 2.0,
            &ncx + &nside / 2.0,
            &ncy + &nside / 2.0,
        ],
        2,
    );
    let mut neg = Vec::new();
    let mut neg_img = Vec::new();
    for i in 0..n {
        let gt_i = batch.boxes.get(i).to_kind(Kind::Float);
        let real = batch.classes.get(i).ge(0).nonzero().view([-1]);
        let gt_i = gt_i.index_select(0, &real);
        let cand = nb.get(i);
        let ok = if gt_i.size()[0] == 0 {
            Tensor::ones([tries], (Kind::Bool, dev))
        } else {
            det_core::tensor::box_iou_t(&cand, &gt_i)?
                .amax(1, false)
                .lt(cfg.negative_max_iou)
        };
        let idx = ok.nonzero().view([-1]);
        let idx = idx.narrow(0, 0, idx.size()[0].min(cfg.negatives_per_image));
        let c = idx.size()[0];
        neg.push(Tensor::stack(
            &[
                ncx.get(i).index_select(0, &idx),
                ncy.get(i).index_select(0, &idx),
                nside.get(i).index_select(0, &idx),
            ],
            1,
        ));
        neg_img.push(Tensor::full([c], i, (Kind::Int64, dev)));
    }
    let neg = Tensor::cat(&neg, 0);
    let neg_img = Tensor::cat(&neg_img, 0);
    let squares = Tensor::cat(&[pos, neg.shallow_clone()], 0);
    let index = Tensor::cat(&[img, neg_img], 0);
    let labels = Tensor::cat(
        &[
            labels,
            Tensor::full([neg.size()[0]], num_classes, (Kind::Int64, dev)),
        ],
        0,
    );
    let crops = cut(&batch.images, &index, &squares, cfg.window)?;
    Ok(CropBatch { crops, labels })
}

/// A [`DetLoader`] read as crop batches (a train-kit data source).
pub struct CropSource {
    /// The detection batches the crops come from (augmentation included).
    pub loader: DetLoader,
    /// Object classes (`K`; background is `K`).
    pub num_classes: i64,
    /// How crops are cut.
    pub cfg: CropConfig,
}

impl train_kit::DataSource for CropSource {
    type Batch = CropBatch;
    type Error = PyramidError;

    fn batches_per_epoch(&self) -> u64 {
        self.loader.batches_per_epoch() as u64
    }

    fn epoch_from(&self, epoch: u64, skip: u64) -> impl Iterator<Item = Result<CropBatch>> + '_ {
        self.loader
            .epoch_from(epoch, usize::try_from(skip).unwrap_or(usize::MAX))
            .map(move |b| crops_of(&b?, self.num_classes, &self.cfg))
    }
}

/// A crop classifier on a ResNet trunk: global average pooling of C5 and a linear layer to
/// `K + 1` logits (the last is background).
pub struct CropClassifier {
    trunk: ResNet,
    fc: nn::Linear,
    num_classes: i64,
    window: i64,
}

impl std::fmt::Debug for CropClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CropClassifier")
            .field("num_classes", &self.num_classes)
            .field("window", &self.window)
            .finish()
    }
}

impl CropClassifier {
    /// Builds `p / "trunk"` and `p / "fc"` for `num_classes` object classes on `window` crops.
    pub fn new(p: &nn::Path, trunk: &ResNetConfig, num_classes: i64, window: i64) -> Result<Self> {
        if num_classes < 1 || window < 32 {
            return Err(PyramidError::config(
                "CropClassifier",
                "at least one class and a window of at least 32 px (the trunk's stride)",
                format!("{num_classes} classes, window {window}"),
            ));
        }
        let c5 = trunk.channels()[3];
        Ok(Self {
            trunk: ResNet::new(&(p / "trunk"), trunk)?,
            fc: nn::linear(p / "fc", c5, num_classes + 1, Default::default()),
            num_classes,
            window,
        })
    }

    /// Object classes `K`.
    pub fn num_classes(&self) -> i64 {
        self.num_classes
    }

    /// Input side.
    pub fn window(&self) -> i64 {
        self.window
    }

    /// `[B, K + 1]` logits of `[B, 3, window, window]` crops.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let f = self.trunk.forward_t(x, train)?.c5;
        Ok(self
            .fc
            .forward(&f.mean_dim(&[2i64, 3][..], false, f.kind())))
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.fc.ws.device()
    }
}

/// Where and how windows are evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingConfig {
    /// Image pyramid scales (the window covers `window / s` original pixels).
    pub scales: Vec<f64>,
    /// Window stride in pixels of the scaled image.
    pub stride: i64,
    /// Windows whose best object probability is at or below this are dropped.
    pub score_thresh: f64,
    /// IoU of the class-wise NMS over all scales.
    pub nms_iou: f64,
    /// Detections kept per image.
    pub max_detections: i64,
    /// Windows per classifier forward.
    pub chunk: i64,
}

impl Default for SlidingConfig {
    fn default() -> Self {
        Self {
            scales: vec![3.0, 2.0, 1.4, 1.0, 0.7, 0.5],
            stride: 12,
            score_thresh: 0.05,
            nms_iou: 0.5,
            max_detections: 100,
            chunk: 512,
        }
    }
}

/// A crop classifier slid over an image pyramid: a [`Detector`].
#[derive(Debug)]
pub struct SlidingWindow<'a> {
    /// The classifier.
    pub classifier: &'a CropClassifier,
    /// Scales, stride, thresholds.
    pub cfg: SlidingConfig,
}

impl SlidingWindow<'_> {
    /// Windows a `(h, w)` image is cut into (all scales).
    pub fn windows(&self, (h, w): (i64, i64)) -> i64 {
        let win = self.classifier.window;
        self.cfg
            .scales
            .iter()
            .map(|&s| {
                let (sh, sw) = scaled((h, w), s);
                let n = |x: i64| {
                    if x < win {
                        0
                    } else {
                        (x - win) / self.cfg.stride + 1
                    }
                };
                n(sh) * n(sw)
            })
            .sum()
    }
}

fn scaled((h, w): (i64, i64), s: f64) -> (i64, i64) {
    (
        ((h as f64 * s).round() as i64).max(1),
        ((w as f64 * s).round() as i64).max(1),
    )
}

impl Detector for SlidingWindow<'_> {
    fn detect(&self, images: &Tensor) -> Result<Vec<ImageDetections>> {
        let s = images.size();
        if s.len() != 4 || s[1] != 3 {
            return Err(PyramidError::input("images", "a [B, 3, H, W] batch", s));
        }
        if self.cfg.scales.is_empty() || self.cfg.stride < 1 || self.cfg.chunk < 1 {
            return Err(PyramidError::config(
                "SlidingConfig",
                "at least one scale, stride >= 1, chunk >= 1",
                format!("{:?}", self.cfg),
            ));
        }
        let (n, h, w) = (s[0], s[2], s[3]);
        let win = self.classifier.window;
        let k = self.classifier.num_classes;
        let st = self.cfg.stride;
        let mut per_image: Vec<(Vec<Tensor>, Vec<Tensor>, Vec<Tensor>)> = (0..n)
            .map(|_| (Vec::new(), Vec::new(), Vec::new()))
            .collect();
        tch::no_grad(|| -> Result<()> {
            for &sc in &self.cfg.scales {
                let (sh, sw) = scaled((h, w), sc);
                if sh < win || sw < win {
                    continue;
                }
                let x = images.upsample_bilinear2d([sh, sw], false, None, None);
                // [N, 3, nh, nw, win, win] -> [N * nh * nw, 3, win, win]
                let u = x.unfold(2, win, st).unfold(3, win, st);
                let (nh, nw) = (u.size()[2], u.size()[3]);
                let crops = u.permute([0, 2, 3, 1, 4, 5]).reshape([-1, 3, win, win]);
                let total = crops.size()[0];
                let mut probs = Vec::new();
                let mut i = 0;
                while i < total {
                    let c = self.cfg.chunk.min(total - i);
                    let logits = self.classifier.forward_t(&crops.narrow(0, i, c), false)?;
                    probs.push(logits.softmax(1, Kind::Float).narrow(1, 0, k));
                    i += c;
                }
                let probs = Tensor::cat(&probs, 0).view([n, nh * nw, k]);
                let (best, cls) = probs.max_dim(2, false);
                let dev = best.device();
                let iy = Tensor::arange(nh, (Kind::Float, dev)) * (st as f64 / sc);
                let ix = Tensor::arange(nw, (Kind::Float, dev)) * (st as f64 / sc);
                let y0 = iy.view([nh, 1]).expand([nh, nw], false).reshape([-1]);
                let x0 = ix.view([1, nw]).expand([nh, nw], false).reshape([-1]);
                let side = win as f64 / sc;
                let bx = Tensor::stack(
                    &[
                        x0.shallow_clone(),
                        y0.shallow_clone(),
                        (&x0 + side).clamp_max(w as f64),
                        (&y0 + side).clamp_max(h as f64),
                    ],
                    1,
                );
                for (b, acc) in per_image.iter_mut().enumerate() {
                    let sc_b = best.get(b as i64);
                    let keep = sc_b.gt(self.cfg.score_thresh).nonzero().view([-1]);
                    acc.0.push(bx.index_select(0, &keep));
                    acc.1.push(sc_b.index_select(0, &keep));
                    acc.2.push(cls.get(b as i64).index_select(0, &keep));
                }
            }
            Ok(())
        })?;
        let dev = images.device();
        let mut out = Vec::with_capacity(n as usize);
        for (bx, sc, cl) in per_image {
            if bx.is_empty() {
                out.push(ImageDetections::empty(dev));
                continue;
            }
            let (bx, sc, cl) = (
                Tensor::cat(&bx, 0),
                Tensor::cat(&sc, 0),
                Tensor::cat(&cl, 0),
            );
            let keep = det_core::tensor::batched_nms_t(&bx, &sc, &cl, self.cfg.nms_iou)?;
            let keep = keep.narrow(0, 0, keep.size()[0].min(self.cfg.max_detections));
            out.push(ImageDetections {
                boxes: bx.index_select(0, &keep),
                scores: sc.index_select(0, &keep),
                classes: cl.index_select(0, &keep),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resnet::Depth;

    #[test]
    fn a_crop_samples_the_square_it_names() {
        // A 1-channel ramp x; the crop (cx 8, cy 8, side 8) of a 16x16 image, resampled to 8,
        // reads pixels 4 .. 11 exactly.
        let ramp = Tensor::arange(16, (Kind::Float, Device::Cpu))
            .view([1, 1, 1, 16])
            .expand([1, 3, 16, 16], false)
            .contiguous();
        let sq = Tensor::from_slice(&[8.0f32, 8.0, 8.0]).view([1, 3]);
        let c = cut(&ramp, &Tensor::from_slice(&[0i64]), &sq, 8).unwrap();
        let row = Vec::<f32>::try_from(c.get(0).get(0).get(3)).unwrap();
        let want: Vec<f32> = (4..12).map(|v| v as f32).collect();
        assert_eq!(row, want);
    }

    #[test]
    fn crops_have_objects_then_background() {
        tch::manual_seed(0);
        let images = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        let boxes = Tensor::from_slice(&[
            4.0f32, 4.0, 20.0, 20.0, 30.0, 30.0, 50.0, 60.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ])
        .view([2, 2, 4]);
        let classes = Tensor::from_slice(&[3i64, 1, -1, -1]).view([2, 2]);
        let batch = DetBatch {
            images,
            boxes,
            classes,
            ignore: Tensor::zeros([2, 2], (Kind::Bool, Device::Cpu)),
            counts: Tensor::from_slice(&[2i64, 0]),
            image_ids: vec![0, 1],
            indices: vec![0, 1],
            maps: vec![],
        };
        let cfg = CropConfig {
            negative_sides: (8.0, 24.0),
            ..Default::default()
        };
        let c = crops_of(&batch, 10, &cfg).unwrap();
        let l = Vec::<i64>::try_from(&c.labels).unwrap();
        assert_eq!(&l[..2], &[3, 1]);
        assert!(l[2..].iter().all(|&v| v == 10) && l.len() > 2);
        assert_eq!(c.crops.size()[1..], [3, 32, 32]);
    }

    #[test]
    fn sliding_counts_windows_and_returns_detections_in_the_image() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let clf =
            CropClassifier::new(&vs.root(), &ResNetConfig::small(Depth::R18, 4), 2, 32).unwrap();
        let sw = SlidingWindow {
            classifier: &clf,
            cfg: SlidingConfig {
                scales: vec![1.0, 0.5],
                stride: 16,
                score_thresh: 0.0,
                ..Default::default()
            },
        };
        // 64 px: 3x3 windows at scale 1, 1 at 0.5.
        assert_eq!(sw.windows((64, 64)), 10);
        let d = sw
            .detect(&Tensor::rand([1, 3, 64, 64], (Kind::Float, Device::Cpu)))
            .unwrap();
        let v = d[0].to_vecs().unwrap();
        assert!(!v.is_empty());
        for (b, _, c) in v {
            assert!(
                b.iter().all(|&x| (0.0..=64.0).contains(&x)) && c < 2,
                "{b:?}"
            );
        }
        let e = CropClassifier::new(&vs.root(), &ResNetConfig::small(Depth::R18, 4), 0, 32);
        assert!(e.unwrap_err().to_string().contains("at least one class"));
    }
}
