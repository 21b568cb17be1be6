//! Batches of a detection set as tensors with padded per-image targets, from a seeded loader
//! whose epoch order depends only on `(seed, epoch)` and which can start an epoch at any batch
//! without building the ones before it (the `train_kit::DataSource` contract that makes a
//! mid-epoch resume exact). The layout of the targets follows the padded form of DETR-style and
//! YOLO loaders: `[B, M, 4]` boxes and `[B, M]` classes with -1 for padding, `M` the largest
//! number of boxes in the batch (at least [`DetLoaderConfig::pad_to`]).
//!
//! Each image is read on the CPU (by up to `workers` threads), moved to the loader's device and
//! transformed there: [`AugmentConfig::apply`] with draws from a generator seeded by
//! `(seed, epoch, image index)` when augmenting, else a letterbox to the input size. A batch
//! therefore does not depend on the batch size, the order of the other images or `workers`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::augment::{letterbox, AugmentConfig, ImageMap, Sample};
use super::{torch_err, DetectionSet};
use crate::error::{DetError, Result};
use crate::synth::SplitMix64;

/// How a [`DetLoader`] batches and transforms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetLoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Shuffle each epoch with a Fisher-Yates permutation seeded by `(seed, epoch)`.
    pub shuffle: bool,
    /// Leave out a last, smaller batch.
    pub drop_last: bool,
    /// Seed of the order and of the augmentation draws.
    pub seed: u64,
    /// Network input `(width, height)`.
    pub size: (u32, u32),
    /// Training augmentation; `None`: letterbox to `size` (evaluation).
    pub augment: Option<AugmentConfig>,
    /// Letterbox padding value (0..1), YOLO's grey 114/255 by default.
    pub fill: f64,
    /// Smallest `M` of the padded targets (a fixed `M` gives static shapes).
    pub pad_to: usize,
    /// Threads reading the images of a batch.
    pub workers: usize,
}

impl Default for DetLoaderConfig {
    fn default() -> Self {
        DetLoaderConfig {
            batch_size: 16,
            shuffle: true,
            drop_last: false,
            seed: 0,
            size: (256, 256),
            augment: Some(AugmentConfig::default()),
            fill: 114.0 / 255.0,
            pad_to: 0,
            workers: 1,
        }
    }
}

impl DetLoaderConfig {
    /// In order, no augmentation, every image: what evaluation wants.
    pub fn eval(size: (u32, u32), batch_size: usize) -> Self {
        DetLoaderConfig {
            batch_size,
            shuffle: false,
            drop_last: false,
            size,
            augment: None,
            ..DetLoaderConfig::default()
        }
    }
}

/// One batch. Boxes are `xyxy` in network-input pixels; `maps[b]` takes image `b`'s boxes
/// back to its original coordinates ([`ImageMap::inverse`]).
#[derive(Debug)]
pub struct DetBatch {
    /// `[B, C, H, W]` float32 in `[0, 1]`.
    pub images: Tensor,
    /// `[B, M, 4]` float32, zeros where padded.
    pub boxes: Tensor,
    /// `[B, M]` int64 class indices, -1 where padded.
    pub classes: Tensor,
    /// `[B, M]` bool: crowd / difficult boxes (evaluation-only; false where padded).
    pub ignore: Tensor,
    /// `[B]` int64: real boxes per image.
    pub counts: Tensor,
    /// Per image: its COCO `image_id`.
    pub image_ids: Vec<i64>,
    /// Per image: its index in the set.
    pub indices: Vec<usize>,
    /// Per image: the map from the original image to the network input.
    pub maps: Vec<ImageMap>,
}

/// SplitMix64 finaliser, to spread `(seed, epoch, index)` over the seed space.
fn mix(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded loader over a detection set.
pub struct DetLoader {
    set: Arc<dyn DetectionSet>,
    cfg: DetLoaderConfig,
    device: Device,
}

impl std::fmt::Debug for DetLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetLoader")
            .field("set", &self.set.name())
            .field("len", &self.set.len())
            .field("cfg", &self.cfg)
            .field("device", &self.device)
            .finish()
    }
}

impl DetLoader {
    /// A loader over `set` producing batches on `device`.
    pub fn new(set: Arc<dyn DetectionSet>, cfg: DetLoaderConfig, device: Device) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(DetError::arg("batch_size", "> 0", 0));
        }
        if cfg.size.0 == 0 || cfg.size.1 == 0 {
            return Err(DetError::arg(
                "size",
                "a non-zero width and height",
                format!("{:?}", cfg.size),
            ));
        }
        if let Some(a) = &cfg.augment {
            let (lo, hi) = a.scale;
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                return Err(DetError::arg(
                    "augment.scale",
                    "0 < lo <= hi < inf",
                    format!("{:?}", a.scale),
                ));
            }
        }
        Ok(DetLoader { set, cfg, device })
    }

    /// The loader's settings.
    pub fn config(&self) -> &DetLoaderConfig {
        &self.cfg
    }

    /// The device batches are put on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The data set it reads.
    pub fn set(&self) -> &Arc<dyn DetectionSet> {
        &self.set
    }

    /// Batches per epoch: `len / batch_size`, rounded up unless `drop_last`.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, bs) = (self.set.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    }

    /// The image order of `epoch`: a Fisher-Yates permutation seeded by `(seed, epoch)`, or
    /// `0..len` without shuffle.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.set.len()).collect();
        if self.cfg.shuffle {
            let mut r = SplitMix64::new(mix(self.cfg.seed ^ mix(epoch)));
            for i in (1..order.len()).rev() {
                let j = r.below(i as u64 + 1) as usize;
                order.swap(i, j);
            }
        }
        order
    }

    /// The batches of `epoch` from batch `first` on; the same as the tail of
    /// `epoch_from(epoch, 0)`, without building the skipped batches.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> DetEpoch<'_> {
        self.epoch_strided(epoch, first, 1)
    }

    /// Batches `first`, `first + stride`, ... of `epoch` (one rank's shard in data-parallel
    /// training), without building the others. `stride` 0 is taken as 1.
    pub fn epoch_strided(&self, epoch: u64, first: usize, stride: usize) -> DetEpoch<'_> {
        let order = self.order(epoch);
        let n = self.batches_per_epoch();
        let chunks: Vec<Vec<usize>> = order
            .chunks(self.cfg.batch_size)
            .take(n)
            .skip(first)
            .step_by(stride.max(1))
            .map(<[usize]>::to_vec)
            .collect();
        DetEpoch {
            loader: self,
            epoch,
            chunks: chunks.into_iter(),
        }
    }

    /// One image through the loader's transform for `epoch`.
    pub fn sample(&self, index: usize, epoch: u64) -> Result<Sample> {
        let s = Sample::from_set(self.set.as_ref(), index, Device::Cpu)?;
        self.transform(s, epoch)
    }

    fn transform(&self, s: Sample, epoch: u64) -> Result<Sample> {
        let s = Sample {
            image: s
                .image
                .f_to_device(self.device)
                .map_err(torch_err("moving an image to the device"))?,
            ..s
        };
        match &self.cfg.augment {
            Some(a) => {
                let seed = mix(self.cfg.seed ^ mix(epoch ^ mix(s.index as u64 ^ 0xA5A5)));
                let d = a.draw(&mut SplitMix64::new(seed));
                a.apply(s, &d, self.cfg.size)
            }
            None => letterbox(s, self.cfg.size.0, self.cfg.size.1, self.cfg.fill),
        }
    }

    /// The batch of images `indices` (transformed for `epoch`).
    pub fn batch(&self, indices: &[usize], epoch: u64) -> Result<DetBatch> {
        if indices.is_empty() {
            return Err(DetError::arg("batch indices", "at least one index", "none"));
        }
        let set = self.set.as_ref();
        let workers = self.cfg.workers.clamp(1, indices.len());
        let loaded: Vec<Result<Sample>> = if workers == 1 {
            indices
                .iter()
                .map(|&i| Sample::from_set(set, i, Device::Cpu))
                .collect()
        } else {
            let per = indices.len().div_ceil(workers);
            std::thread::scope(|scope| {
                let handles: Vec<_> = indices
                    .chunks(per)
                    .map(|run| {
                        scope.spawn(move || {
                            run.iter()
                                .map(|&i| Sample::from_set(set, i, Device::Cpu))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| {
                        h.join().unwrap_or_else(|_| {
                            vec![Err(DetError::arg(
                                "image reader",
                                "a worker that returns",
                                "a worker that panicked",
                            ))]
                        })
                    })
                    .collect()
            })
        };
        let mut samples = Vec::with_capacity(indices.len());
        for s in loaded {
            samples.push(self.transform(s?, epoch)?);
        }
        self.collate(samples)
    }

    fn collate(&self, samples: Vec<Sample>) -> Result<DetBatch> {
        let b = samples.len();
        let m = samples
            .iter()
            .map(|s| s.boxes.len())
            .max()
            .unwrap_or(0)
            .max(self.cfg.pad_to);
        let mut boxes = vec![0f32; b * m * 4];
        let mut classes = vec![-1i64; b * m];
        let mut ignore = vec![false; b * m];
        let mut counts = Vec::with_capacity(b);
        for (i, s) in samples.iter().enumerate() {
            for (k, bx) in s.boxes.iter().enumerate() {
                for (c, v) in bx.iter().enumerate() {
                    boxes[(i * m + k) * 4 + c] = *v as f32;
                }
                classes[i * m + k] = s.classes[k];
                ignore[i * m + k] = s.ignore[k];
            }
            counts.push(s.boxes.len() as i64);
        }
        let images: Vec<&Tensor> = samples.iter().map(|s| &s.image).collect();
        let dev = self.device;
        let ctx = "building a batch";
        let (bi, mi) = (b as i64, m as i64);
        Ok(DetBatch {
            images: Tensor::f_stack(&images, 0).map_err(torch_err(format!(
                "{ctx}: stacking images (all must be [{}, {}, {}])",
                self.set.channels(),
                self.cfg.size.1,
                self.cfg.size.0
            )))?,
            boxes: Tensor::f_from_slice(&boxes)
                .and_then(|t| t.f_view([bi, mi, 4]))
                .and_then(|t| t.f_to_device(dev))
                .map_err(torch_err(ctx))?,
            classes: Tensor::f_from_slice(&classes)
                .and_then(|t| t.f_view([bi, mi]))
                .and_then(|t| t.f_to_device(dev))
                .map_err(torch_err(ctx))?,
            ignore: Tensor::f_from_slice(&ignore)
                .and_then(|t| t.f_view([bi, mi]))
                .and_then(|t| t.f_to_device(dev))
                .map_err(torch_err(ctx))?,
            counts: Tensor::f_from_slice(&counts)
                .and_then(|t| t.f_to_device(dev))
                .map_err(torch_err(ctx))?,
            image_ids: samples.iter().map(|s| s.image_id).collect(),
            indices: samples.iter().map(|s| s.index).collect(),
            maps: samples.iter().map(|s| s.map).collect(),
        })
    }
}

/// The batches of one epoch, built on demand.
pub struct DetEpoch<'a> {
    loader: &'a DetLoader,
    epoch: u64,
    chunks: std::vec::IntoIter<Vec<usize>>,
}

impl DetEpoch<'_> {
    /// Batches not yet yielded.
    pub fn remaining(&self) -> usize {
        self.chunks.len()
    }
}

impl Iterator for DetEpoch<'_> {
    type Item = Result<DetBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        let c = self.chunks.next()?;
        Some(self.loader.batch(&c, self.epoch))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.chunks.len(), Some(self.chunks.len()))
    }
}

impl ExactSizeIterator for DetEpoch<'_> {}

impl train_kit::DataSource for DetLoader {
    type Batch = DetBatch;
    type Error = DetError;

    fn batches_per_epoch(&self) -> u64 {
        DetLoader::batches_per_epoch(self) as u64
    }

    fn epoch_from(&self, epoch: u64, skip: u64) -> impl Iterator<Item = Result<DetBatch>> + '_ {
        DetLoader::epoch_from(self, epoch, usize::try_from(skip).unwrap_or(usize::MAX))
    }

    fn epoch_strided(
        &self,
        epoch: u64,
        first: u64,
        stride: u64,
    ) -> impl Iterator<Item = Result<DetBatch>> + '_ {
        let big = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        DetLoader::epoch_strided(self, epoch, big(first), big(stride))
    }
}
