//! One way to evaluate any detector on a detection set, so that every detection claim reports
//! the same numbers: the set is letterboxed to the network input in order
//! ([`DetLoaderConfig::eval`]), a `forward` closure maps the images tensor to raw outputs, a
//! `decode` closure (box decoding + NMS) turns them into per-image detections in network-input
//! coordinates, the boxes are mapped back through each image's [`ImageMap`](super::ImageMap), written as a COCO
//! results file and scored by det-core's COCO evaluator (equal to pycocotools `COCOeval`, bbox,
//! maxDets 100). Timing follows the usual detector benchmark protocol (e.g. the YOLO papers'
//! FPS, detectron2's `inference_on_dataset`): data loading excluded, the first `warmup` batches
//! excluded, the device synchronised before each clock reading; images per second are given for
//! the forward pass alone and with decode/NMS. Copying detections to the host for scoring is not
//! timed.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::batch::{DetBatch, DetLoader, DetLoaderConfig};
use super::{to_coco, torch_err, DetectionSet};
use crate::coco::{evaluate, write_detections, CocoDetection, CocoParams};
use crate::error::{DetError, Result};

/// Detections of one image in network-input pixels: `boxes [N, 4]` xyxy, `scores [N]`,
/// `classes [N]` (integer class indices into the set's categories), on any device.
#[derive(Debug)]
pub struct ImageDetections {
    /// `[N, 4]` xyxy boxes in network-input pixels.
    pub boxes: Tensor,
    /// `[N]` confidences.
    pub scores: Tensor,
    /// `[N]` integer class indices into the set's categories.
    pub classes: Tensor,
}

impl ImageDetections {
    /// No detections.
    pub fn empty(device: Device) -> Self {
        ImageDetections {
            boxes: Tensor::zeros([0, 4], (Kind::Float, device)),
            scores: Tensor::zeros([0], (Kind::Float, device)),
            classes: Tensor::zeros([0], (Kind::Int64, device)),
        }
    }

    /// `(xyxy, score, class)` on the host, with shapes checked.
    pub fn to_vecs(&self) -> Result<Vec<([f64; 4], f64, i64)>> {
        let n = match self.boxes.size().as_slice() {
            [n, 4] => *n,
            s => {
                return Err(DetError::Detector {
                    stage: "decode",
                    message: format!("boxes: expected [N, 4], got {s:?}"),
                })
            }
        };
        for (what, t) in [("scores", &self.scores), ("classes", &self.classes)] {
            if t.size() != [n] {
                return Err(DetError::Detector {
                    stage: "decode",
                    message: format!("{what}: expected [{n}] (one per box), got {:?}", t.size()),
                });
            }
        }
        let host = |t: &Tensor, k: Kind| {
            t.f_to_device(Device::Cpu)
                .and_then(|x| x.f_to_kind(k))
                .and_then(|x| x.f_contiguous())
                .and_then(|x| x.f_view([-1]))
        };
        let b = host(&self.boxes, Kind::Double)
            .and_then(|x| Vec::<f64>::try_from(&x))
            .map_err(torch_err("reading detections"))?;
        let s = host(&self.scores, Kind::Double)
            .and_then(|x| Vec::<f64>::try_from(&x))
            .map_err(torch_err("reading detections"))?;
        let c = host(&self.classes, Kind::Int64)
            .and_then(|x| Vec::<i64>::try_from(&x))
            .map_err(torch_err("reading detections"))?;
        Ok((0..n as usize)
            .map(|i| {
                (
                    [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]],
                    s[i],
                    c[i],
                )
            })
            .collect())
    }
}

/// What every detection claim reports: the 12 COCO numbers by name and as pycocotools'
/// `stats` array, per-category AP, and speeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionReport {
    /// Name of the data set.
    pub set: String,
    /// Images evaluated.
    pub images: usize,
    /// Detections scored.
    pub detections: usize,
    /// AP@[.5:.95], area all, maxDets 100 (stat 0).
    pub ap: f64,
    /// AP at IoU 0.50 (stat 1).
    pub ap50: f64,
    /// AP at IoU 0.75 (stat 2).
    pub ap75: f64,
    /// AP for small objects (area <= 32², stat 3).
    pub ap_small: f64,
    /// AP for medium objects (stat 4).
    pub ap_medium: f64,
    /// AP for large objects (area >= 96², stat 5).
    pub ap_large: f64,
    /// AR with 1 detection per image (stat 6).
    pub ar1: f64,
    /// AR with 10 detections per image (stat 7).
    pub ar10: f64,
    /// AR with 100 detections per image (stat 8).
    pub ar100: f64,
    /// AR for small objects (stat 9).
    pub ar_small: f64,
    /// AR for medium objects (stat 10).
    pub ar_medium: f64,
    /// AR for large objects (stat 11).
    pub ar_large: f64,
    /// `COCOeval.stats` in pycocotools' order (-1 where a range has no ground truth).
    pub stats: [f64; 12],
    /// `(category name, AP@[.5:.95])`, -1 for a category without ground truth.
    pub per_category_ap: Vec<(String, f64)>,
    /// Seconds in `forward` and in `decode` over the timed images.
    pub forward_s: f64,
    /// Seconds in `decode` over the timed images.
    pub decode_s: f64,
    /// Images in the timed batches (all but the warm-up ones).
    pub timed_images: usize,
    /// Timed images per second through `forward`.
    pub images_per_s_forward: f64,
    /// Timed images per second through `forward` and `decode`.
    pub images_per_s_with_decode: f64,
    /// The device the detector ran on.
    pub device: String,
    /// Network input `(width, height)`.
    pub input_size: (u32, u32),
    /// Images per batch.
    pub batch_size: usize,
}

impl DetectionReport {
    /// Scores detections already in original image coordinates (speeds left at 0).
    pub fn score(set: &dyn DetectionSet, dets: &[CocoDetection]) -> Result<Self> {
        let gt = to_coco(set)?;
        let ev = evaluate(&gt, dets, &CocoParams::default())?;
        let s = ev.summary.stats;
        let names = set.categories();
        Ok(DetectionReport {
            set: set.name(),
            images: set.len(),
            detections: dets.len(),
            ap: s[0],
            ap50: s[1],
            ap75: s[2],
            ap_small: s[3],
            ap_medium: s[4],
            ap_large: s[5],
            ar1: s[6],
            ar10: s[7],
            ar100: s[8],
            ar_small: s[9],
            ar_medium: s[10],
            ar_large: s[11],
            stats: s,
            per_category_ap: ev
                .per_category_ap()
                .into_iter()
                .map(|(id, ap)| {
                    let name = names
                        .iter()
                        .find(|c| c.id == id)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| id.to_string());
                    (name, ap)
                })
                .collect(),
            forward_s: 0.0,
            decode_s: 0.0,
            timed_images: 0,
            images_per_s_forward: 0.0,
            images_per_s_with_decode: 0.0,
            device: String::new(),
            input_size: (0, 0),
            batch_size: 0,
        })
    }
}

impl std::fmt::Display for DetectionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} images, {} detections",
            self.set, self.images, self.detections
        )?;
        if self.batch_size > 0 {
            write!(
                f,
                ", input {}x{}, batch {}, {}",
                self.input_size.0, self.input_size.1, self.batch_size, self.device
            )?;
        }
        writeln!(f)?;
        write!(f, "{}", crate::coco::Summary { stats: self.stats })?;
        if self.timed_images > 0 {
            write!(
                f,
                "speed over {} images: {:.1} images/s forward, {:.1} images/s with decode/NMS",
                self.timed_images, self.images_per_s_forward, self.images_per_s_with_decode
            )?;
        }
        Ok(())
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn detector_err<E: std::fmt::Display>(stage: &'static str) -> impl Fn(E) -> DetError {
    move |e| DetError::Detector {
        stage,
        message: e.to_string(),
    }
}

/// Evaluates a detector split in `forward` (images `[B, C, H, W]` -> raw outputs) and `decode`
/// (raw outputs + the batch -> one [`ImageDetections`] per image, network-input coordinates)
/// on `set`, letterboxed to `cfg.size` (`cfg` should be [`DetLoaderConfig::eval`]-like: no
/// augmentation, no shuffle, no dropped images). Writes the COCO results file to
/// `results_json` when given. Returns the report and the detections in original coordinates
/// (category ids of the set).
pub fn evaluate_detector<R, E1, E2, F, D>(
    set: Arc<dyn DetectionSet>,
    cfg: &DetLoaderConfig,
    device: Device,
    warmup: usize,
    mut forward: F,
    mut decode: D,
    results_json: Option<&Path>,
) -> Result<(DetectionReport, Vec<CocoDetection>)>
where
    E1: std::fmt::Display,
    E2: std::fmt::Display,
    F: FnMut(&Tensor) -> std::result::Result<R, E1>,
    D: FnMut(R, &DetBatch) -> std::result::Result<Vec<ImageDetections>, E2>,
{
    if cfg.augment.is_some() || cfg.drop_last {
        return Err(DetError::arg(
            "evaluation loader",
            "no augmentation and no dropped images (DetLoaderConfig::eval)",
            "a training configuration",
        ));
    }
    let loader = DetLoader::new(Arc::clone(&set), cfg.clone(), device)?;
    let cats = set.categories();
    let batches = loader.batches_per_epoch();
    let (mut t_fwd, mut t_dec, mut timed) = (0.0, 0.0, 0usize);
    let mut dets = Vec::new();
    for (bi, batch) in loader.epoch_from(0, 0).enumerate() {
        let batch = batch?;
        let count = bi >= warmup.min(batches.saturating_sub(1));
        let _guard = tch::no_grad_guard();
        sync(device);
        let t0 = Instant::now();
        let raw = forward(&batch.images).map_err(detector_err("forward"))?;
        sync(device);
        let t1 = Instant::now();
        let per_image = decode(raw, &batch).map_err(detector_err("decode"))?;
        sync(device);
        let t2 = Instant::now();
        if count {
            t_fwd += (t1 - t0).as_secs_f64();
            t_dec += (t2 - t1).as_secs_f64();
            timed += batch.image_ids.len();
        }
        if per_image.len() != batch.image_ids.len() {
            return Err(DetError::Detector {
                stage: "decode",
                message: format!(
                    "expected detections for {} images, got {}",
                    batch.image_ids.len(),
                    per_image.len()
                ),
            });
        }
        for (b, d) in per_image.iter().enumerate() {
            let map = &batch.maps[b];
            for (bx, score, class) in d.to_vecs()? {
                let cat = usize::try_from(class)
                    .ok()
                    .and_then(|c| cats.get(c))
                    .ok_or_else(|| DetError::Detector {
                        stage: "decode",
                        message: format!("class {class}: expected 0..{}", cats.len()),
                    })?;
                let o = map.inverse(bx);
                dets.push(CocoDetection {
                    image_id: batch.image_ids[b],
                    category_id: cat.id,
                    bbox: [o[0], o[1], o[2] - o[0], o[3] - o[1]],
                    score,
                });
            }
        }
    }
    crate::coco::validate_detections(&dets)?;
    if let Some(p) = results_json {
        write_detections(p, &dets)?;
    }
    let mut r = DetectionReport::score(set.as_ref(), &dets)?;
    let rate = |t: f64| if t > 0.0 { timed as f64 / t } else { 0.0 };
    r.forward_s = t_fwd;
    r.decode_s = t_dec;
    r.timed_images = timed;
    r.images_per_s_forward = rate(t_fwd);
    r.images_per_s_with_decode = rate(t_fwd + t_dec);
    r.device = format!("{device:?}");
    r.input_size = cfg.size;
    r.batch_size = cfg.batch_size;
    Ok((r, dets))
}

/// [`evaluate_detector`] for a detector that is one closure (images -> detections): both
/// speeds are then the same.
pub fn evaluate_fn<E, F>(
    set: Arc<dyn DetectionSet>,
    cfg: &DetLoaderConfig,
    device: Device,
    warmup: usize,
    f: F,
    results_json: Option<&Path>,
) -> Result<(DetectionReport, Vec<CocoDetection>)>
where
    E: std::fmt::Display,
    F: FnMut(&Tensor) -> std::result::Result<Vec<ImageDetections>, E>,
{
    evaluate_detector(
        set,
        cfg,
        device,
        warmup,
        f,
        |d, _| Ok::<_, DetError>(d),
        results_json,
    )
}
