//! A real per-frame stream for online action detection on the CPU: seglearn's smartwatch
//! recordings (`datasets::watch`, PyPI `seglearn==1.2.5`: 140 sets of 20 repetitions of 7
//! shoulder exercises by 10 subjects, six-axis IMU at 50 Hz).
//!
//! Each subject's recordings are joined, in the data set's order, into one long stream with a
//! rest between two sets (and before the first and after the last): `gap_seconds` long (drawn
//! per gap from a seeded generator), the signal blending linearly from the last sample of one
//! set to the first of the next plus Gaussian noise of `rest_noise` times each channel's
//! standard deviation. Rest samples are the background class 0, a set's samples the class
//! `exercise + 1`. The set boundaries, the exercises and every sample inside a set are the
//! recordings' own; only the rests are synthesised.
//!
//! Frames are fixed windows of the raw signal, `window` samples ending at the frame, every
//! `hop` samples (causal: a frame sees only the past); a frame's feature is, per channel, the
//! mean, standard deviation, minimum, maximum and mean absolute first difference over its
//! window (30 numbers), standardised with the training streams' statistics; its label is the
//! class of the window's last sample. Streams split by subject: no subject is in both.

use datasets::watch::{Watch, WatchRecording};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::data::FeatureStream;
use crate::error::{OadError, Result};

/// Feature width of a watch frame: 6 channels x (mean, std, min, max, mean |diff|).
pub const WATCH_FEATURES: i64 = 30;
/// Classes of the watch stream: background (rest) + the 7 exercises.
pub const WATCH_CLASSES: i64 = 8;

/// How the watch recordings become streams.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchStreamConfig {
    /// Samples per frame window (50 = 1 s).
    pub window: i64,
    /// Samples between frames (25 = 0.5 s, 2 frames per second).
    pub hop: i64,
    /// Rest length between two sets, drawn uniformly in this range (seconds).
    pub gap_seconds: (f64, f64),
    /// Rest noise, in units of each channel's standard deviation over all recordings.
    pub rest_noise: f64,
    /// Subjects whose stream is a test stream (the others train).
    pub test_subjects: Vec<i64>,
    /// Seed of the rest lengths and noise.
    pub seed: u64,
}

impl Default for WatchStreamConfig {
    fn default() -> Self {
        WatchStreamConfig {
            window: 50,
            hop: 25,
            gap_seconds: (3.0, 8.0),
            rest_noise: 0.05,
            test_subjects: vec![8, 9, 10],
            seed: 0,
        }
    }
}

/// The train and test streams (one per subject) and the class names.
#[derive(Debug)]
pub struct WatchStreams {
    /// One stream per training subject.
    pub train: Vec<FeatureStream>,
    /// One stream per test subject.
    pub test: Vec<FeatureStream>,
    /// `background` then the 7 exercises.
    pub classes: Vec<String>,
}

/// One subject's recordings joined with rests: samples `[S, 6]` and per-sample classes.
fn join(
    recs: &[&WatchRecording],
    cfg: &WatchStreamConfig,
    channel_std: &[f32],
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, Vec<i64>)> {
    let rate = datasets::watch::WATCH_RATE_HZ;
    let mut pieces: Vec<Tensor> = Vec::new();
    let mut labels: Vec<i64> = Vec::new();
    let mut rest = |from: &Tensor, to: &Tensor, pieces: &mut Vec<Tensor>, labels: &mut Vec<i64>| {
        let (lo, hi) = cfg.gap_seconds;
        let n = (rng.gen_range(lo..=hi) * rate).round().max(1.0) as i64;
        let w = Tensor::linspace(0.0, 1.0, n, (Kind::Float, Device::Cpu)).unsqueeze(1);
        let base = from * (1.0 - &w) + to * &w;
        let noise: Vec<f32> = (0..n * 6)
            .map(|i| {
                // Box-Muller from the seeded generator: the rests do not touch torch's RNG.
                let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (z * cfg.rest_noise) as f32 * channel_std[(i % 6) as usize]
            })
            .collect();
        pieces.push(base + Tensor::from_slice(&noise).view([n, 6]));
        labels.extend(std::iter::repeat_n(0, n as usize));
    };
    let Some(first) = recs.first() else {
        return Err(OadError::Stream("a subject without recordings".into()));
    };
    let start = first.signal.get(0).unsqueeze(0);
    rest(&start, &start, &mut pieces, &mut labels);
    for (i, r) in recs.iter().enumerate() {
        let s = r.signal.to_kind(Kind::Float);
        let t = s.size()[0];
        if !(0..7).contains(&r.exercise) || t < 2 {
            return Err(OadError::Labels(format!(
                "watch recording {i}: exercise {} of 0..7, {t} samples",
                r.exercise
            )));
        }
        pieces.push(s.shallow_clone());
        labels.extend(std::iter::repeat_n(r.exercise + 1, t as usize));
        let end = s.get(t - 1).unsqueeze(0);
        let next = recs
            .get(i + 1)
            .map_or(end.shallow_clone(), |n| n.signal.get(0).unsqueeze(0));
        rest(&end, &next, &mut pieces, &mut labels);
    }
    Ok((Tensor::cat(&pieces, 0), labels))
}

/// Frame features `[K, 30]` of samples `[S, 6]` and each frame's label (its last sample's).
pub fn frame_features(
    signal: &Tensor,
    labels: &[i64],
    window: i64,
    hop: i64,
) -> Result<(Tensor, Vec<i64>)> {
    let s = signal.size();
    if s.len() != 2
        || s[1] != 6
        || s[0] < window
        || window < 2
        || hop < 1
        || s[0] as usize != labels.len()
    {
        return Err(OadError::Stream(format!(
            "watch frames: signal {s:?} with {} labels, window {window}, hop {hop}: expected [S >= window, 6], S labels, window >= 2",
            labels.len()
        )));
    }
    // [K, 6, window]
    let w = signal
        .transpose(0, 1)
        .unfold(1, window, hop)
        .transpose(0, 1);
    let diff = (w.narrow(2, 1, window - 1) - w.narrow(2, 0, window - 1))
        .abs()
        .mean_dim(2, false, None::<Kind>);
    let feats = Tensor::cat(
        &[
            w.mean_dim(2, false, None::<Kind>),
            w.std_correction(2, 0, false),
            w.amin(2, false),
            w.amax(2, false),
            diff,
        ],
        1,
    );
    let k = feats.size()[0];
    let frame_labels = (0..k)
        .map(|i| labels[(i * hop + window - 1) as usize])
        .collect();
    Ok((feats, frame_labels))
}

/// One subject's recordings joined with rests, as samples: what its frames are cut from.
#[derive(Debug)]
pub struct WatchSignal {
    /// `subject <n>`, the name of the subject's [`FeatureStream`].
    pub name: String,
    /// The subject's number in the data set.
    pub subject: i64,
    /// Samples `[S, 6]` at 50 Hz, the recordings' units (not standardised).
    pub signal: Tensor,
    /// Per-sample class: 0 in a rest, `exercise + 1` in a set.
    pub labels: Vec<i64>,
}

/// The joined per-subject signals, split by subject as [`watch_streams`] splits them.
#[derive(Debug)]
pub struct WatchSignals {
    /// One signal per training subject, in subject order.
    pub train: Vec<WatchSignal>,
    /// One signal per test subject, in subject order.
    pub test: Vec<WatchSignal>,
    /// `background` then the 7 exercises.
    pub classes: Vec<String>,
}

impl WatchStreamConfig {
    /// The sample index (in the joined signal) at which frame `k` ends: its window is the
    /// `window` samples `k * hop ..= k * hop + window - 1`, and its label is that last sample's.
    pub fn frame_end(&self, k: i64) -> i64 {
        k * self.hop + self.window - 1
    }
}

/// The watch recordings joined per subject with rests (see the module docs), split by subject;
/// the same rests (the same seeded draws) as [`watch_streams`].
pub fn watch_signals(watch: &Watch, cfg: &WatchStreamConfig) -> Result<WatchSignals> {
    let subjects = watch.subjects();
    if let Some(s) = cfg.test_subjects.iter().find(|s| !subjects.contains(s)) {
        return Err(OadError::Config(format!(
            "test subject {s}: the data set has subjects {subjects:?}"
        )));
    }
    if cfg.test_subjects.len() >= subjects.len() || cfg.test_subjects.is_empty() {
        return Err(OadError::Config(format!(
            "test subjects {:?}: expected some but not all of {subjects:?}",
            cfg.test_subjects
        )));
    }
    let all = Tensor::cat(
        &watch
            .recordings
            .iter()
            .map(|r| r.signal.to_kind(Kind::Float))
            .collect::<Vec<_>>(),
        0,
    );
    let channel_std = Vec::<f32>::try_from(all.std_dim(0, true, false))?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for s in subjects {
        let recs: Vec<&WatchRecording> =
            watch.recordings.iter().filter(|r| r.subject == s).collect();
        let (signal, labels) = join(&recs, cfg, &channel_std, &mut rng)?;
        let one = WatchSignal {
            name: format!("subject {s}"),
            subject: s,
            signal,
            labels,
        };
        if cfg.test_subjects.contains(&s) {
            test.push(one);
        } else {
            train.push(one);
        }
    }
    let mut classes = vec!["background".to_string()];
    classes.extend(watch.exercises.iter().cloned());
    Ok(WatchSignals {
        train,
        test,
        classes,
    })
}

/// The watch recordings as per-subject train and test streams (see the module docs).
pub fn watch_streams(watch: &Watch, cfg: &WatchStreamConfig) -> Result<WatchStreams> {
    streams_of(&watch_signals(watch, cfg)?, cfg)
}

/// The frame streams of joined signals: [`frame_features`] of each, standardised with the
/// training frames' statistics.
pub fn streams_of(signals: &WatchSignals, cfg: &WatchStreamConfig) -> Result<WatchStreams> {
    let frames = |v: &[WatchSignal]| {
        v.iter()
            .map(|s| {
                let (f, l) = frame_features(&s.signal, &s.labels, cfg.window, cfg.hop)?;
                Ok((s.name.clone(), f, l))
            })
            .collect::<Result<Vec<_>>>()
    };
    let (train, test) = (frames(&signals.train)?, frames(&signals.test)?);
    // Standardise with the training frames' statistics.
    let tf = Tensor::cat(
        &train
            .iter()
            .map(|t| t.1.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    );
    let (mean, std) = (
        tf.mean_dim(0, true, None::<Kind>),
        tf.std_dim(0, true, true).clamp_min(1e-6),
    );
    let to_streams = |v: Vec<(String, Tensor, Vec<i64>)>| {
        v.into_iter()
            .map(|(n, f, l)| FeatureStream::new(n, (f - &mean) / &std, l, WATCH_CLASSES))
            .collect::<Result<Vec<_>>>()
    };
    Ok(WatchStreams {
        train: to_streams(train)?,
        test: to_streams(test)?,
        classes: signals.classes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_watch() -> Watch {
        tch::manual_seed(0);
        let recordings = (0..6)
            .map(|i| WatchRecording {
                signal: Tensor::randn([300 + 10 * i, 6], (Kind::Float, Device::Cpu)) + i as f64,
                exercise: i % 7,
                subject: 1 + i % 3,
                right_side: i % 2 == 0,
            })
            .collect();
        Watch {
            recordings,
            exercises: ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
                .map(String::from)
                .to_vec(),
            channels: ["ax", "ay", "az", "wx", "wy", "wz"]
                .map(String::from)
                .to_vec(),
        }
    }

    #[test]
    fn frame_features_by_hand() {
        // One channel ramps 0..9, the others are zero; window 4, hop 3 -> frames end at 3, 6, 9.
        let mut v = vec![0f32; 60];
        for (t, x) in v.iter_mut().step_by(6).enumerate() {
            *x = t as f32;
        }
        let sig = Tensor::from_slice(&v).view([10, 6]);
        let labels: Vec<i64> = (0..10).collect();
        let (f, l) = frame_features(&sig, &labels, 4, 3).unwrap();
        assert_eq!(f.size(), [3, WATCH_FEATURES]);
        assert_eq!(l, vec![3, 6, 9]);
        let row = Vec::<f32>::try_from(f.get(1)).unwrap();
        // Frame 1 covers samples 3..=6 of the ramp: mean 4.5, min 3, max 6, |diff| 1.
        assert_eq!((row[0], row[12], row[18], row[24]), (4.5, 3.0, 6.0, 1.0));
        assert!((row[6] - 1.25f32.sqrt()).abs() < 1e-6);
        assert!(frame_features(&sig, &labels[..9], 4, 3).is_err());
    }

    #[test]
    fn streams_split_by_subject_with_rests_between_sets() {
        let w = fake_watch();
        let cfg = WatchStreamConfig {
            test_subjects: vec![3],
            ..Default::default()
        };
        let s = watch_streams(&w, &cfg).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (2, 1));
        // The streams are the frames of the joined signals: frame k ends at frame_end(k) and
        // carries that sample's label.
        let sig = watch_signals(&w, &cfg).unwrap();
        assert_eq!((sig.train.len(), sig.test.len()), (2, 1));
        assert_eq!(
            (sig.train[1].subject, sig.test[0].name.as_str()),
            (2, "subject 3")
        );
        for (sg, st) in sig.train.iter().zip(&s.train) {
            assert_eq!(sg.name, st.name);
            assert_eq!(sg.signal.size()[0] as usize, sg.labels.len());
            let k = st.len() as i64;
            assert!(cfg.frame_end(k - 1) < sg.signal.size()[0]);
            assert!(cfg.frame_end(k) >= sg.signal.size()[0]);
            for i in [0, k / 2, k - 1] {
                assert_eq!(st.labels[i as usize], sg.labels[cfg.frame_end(i) as usize]);
            }
        }
        assert_eq!(cfg.frame_end(0), 49);
        assert_eq!(cfg.frame_end(3), 124);
        assert_eq!(s.classes.len(), WATCH_CLASSES as usize);
        let st = &s.train[0];
        assert_eq!(st.width(), WATCH_FEATURES);
        // Subject 1 has exercises 0 and 3 (labels 1 and 4) with rests around them.
        let mut runs = st.labels.clone();
        runs.dedup();
        assert_eq!(runs, vec![0, 1, 0, 4, 0]);
        // The same seed gives the same streams; another seed other rests.
        let again = watch_streams(&w, &cfg).unwrap();
        assert!(again.train[0].features.equal(&st.features));
        let other = watch_streams(
            &w,
            &WatchStreamConfig {
                seed: 1,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert!(other.train[0].len() != st.len() || !other.train[0].features.equal(&st.features));
        assert!(watch_streams(
            &w,
            &WatchStreamConfig {
                test_subjects: vec![4],
                ..cfg
            }
        )
        .is_err());
    }
}
