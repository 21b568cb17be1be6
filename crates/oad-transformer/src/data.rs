//! Per-frame feature streams and the official windowing (`dataset.py` `TRNTHUMOSDataLayer`).
//!
//! A window ends at its target frame `t` and holds the `enc_steps` frames `t - enc_steps + 1
//! ..= t`; its future targets are the frames `t + 1 ..= t + dec_steps`. The official layer
//! builds, per video of `T` frames, `end = start + enc_steps` for `end` in `enc_steps .. T -
//! dec_steps` (so `t = end - 1` runs from `enc_steps - 1` to `T - dec_steps - 2`, stride 1),
//! and keeps a window only when its target frame is not ambiguous (`class_h_target.argmax()
//! != 21`). [`WindowSpec::pad_start`] also gives the first `enc_steps - 1` frames a window,
//! zero features standing in for the frames before the stream's start (what a live stream
//! sees), so that every frame but the last `dec_steps + 1` is scored.

use std::path::Path;

use ndarray::{Array1, Array2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::config::OadConfig;
use crate::error::{OadError, Result};

/// One stream: features `[T, F]` (float32, CPU) and one class index per frame.
#[derive(Debug)]
pub struct FeatureStream {
    /// A name for errors and reports (video or subject).
    pub name: String,
    /// `[T, F]` float32.
    pub features: Tensor,
    /// `T` class indices in `0..num_classes`.
    pub labels: Vec<i64>,
}

impl FeatureStream {
    /// Checks `features` is `[T, F]` floating with `T` labels, each in `0..num_classes`.
    pub fn new(
        name: impl Into<String>,
        features: Tensor,
        labels: Vec<i64>,
        num_classes: i64,
    ) -> Result<Self> {
        let name = name.into();
        let s = features.size();
        if s.len() != 2 || !features.is_floating_point() {
            return Err(OadError::Stream(format!(
                "`{name}`: features must be [T, F] floating, got {s:?} {:?}",
                features.kind()
            )));
        }
        if s[0] as usize != labels.len() {
            return Err(OadError::Labels(format!(
                "`{name}`: {} labels for {} feature frames",
                labels.len(),
                s[0]
            )));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| !(0..num_classes).contains(*l))
        {
            return Err(OadError::Labels(format!(
                "`{name}`: label {l} at frame {i}: expected in 0..{num_classes}"
            )));
        }
        Ok(FeatureStream {
            name,
            features: features
                .to_kind(Kind::Float)
                .to_device(Device::Cpu)
                .contiguous(),
            labels,
        })
    }

    /// Reads `features` (`.npy` float32 `[T, F]`) and `labels` (`.npy` int64 `[T]`).
    pub fn from_npy(
        name: impl Into<String>,
        features: &Path,
        labels: &Path,
        num_classes: i64,
    ) -> Result<Self> {
        let f: Array2<f32> = datasets::npy::read_npy(features)?;
        let l: Array1<i64> = datasets::npy::read_npy(labels)?;
        let (t, w) = f.dim();
        let data: Vec<f32> = f.iter().copied().collect();
        let tensor = Tensor::from_slice(&data).view([t as i64, w as i64]);
        Self::new(name, tensor, l.to_vec(), num_classes)
    }

    /// Every stream of a folder: `<name>.features.npy` (float32 `[T, F]`) with its
    /// `<name>.labels.npy` (int64 `[T]`), sorted by name. An empty folder, a features file
    /// without its labels, or a malformed file is an error naming the file.
    pub fn read_dir(dir: &Path, num_classes: i64) -> Result<Vec<Self>> {
        let entries = std::fs::read_dir(dir).map_err(|e| OadError::Data {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".features.npy"))
                    .map(String::from)
            })
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(OadError::Data {
                path: dir.to_path_buf(),
                reason: "no <name>.features.npy stream in the folder".into(),
            });
        }
        names
            .iter()
            .map(|n| {
                let labels = dir.join(format!("{n}.labels.npy"));
                if !labels.is_file() {
                    return Err(OadError::Data {
                        path: labels,
                        reason: format!("the labels of stream `{n}` are missing"),
                    });
                }
                Self::from_npy(
                    n.clone(),
                    &dir.join(format!("{n}.features.npy")),
                    &labels,
                    num_classes,
                )
            })
            .collect()
    }

    /// Frames in the stream.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the stream has no frame.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Feature width.
    pub fn width(&self) -> i64 {
        self.features.size()[1]
    }
}

/// How windows are cut from a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Frames per window (`enc_steps`).
    pub enc_steps: i64,
    /// Future frames each window is labelled with (`dec_steps` = queries).
    pub dec_steps: i64,
    /// Target frames advance by this many frames (1 in the official protocol).
    pub stride: i64,
    /// Give the first `enc_steps - 1` frames a window too, zero-padded before the start.
    pub pad_start: bool,
}

impl WindowSpec {
    /// The official windowing for `cfg`: stride 1, no padding, `dec_steps` = its queries
    /// (`dec_steps` for a model without a decoder: pass the queries of the model it is compared
    /// with, so both score the same frames).
    pub fn official(cfg: &OadConfig, dec_steps: i64) -> Self {
        WindowSpec {
            enc_steps: cfg.enc_steps,
            dec_steps,
            stride: 1,
            pad_start: false,
        }
    }

    /// The target frames of a stream of `len` frames, before the ambiguous ones are dropped:
    /// `first, first + stride, ..` up to `len - dec_steps - 2`.
    pub fn targets(&self, len: usize) -> Vec<i64> {
        let first = if self.pad_start {
            0
        } else {
            self.enc_steps - 1
        };
        let last = len as i64 - self.dec_steps - 2;
        (first..=last)
            .step_by(self.stride.max(1) as usize)
            .collect()
    }

    fn validate(&self) -> Result<()> {
        if self.enc_steps < 1 || self.dec_steps < 0 || self.stride < 1 {
            return Err(OadError::Config(format!(
                "window: enc_steps {} >= 1, dec_steps {} >= 0, stride {} >= 1 expected",
                self.enc_steps, self.dec_steps, self.stride
            )));
        }
        Ok(())
    }
}

/// One batch of windows.
#[derive(Debug)]
pub struct WindowBatch {
    /// `[B, enc_steps, F]`, oldest frame first.
    pub features: Tensor,
    /// `[B]` the target frames' classes.
    pub current: Tensor,
    /// `[B, dec_steps]` the future frames' classes.
    pub future: Tensor,
    /// `[B, C]` one-hot of `current` (the soft-target loss's input).
    pub current_onehot: Tensor,
    /// `[B, dec_steps, C]` one-hot of `future`.
    pub future_onehot: Tensor,
}

/// All windows of a set of streams, built lazily batch by batch.
#[derive(Debug)]
pub struct WindowSet {
    spec: WindowSpec,
    num_classes: i64,
    /// Each stream's features with `enc_steps - 1` zero rows in front.
    padded: Vec<Tensor>,
    labels: Vec<Vec<i64>>,
    names: Vec<String>,
    /// `(stream, target frame)`.
    samples: Vec<(usize, i64)>,
}

impl WindowSet {
    /// Cuts `streams` with `spec`; windows whose target frame is `ambiguous` are dropped. A
    /// stream too short for one window, an empty list, or streams of different widths are
    /// errors.
    pub fn new(
        streams: &[FeatureStream],
        spec: WindowSpec,
        num_classes: i64,
        ambiguous: Option<i64>,
    ) -> Result<Self> {
        spec.validate()?;
        let Some(first) = streams.first() else {
            return Err(OadError::Stream("no stream to cut windows from".into()));
        };
        let width = first.width();
        let (mut padded, mut labels, mut names, mut samples) = (vec![], vec![], vec![], vec![]);
        for (k, s) in streams.iter().enumerate() {
            if s.width() != width {
                return Err(OadError::Stream(format!(
                    "`{}` has {}-d features, `{}` {width}-d",
                    s.name,
                    s.width(),
                    first.name
                )));
            }
            let targets = spec.targets(s.len());
            if targets.is_empty() {
                let need = if spec.pad_start {
                    0
                } else {
                    spec.enc_steps - 1
                } + spec.dec_steps
                    + 2;
                return Err(OadError::Stream(format!(
                    "`{}` has {} frames: one window of {} steps with {} future steps needs at \
                     least {need}",
                    s.name,
                    s.len(),
                    spec.enc_steps,
                    spec.dec_steps
                )));
            }
            if let Some((i, l)) = s
                .labels
                .iter()
                .enumerate()
                .find(|(_, l)| !(0..num_classes).contains(*l))
            {
                return Err(OadError::Labels(format!(
                    "`{}`: label {l} at frame {i}: expected in 0..{num_classes}",
                    s.name
                )));
            }
            samples.extend(
                targets
                    .into_iter()
                    .filter(|&t| Some(s.labels[t as usize]) != ambiguous)
                    .map(|t| (k, t)),
            );
            let pad = Tensor::zeros([spec.enc_steps - 1, width], (Kind::Float, Device::Cpu));
            padded.push(Tensor::cat(&[&pad, &s.features], 0));
            labels.push(s.labels.clone());
            names.push(s.name.clone());
        }
        Ok(WindowSet {
            spec,
            num_classes,
            padded,
            labels,
            names,
            samples,
        })
    }

    /// The windowing.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Windows in the set.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the set holds no window (every target ambiguous).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `(stream name, target frame)` of window `i`.
    pub fn sample(&self, i: usize) -> Option<(&str, i64)> {
        self.samples
            .get(i)
            .map(|&(s, t)| (self.names[s].as_str(), t))
    }

    /// Feature width.
    pub fn width(&self) -> i64 {
        self.padded.first().map_or(0, |p| p.size()[1])
    }

    /// The windows `indices` as one batch on `device`.
    pub fn batch(&self, indices: &[usize], device: Device) -> Result<WindowBatch> {
        let (e, q) = (self.spec.enc_steps, self.spec.dec_steps);
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.samples.len()) {
            return Err(OadError::Stream(format!(
                "window {bad} of {}",
                self.samples.len()
            )));
        }
        let mut windows = Vec::with_capacity(indices.len());
        let (mut cur, mut fut) = (Vec::with_capacity(indices.len()), Vec::new());
        for &i in indices {
            let (s, t) = self.samples[i];
            // Frame t sits at row t + e - 1 of the padded stream: the window is rows t ..= t + e - 1.
            windows.push(self.padded[s].narrow(0, t, e));
            let l = &self.labels[s];
            cur.push(l[t as usize]);
            fut.extend((1..=q).map(|j| l[(t + j) as usize]));
        }
        let features = Tensor::stack(&windows, 0).to_device(device);
        let current = Tensor::from_slice(&cur).to_device(device);
        let future = Tensor::from_slice(&fut)
            .view([indices.len() as i64, q])
            .to_device(device);
        let c = self.num_classes;
        Ok(WindowBatch {
            current_onehot: current.one_hot(c).to_kind(Kind::Float),
            future_onehot: future.one_hot(c).to_kind(Kind::Float),
            features,
            current,
            future,
        })
    }
}

/// Seeded batches of a [`WindowSet`] for train-kit's `Trainer`: the order of an epoch is a
/// permutation from `ChaCha8Rng(seed ^ epoch * golden)`, so it depends on `(seed, epoch)` only
/// and an epoch restarts at any batch.
#[derive(Debug)]
pub struct WindowLoader<'a> {
    set: &'a WindowSet,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
    device: Device,
}

impl<'a> WindowLoader<'a> {
    /// A loader of `set` in batches of `batch_size` on `device`.
    pub fn new(
        set: &'a WindowSet,
        batch_size: usize,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
        device: Device,
    ) -> Result<Self> {
        if batch_size == 0 || set.is_empty() || (drop_last && set.len() < batch_size) {
            return Err(OadError::Stream(format!(
                "loader: batch size {batch_size} over {} windows (drop_last {drop_last}) gives no batch",
                set.len()
            )));
        }
        Ok(WindowLoader {
            set,
            batch_size,
            shuffle,
            drop_last,
            seed,
            device,
        })
    }

    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.set.len()).collect();
        if self.shuffle {
            let mut rng =
                ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            idx.shuffle(&mut rng);
        }
        idx
    }
}

impl train_kit::DataSource for WindowLoader<'_> {
    type Batch = WindowBatch;
    type Error = OadError;

    fn batches_per_epoch(&self) -> u64 {
        let n = self.set.len();
        (if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }) as u64
    }

    fn epoch_from(&self, epoch: u64, skip: u64) -> impl Iterator<Item = Result<WindowBatch>> + '_ {
        let order = self.order(epoch);
        let per_epoch = self.batches_per_epoch() as usize;
        (skip as usize..per_epoch).map(move |b| {
            let end = ((b + 1) * self.batch_size).min(order.len());
            self.set
                .batch(&order[b * self.batch_size..end], self.device)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use train_kit::DataSource;

    /// 12 frames; frame i's single feature is i + 1 (so padding zeros stand out); labels
    /// 0 0 1 1 1 2(ambiguous) 1 0 0 1 1 0.
    fn hand_made() -> FeatureStream {
        let f = Tensor::arange_start(1, 13, (Kind::Float, Device::Cpu)).view([12, 1]);
        FeatureStream::new("hand", f, vec![0, 0, 1, 1, 1, 2, 1, 0, 0, 1, 1, 0], 3).unwrap()
    }

    #[test]
    fn official_windows_first_last_and_ignore_rule() {
        let spec = WindowSpec {
            enc_steps: 4,
            dec_steps: 2,
            stride: 1,
            pad_start: false,
        };
        // end in 4 .. 12 - 2 = 10  ->  t = 3 ..= 8.
        assert_eq!(spec.targets(12), vec![3, 4, 5, 6, 7, 8]);
        let set = WindowSet::new(&[hand_made()], spec, 3, Some(2)).unwrap();
        // Frame 5 is ambiguous: its window is dropped.
        let ts: Vec<i64> = (0..set.len()).map(|i| set.sample(i).unwrap().1).collect();
        assert_eq!(ts, vec![3, 4, 6, 7, 8]);
        let b = set.batch(&[0, 4], Device::Cpu).unwrap();
        assert_eq!(b.features.size(), [2, 4, 1]);
        let f = Vec::<f32>::try_from(b.features.view([-1])).unwrap();
        assert_eq!(f, vec![1., 2., 3., 4., 6., 7., 8., 9.]);
        assert_eq!(Vec::<i64>::try_from(b.current).unwrap(), vec![1, 0]);
        // Futures of t = 3 (frames 4, 5) and t = 8 (frames 9, 10); the ambiguous future stays.
        assert_eq!(
            Vec::<i64>::try_from(b.future.view([-1])).unwrap(),
            vec![1, 2, 1, 1]
        );
        assert_eq!(b.future_onehot.size(), [2, 2, 3]);
    }

    #[test]
    fn padding_at_the_start_and_stride() {
        let spec = WindowSpec {
            enc_steps: 4,
            dec_steps: 2,
            stride: 3,
            pad_start: true,
        };
        assert_eq!(spec.targets(12), vec![0, 3, 6]);
        let set = WindowSet::new(&[hand_made()], spec, 3, None).unwrap();
        let b = set.batch(&[0, 1], Device::Cpu).unwrap();
        let f = Vec::<f32>::try_from(b.features.view([-1])).unwrap();
        // t = 0 sees three padding zeros then frame 0; t = 3 sees frames 0..=3.
        assert_eq!(f, vec![0., 0., 0., 1., 1., 2., 3., 4.]);
    }

    #[test]
    fn short_streams_bad_labels_and_widths_are_errors() {
        let spec = WindowSpec {
            enc_steps: 4,
            dec_steps: 2,
            stride: 1,
            pad_start: false,
        };
        let short = FeatureStream::new(
            "short",
            Tensor::zeros([6, 1], (Kind::Float, Device::Cpu)),
            vec![0; 6],
            3,
        )
        .unwrap();
        let e = WindowSet::new(&[short], spec, 3, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`short` has 6 frames") && e.contains("at least 7"),
            "{e}"
        );
        let e = FeatureStream::new(
            "x",
            Tensor::zeros([2, 1], (Kind::Float, Device::Cpu)),
            vec![0, 3],
            3,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("label 3 at frame 1"), "{e}");
        assert!(FeatureStream::new(
            "x",
            Tensor::zeros([2, 1], (Kind::Float, Device::Cpu)),
            vec![0],
            3
        )
        .is_err());
        let wide = FeatureStream::new(
            "wide",
            Tensor::zeros([12, 2], (Kind::Float, Device::Cpu)),
            vec![0; 12],
            3,
        )
        .unwrap();
        assert!(WindowSet::new(&[hand_made(), wide], spec, 3, None).is_err());
        assert!(WindowSet::new(&[], spec, 3, None).is_err());
    }

    #[test]
    fn npy_streams_and_malformed_files() {
        let d = tempfile::tempdir().unwrap();
        let (fp, lp) = (d.path().join("f.npy"), d.path().join("l.npy"));
        datasets::npy::write_npy(&fp, &Array2::<f32>::from_elem((5, 3), 0.5)).unwrap();
        datasets::npy::write_npy(&lp, &Array1::<i64>::from(vec![0, 1, 1, 0, 2])).unwrap();
        let s = FeatureStream::from_npy("v", &fp, &lp, 3).unwrap();
        assert_eq!((s.len(), s.width()), (5, 3));
        let dir = FeatureStream::read_dir(d.path(), 3);
        assert!(dir
            .unwrap_err()
            .to_string()
            .contains("no <name>.features.npy"));
        std::fs::rename(&fp, d.path().join("v.features.npy")).unwrap();
        let e = FeatureStream::read_dir(d.path(), 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("v.labels.npy"), "{e}");
        std::fs::copy(&lp, d.path().join("v.labels.npy")).unwrap();
        assert_eq!(FeatureStream::read_dir(d.path(), 3).unwrap()[0].name, "v");
        std::fs::rename(d.path().join("v.features.npy"), &fp).unwrap();
        std::fs::write(&lp, b"garbage").unwrap();
        let e = FeatureStream::from_npy("v", &fp, &lp, 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("l.npy"), "{e}");
    }

    #[test]
    fn loader_order_depends_on_seed_and_epoch_only() {
        let spec = WindowSpec {
            enc_steps: 2,
            dec_steps: 1,
            stride: 1,
            pad_start: true,
        };
        let set = WindowSet::new(&[hand_made()], spec, 3, None).unwrap();
        let l = WindowLoader::new(&set, 3, true, false, 7, Device::Cpu).unwrap();
        assert_eq!(l.batches_per_epoch(), 4);
        let all: Vec<Tensor> = l.epoch_from(1, 0).map(|b| b.unwrap().current).collect();
        let tail: Vec<Tensor> = l.epoch_from(1, 2).map(|b| b.unwrap().current).collect();
        assert!(all[2].equal(&tail[0]) && all[3].equal(&tail[1]));
        assert!(WindowLoader::new(&set, 100, true, true, 0, Device::Cpu).is_err());
    }
}
