//! SNIP multi-scale training (Singh & Davis 2018, "An Analysis of Scale Invariance in Object
//! Detection - SNIP", arXiv 1711.08189, Sec. 5; SNIPER, Singh et al. 2018, arXiv 1805.09300):
//! the detector trains on several input resolutions, and at each resolution only the ground
//! truth whose size `sqrt(wh)` in the *original* image lies in that resolution's valid range
//! counts; the rest is ignored (never matched, and background anchors overlapping it by more
//! than 0.3 are ignored), not treated as background.
//!
//! [`SnipLoader`] is a `train_kit::DataSource` over one det-core [`DetLoader`] per scale
//! (each resizes to its own input side), taking batches from the scales in turn; each
//! [`SnipBatch`] carries its scale's range and, per image, the resize factor from its
//! [`det_core::data::ImageMap`], so [`SnipBatch::loss`] measures sizes in original pixels
//! even under scale jitter. Inference over the same scales and ranges is
//! [`crate::inference::pyramid_detect`].

use std::sync::Arc;

use det_core::data::{DetBatch, DetLoader, DetLoaderConfig, DetectionSet};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::error::{PyramidError, Result};
use crate::levels::{sniper_ranges, ValidRange};
use crate::retinanet::{HeadOutputs, LossParts, RetinaNet, Targets};

/// One training scale: the network input side and the sizes (original pixels) it trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnipScale {
    /// Input side in pixels (square letterboxed input), at least 32.
    pub size: u32,
    /// Valid `sqrt(wh)` in original-image pixels.
    pub range: ValidRange,
}

/// The scales of a SNIP recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnipConfig {
    scales: Vec<SnipScale>,
}

impl SnipConfig {
    /// Checks that there is at least one scale and every input side is at least 32 pixels
    /// (the largest stride of the trunk).
    pub fn new(scales: Vec<SnipScale>) -> Result<Self> {
        if scales.is_empty() {
            return Err(PyramidError::config(
                "SNIP scales",
                "at least one (input side, valid range)",
                "an empty list",
            ));
        }
        if let Some(s) = scales.iter().find(|s| s.size < 32) {
            return Err(PyramidError::config(
                "SNIP input side",
                "at least 32 pixels (the trunk's largest stride)",
                s.size,
            ));
        }
        Ok(Self { scales })
    }

    /// SNIPER's three ranges `(-1, 80), (32, 150), (120, -1)` on the input sides `sizes`, in
    /// that order: the largest input trains the smallest objects, so `sizes` goes from the
    /// largest input side to the smallest.
    pub fn sniper(sizes: [u32; 3]) -> Result<Self> {
        let r = sniper_ranges();
        Self::new(
            sizes
                .iter()
                .zip(r)
                .map(|(&size, range)| SnipScale { size, range })
                .collect(),
        )
    }

    /// The scales in training order.
    pub fn scales(&self) -> &[SnipScale] {
        &self.scales
    }
}

/// A batch of one SNIP scale.
#[derive(Debug)]
pub struct SnipBatch {
    /// The images and ground truth at this scale's input side.
    pub batch: DetBatch,
    /// Index of the scale in [`SnipConfig::scales`].
    pub scale: usize,
    /// The scale's valid range (original pixels).
    pub range: ValidRange,
    /// Per image, input pixels per original pixel (`sqrt(|ax * ay|)` of its image map).
    pub size_scales: Vec<f64>,
}

impl SnipBatch {
    /// The targets with this scale's range (the first image's factor in `size_scale`; the
    /// per-image factors are used by [`SnipBatch::loss`]).
    pub fn targets(&self) -> Targets<'_> {
        Targets {
            range: self.range,
            size_scale: self.size_scales.first().copied().unwrap_or(1.0),
            ..Targets::of(&self.batch)
        }
    }

    /// `model`'s loss on `out` (the head outputs of `self.batch.images`): ground truth outside
    /// the scale's range, measured in each image's original pixels, is ignored.
    pub fn loss(&self, model: &RetinaNet, out: &HeadOutputs) -> Result<LossParts> {
        model.loss_scaled(out, &self.targets(), &self.size_scales)
    }
}

/// Batches of several input scales in turn, one [`DetLoader`] per scale.
pub struct SnipLoader {
    loaders: Vec<DetLoader>,
    cfg: SnipConfig,
}

impl std::fmt::Debug for SnipLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnipLoader")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl SnipLoader {
    /// One loader per scale of `cfg` over `set`: `base` with its `size` replaced by the
    /// scale's side (and the seed offset by the scale index, so the scales see the images in
    /// different orders).
    pub fn new(
        set: Arc<dyn DetectionSet>,
        base: &DetLoaderConfig,
        cfg: &SnipConfig,
        device: Device,
    ) -> Result<Self> {
        let loaders = cfg
            .scales
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let c = DetLoaderConfig {
                    size: (s.size, s.size),
                    seed: base.seed.wrapping_add(i as u64),
                    ..base.clone()
                };
                DetLoader::new(Arc::clone(&set), c, device).map_err(PyramidError::from)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            loaders,
            cfg: cfg.clone(),
        })
    }

    /// The scales.
    pub fn config(&self) -> &SnipConfig {
        &self.cfg
    }

    fn wrap(&self, scale: usize, batch: DetBatch) -> SnipBatch {
        let size_scales = batch
            .maps
            .iter()
            .map(|m| (m.ax * m.ay).abs().sqrt())
            .collect();
        SnipBatch {
            batch,
            scale,
            range: self.cfg.scales[scale].range,
            size_scales,
        }
    }

    /// Batches per scale and epoch (every scale sees the whole set once per epoch).
    fn per_scale(&self) -> usize {
        self.loaders
            .iter()
            .map(|l| l.batches_per_epoch())
            .min()
            .unwrap_or(0)
    }
}

impl train_kit::DataSource for SnipLoader {
    type Batch = SnipBatch;
    type Error = PyramidError;

    fn batches_per_epoch(&self) -> u64 {
        (self.per_scale() * self.loaders.len()) as u64
    }

    /// Batch `j` of an epoch comes from scale `j % n` (its batch `j / n`).
    fn epoch_from(
        &self,
        epoch: u64,
        skip: u64,
    ) -> impl Iterator<Item = Result<SnipBatch, PyramidError>> + '_ {
        let n = self.loaders.len();
        let per = self.per_scale();
        let total = per * n;
        let skip = usize::try_from(skip).unwrap_or(usize::MAX).min(total);
        let mut epochs: Vec<_> = self
            .loaders
            .iter()
            .enumerate()
            .map(|(i, l)| {
                // Batches of scale i before global index `skip`.
                let first = skip / n + usize::from(i < skip % n);
                l.epoch_from(epoch, first).take(per.saturating_sub(first))
            })
            .collect();
        (skip..total).filter_map(move |j| {
            let i = j % n;
            epochs[i]
                .next()
                .map(|b| b.map(|b| self.wrap(i, b)).map_err(Into::into))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use det_core::data::{MnistDet, MnistDetConfig};
    use tch::Tensor;
    use train_kit::DataSource;

    fn set() -> Arc<dyn DetectionSet> {
        let cfg = MnistDetConfig {
            width: 64,
            height: 64,
            min_digits: 2,
            max_digits: 3,
            min_size: 8.0,
            max_size: 32.0,
            max_clutter: 0,
            train_images: 6,
            test_images: 1,
            ..Default::default()
        };
        Arc::new(MnistDet::load(None, &cfg).unwrap().0)
    }

    #[test]
    fn bad_scales_are_refused_by_name() {
        let e = SnipConfig::new(vec![]).unwrap_err().to_string();
        assert!(e.contains("empty list"), "{e}");
        let e = SnipConfig::new(vec![SnipScale {
            size: 16,
            range: ValidRange::ALL,
        }])
        .unwrap_err()
        .to_string();
        assert!(e.contains("at least 32") && e.contains("16"), "{e}");
        let s = SnipConfig::sniper([256, 128, 64]).unwrap();
        assert_eq!(s.scales()[0].range.hi, Some(80.0));
        assert_eq!(s.scales()[2].size, 64);
    }

    #[test]
    fn scales_alternate_with_their_ranges_and_factors() {
        let cfg = SnipConfig::new(vec![
            SnipScale {
                size: 128,
                range: ValidRange::new(-1.0, 16.0).unwrap(),
            },
            SnipScale {
                size: 64,
                range: ValidRange::new(12.0, -1.0).unwrap(),
            },
        ])
        .unwrap();
        let base = DetLoaderConfig {
            batch_size: 2,
            shuffle: true,
            drop_last: true,
            size: (64, 64),
            augment: None,
            ..Default::default()
        };
        let l = SnipLoader::new(set(), &base, &cfg, Device::Cpu).unwrap();
        assert_eq!(l.batches_per_epoch(), 6);
        let all: Vec<_> = l.epoch_from(0, 0).map(|b| b.unwrap()).collect();
        assert_eq!(all.len(), 6);
        for (j, b) in all.iter().enumerate() {
            assert_eq!(b.scale, j % 2);
            let side = cfg.scales()[j % 2].size as i64;
            assert_eq!(b.batch.images.size()[2..], [side, side]);
            // 64 px canvases: 2x at 128, 1x at 64.
            let f = if j % 2 == 0 { 2.0 } else { 1.0 };
            assert!(b.size_scales.iter().all(|&s| (s - f).abs() < 1e-6), "{b:?}");
            assert_eq!(b.targets().range, cfg.scales()[j % 2].range);
        }
        // Resuming mid-epoch gives the same tail.
        let tail: Vec<_> = l.epoch_from(0, 3).map(|b| b.unwrap()).collect();
        assert_eq!(tail.len(), 3);
        for (a, b) in tail.iter().zip(&all[3..]) {
            assert_eq!(a.scale, b.scale);
            assert_eq!(a.batch.indices, b.batch.indices);
        }
    }

    #[test]
    fn invalid_ground_truth_is_ignored_not_background() {
        tch::manual_seed(0);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let model = crate::retinanet::tests::tiny(&vs, 10);
        let cfg = SnipConfig::new(vec![
            SnipScale {
                size: 128,
                range: ValidRange::ALL,
            },
            // Nothing on the 64 px canvases is this large: every box is invalid.
            SnipScale {
                size: 128,
                range: ValidRange::new(1000.0, -1.0).unwrap(),
            },
        ])
        .unwrap();
        let base = DetLoaderConfig {
            batch_size: 2,
            ..Default::default()
        };
        let l = SnipLoader::new(set(), &base, &cfg, Device::Cpu).unwrap();
        let b: Vec<_> = l.epoch_from(0, 0).take(2).map(|b| b.unwrap()).collect();
        let out = model.forward_t(&b[0].batch.images, true).unwrap();
        let all = b[0].loss(&model, &out).unwrap();
        assert!(all.positives > 0);
        let none = SnipBatch {
            range: b[1].range,
            size_scales: b[0].size_scales.clone(),
            scale: 1,
            batch: DetBatch {
                images: b[0].batch.images.shallow_clone(),
                boxes: b[0].batch.boxes.shallow_clone(),
                classes: b[0].batch.classes.shallow_clone(),
                ignore: b[0].batch.ignore.shallow_clone(),
                counts: b[0].batch.counts.shallow_clone(),
                image_ids: b[0].batch.image_ids.clone(),
                indices: b[0].batch.indices.clone(),
                maps: b[0].batch.maps.clone(),
            },
        };
        let l2 = none.loss(&model, &out).unwrap();
        assert_eq!(l2.positives, 0);
        // Fewer anchors count as background than with no ground truth at all: the ones over
        // the invalid digits are ignored.
        let empty = tch::Tensor::full_like(&b[0].batch.classes, -1);
        let t = Targets {
            classes: &empty,
            ..Targets::of(&b[0].batch)
        };
        let bg_only = model.loss(&out, &t).unwrap();
        assert!(
            l2.cls.double_value(&[]) < bg_only.cls.double_value(&[]),
            "{l2:?} vs {bg_only:?}"
        );
        // A wrong count of factors is refused.
        let e = model
            .loss_scaled(&out, &b[0].targets(), &[1.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 finite factors"), "{e}");
    }

    #[test]
    fn trains_through_the_trainer_over_two_scales() {
        tch::manual_seed(1);
        let mut vs = tch::nn::VarStore::new(Device::Cpu);
        let model = crate::retinanet::tests::tiny(&vs, 10);
        let cfg = SnipConfig::new(vec![
            SnipScale {
                size: 96,
                range: ValidRange::new(-1.0, 20.0).unwrap(),
            },
            SnipScale {
                size: 64,
                range: ValidRange::new(12.0, -1.0).unwrap(),
            },
        ])
        .unwrap();
        let base = DetLoaderConfig {
            batch_size: 2,
            shuffle: true,
            drop_last: true,
            ..Default::default()
        };
        let loader = SnipLoader::new(set(), &base, &cfg, Device::Cpu).unwrap();
        let tcfg = train_kit::TrainerConfig {
            epochs: 1,
            schedule: train_kit::Schedule::Constant { lr: 1e-3 },
            eval_every: 0,
            log_every: 0,
            ..Default::default()
        };
        let run = train_kit::RunOptions::default();
        let mut opt =
            train_kit::AdamW::with_single_group(&vs, train_kit::AdamWConfig::default()).unwrap();
        let mut seen = Vec::new();
        let report = train_kit::Trainer::new(&tcfg, &run)
            .unwrap()
            .fit(
                &mut vs,
                &mut opt,
                &loader,
                |b: SnipBatch, _: &train_kit::StepInfo| -> anyhow::Result<Tensor> {
                    seen.push(b.batch.images.size()[2]);
                    let out = model.forward_t(&b.batch.images, true)?;
                    Ok(b.loss(&model, &out)?.total)
                },
                train_kit::no_eval,
            )
            .unwrap();
        assert_eq!(report.optimizer_steps, 6);
        assert_eq!(seen, [96, 64, 96, 64, 96, 64]);
        assert!(report.epoch_loss().iter().all(|l| l.is_finite()));
    }
}
