//! `nce.full`: CPC (van den Oord et al. 2018, arXiv 1807.03748, Sec. 3.1, Table 1) on the
//! 100-hour LibriSpeech subset at paper scale: the audio model ([`CpcConfig::audio`]: strides
//! 5,4,2,2,2, 512 channels, GRU 256, K = 12) pre-trained without labels on windows of 20480
//! samples of the training utterances (Adam 2e-4, 8 GPUs x 8 windows, ~300k updates), then two
//! linear probes on the frozen context vectors `c_t`: the phone of every 10 ms frame (41
//! classes; paper 64.6%) and the speaker of a window from the mean of its `c_t` (251 speakers;
//! paper 97.4%), trained on the training split and scored on the test split of the authors'
//! release. The same probes on the never-trained encoder are the paper's random-init row
//! (27.6% / 1.9%).
//!
//! The data: LibriSpeech train-clean-100 with the authors' alignments and split, converted once
//! by `crates/contrastive-nce/tools/librispeech_to_npy.py` into
//! `DIR/librispeech/{train,test}/<utterance>.{wav,phones}.npy`; the speaker is the first field
//! of the utterance id. `--full` with CUDA runs the paper recipe; `--smoke` with data under
//! `--data-root` runs a tiny recipe on it (the tests write a synthetic corpus); otherwise the
//! claim reports what it needs. Both pre-training and the probes go through
//! `train_kit::Trainer`; the pre-training checkpoints under `reports/nce.full/pretrain`, so a
//! rerun resumes.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

use contrastive_nce::cpc::{Cpc, CpcConfig};
use contrastive_nce::NceError;
use train_kit::{
    AdamW, AdamWConfig, DataSource, RunOptions, Schedule, Seeding, Series, StepOutput, Trainer,
    TrainerConfig,
};

use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::{Mode, Verdict};

pub(crate) const PHONE_ACC: &str = "phone accuracy of the linear probe (test frames)";
pub(crate) const SPEAKER_ACC: &str = "speaker accuracy of the linear probe (test windows)";
const PAPER_PHONE: f64 = 64.6;
const PAPER_SPEAKER: f64 = 97.4;

/// Samples per encoder frame and per alignment frame (10 ms at 16 kHz).
const HOP: i64 = 160;
/// Kaldi's analysis window (25 ms): with snip-edges it sets the alignment's frame count.
const KALDI_WINDOW: i64 = 400;

/// The command that runs the claim at paper scale.
pub(crate) const FULL_COMMAND: &str = "python crates/contrastive-nce/tools/librispeech_to_npy.py \
     LibriSpeech/train-clean-100 converted_aligned_phones.txt train_split.txt test_split.txt DIR \
     && cargo xtask reproduce nce.full --full --device cuda --data-root DIR";

/// The claim.
pub(super) fn claim() -> Claim {
    Claim {
        id: "nce.full",
        claim: "CPC pre-trained without labels on 100 hours of LibriSpeech gives context \
                vectors on which linear probes reach 64.6% phone accuracy (41 classes, per \
                10 ms frame) and 97.4% speaker accuracy (251 speakers)",
        source: "van den Oord, Li & Vinyals 2018, arXiv 1807.03748, Sec. 3.1, Table 1 (CPC \
                 64.6 / 97.4; random init 27.6 / 1.9); phone alignments and train/test split \
                 of train-clean-100 released by the authors",
        paper_value: "phones 64.6%, speakers 97.4%",
        tolerance: Tolerance::new([
            Bound::within(PHONE_ACC, PAPER_PHONE, 4.0).unit("%"),
            Bound::within(SPEAKER_ACC, PAPER_SPEAKER, 2.0).unit("%"),
        ])
        .note(
            "+- in percentage points; one GPU: the paper's 8 GPUs x 8 windows as 8 groups of \
             8 windows (negatives and BatchNorm per group)",
        ),
        smoke_tolerance: Some(Tolerance::new([]).note(
            "a tiny recipe on the corpus under --data-root (the tests write a synthetic one): \
             it only has to run; without data: needs_data",
        )),
        full_needs: Some(
            "GPU + LibriSpeech train-clean-100 and the CPC phone alignments converted to \
             DIR/librispeech/{train,test}/*.npy",
        ),
        run,
    }
}

// ------------------------------------------------------------------ the data

/// One utterance: its waveform and per-frame phones, its speaker's index.
struct Utterance {
    id: String,
    speaker: String,
    speaker_index: i64,
    /// float32 `[samples]`, CPU.
    wave: Tensor,
    /// int64 `[frames]`, CPU.
    phones: Tensor,
}

impl Utterance {
    /// Where a window of `frames` encoder frames can start (in frames, from 0): every start
    /// whose samples and labels lie inside the utterance.
    fn starts(&self, frames: i64) -> i64 {
        let (samples, labels) = (self.wave.size()[0], self.phones.size()[0]);
        if samples < frames * HOP || labels < frames {
            return 0;
        }
        ((samples - frames * HOP) / HOP).min(labels - frames) + 1
    }
}

/// The two splits with the speaker and phone vocabularies.
struct Corpus {
    train: Vec<Utterance>,
    test: Vec<Utterance>,
    speakers: Vec<String>,
    phone_classes: i64,
}

/// Alignment frames of `samples` samples: Kaldi's count with snip-edges (25 ms every 10 ms).
fn kaldi_frames(samples: i64) -> i64 {
    if samples < KALDI_WINDOW {
        0
    } else {
        (samples - KALDI_WINDOW) / HOP + 1
    }
}

/// The speaker of a LibriSpeech utterance id `<speaker>-<chapter>-<utterance>`.
fn speaker_of(id: &str) -> Result<String> {
    let parts: Vec<&str> = id.split('-').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    ensure!(
        parts.len() == 3 && parts.iter().all(|p| digits(p)),
        "utterance `{id}`: expected a LibriSpeech id <speaker>-<chapter>-<utterance> (digits)"
    );
    Ok(parts[0].to_owned())
}

/// A one-dimensional `.npy` array of element type `kind`.
fn read_1d(path: &Path, kind: Kind, what: &str) -> Result<Tensor> {
    let t = Tensor::read_npy(path)
        .with_context(|| format!("{}: expected {what} in .npy", path.display()))?;
    ensure!(
        t.kind() == kind && t.dim() == 1,
        "{}: expected {what}, got {:?} of shape {:?}",
        path.display(),
        t.kind(),
        t.size()
    );
    Ok(t)
}

/// `<id>.wav.npy` and `<id>.phones.npy` of `dir`, checked against each other.
fn read_utterance(dir: &Path, id: &str) -> Result<Utterance> {
    let (wp, pp) = (
        dir.join(format!("{id}.wav.npy")),
        dir.join(format!("{id}.phones.npy")),
    );
    let wave = read_1d(&wp, Kind::Float, "a float32 waveform [samples]")?;
    let phones = read_1d(&pp, Kind::Int64, "int64 phone ids [frames]")?;
    let (n, l) = (wave.size()[0], phones.size()[0]);
    let expected = kaldi_frames(n);
    ensure!(
        (l - expected).abs() <= 1,
        "{}: {l} phone frames, but the {n} samples of {} make {expected} frames of 25 ms every \
         10 ms; expected the same count within one frame",
        pp.display(),
        wp.display()
    );
    let bad = wave
        .isfinite()
        .logical_not()
        .sum(Kind::Int64)
        .int64_value(&[]);
    ensure!(
        bad == 0,
        "{}: {bad} non-finite samples among {n}",
        wp.display()
    );
    if l > 0 {
        let min = phones.min().int64_value(&[]);
        ensure!(
            min >= 0,
            "{}: phone id {min}; expected ids >= 0",
            pp.display()
        );
    }
    Ok(Utterance {
        id: id.to_owned(),
        speaker: speaker_of(id)?,
        speaker_index: -1,
        wave,
        phones,
    })
}

/// Every utterance of a split folder, sorted by id.
fn read_split(dir: &Path) -> Result<Vec<Utterance>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".wav.npy") {
            ids.push(id.to_owned());
        }
    }
    ensure!(
        !ids.is_empty(),
        "{}: no <utterance>.wav.npy; convert LibriSpeech with {FULL_COMMAND}",
        dir.display()
    );
    ids.sort();
    ids.iter().map(|id| read_utterance(dir, id)).collect()
}

/// `DIR/librispeech/{train,test}` when both folders exist.
fn corpus_dirs(root: Option<&Path>) -> Option<(PathBuf, PathBuf)> {
    let r = root?.join("librispeech");
    let (train, test) = (r.join("train"), r.join("test"));
    (train.is_dir() && test.is_dir()).then_some((train, test))
}

/// Reads both splits; speakers are indexed by the sorted training speakers.
fn load(train_dir: &Path, test_dir: &Path) -> Result<Corpus> {
    let (mut train, mut test) = (read_split(train_dir)?, read_split(test_dir)?);
    let mut speakers: Vec<String> = train.iter().map(|u| u.speaker.clone()).collect();
    speakers.sort();
    speakers.dedup();
    for u in train.iter_mut().chain(test.iter_mut()) {
        u.speaker_index = match speakers.binary_search(&u.speaker) {
            Ok(i) => i as i64,
            Err(_) => bail!(
                "test utterance {}: speaker {} has no training utterance; the speaker probe \
                 needs every test speaker in the training split",
                u.id,
                u.speaker
            ),
        };
    }
    let phone_classes = train
        .iter()
        .chain(&test)
        .filter(|u| u.phones.size()[0] > 0)
        .map(|u| u.phones.max().int64_value(&[]) + 1)
        .max()
        .unwrap_or(0);
    Ok(Corpus {
        train,
        test,
        speakers,
        phone_classes,
    })
}

/// A batch of windows: waveforms `[b, 1, frames * HOP]`, phones `[b, frames]`, speakers `[b]`.
struct Windows {
    wave: Tensor,
    phones: Tensor,
    speakers: Tensor,
}

/// The windows `(utterance, start frame)` of `utts`, stacked onto `device`.
fn gather(utts: &[Utterance], picks: &[(usize, i64)], frames: i64, device: Device) -> Windows {
    let (mut w, mut p, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for &(u, j) in picks {
        let u = &utts[u];
        w.push(u.wave.narrow(0, j * HOP, frames * HOP));
        p.push(u.phones.narrow(0, j, frames));
        s.push(u.speaker_index);
    }
    Windows {
        wave: Tensor::stack(&w, 0).unsqueeze(1).to_device(device),
        phones: Tensor::stack(&p, 0).to_device(device),
        speakers: Tensor::from_slice(&s).to_device(device),
    }
}

/// Windows drawn uniformly over every valid start of every utterance, as a [`DataSource`];
/// batch `b` of epoch `e` comes from its own generator (so a resumed epoch is the same).
struct RandomWindows<'a> {
    utts: &'a [Utterance],
    /// `cum[i]`: valid starts in utterances `0..=i`.
    cum: Vec<i64>,
    frames: i64,
    batch: usize,
    batches: u64,
    seed: u64,
    device: Device,
}

impl<'a> RandomWindows<'a> {
    fn new(
        utts: &'a [Utterance],
        r: &Recipe,
        batches: u64,
        seed: u64,
        device: Device,
    ) -> Result<Self> {
        let mut cum = Vec::with_capacity(utts.len());
        let mut total = 0;
        for u in utts {
            total += u.starts(r.frames);
            cum.push(total);
        }
        ensure!(
            total > 0,
            "no training utterance holds a window of {} samples",
            r.frames * HOP
        );
        Ok(RandomWindows {
            utts,
            cum,
            frames: r.frames,
            batch: r.batch as usize,
            batches,
            seed,
            device,
        })
    }

    fn pick(&self, rng: &mut impl Rng) -> (usize, i64) {
        let total = self.cum.last().copied().unwrap_or(0);
        let k = rng.gen_range(0..total);
        let u = self.cum.partition_point(|&c| c <= k);
        let before = if u == 0 { 0 } else { self.cum[u - 1] };
        (u, k - before)
    }
}

impl DataSource for RandomWindows<'_> {
    type Batch = Windows;
    type Error = NceError;

    fn batches_per_epoch(&self) -> u64 {
        self.batches
    }

    fn epoch_from(
        &self,
        epoch: u64,
        skip: u64,
    ) -> impl Iterator<Item = Result<Windows, NceError>> + '_ {
        (skip..self.batches).map(move |b| {
            let key = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch << 24) ^ b;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(key);
            let picks: Vec<_> = (0..self.batch).map(|_| self.pick(&mut rng)).collect();
            Ok(gather(self.utts, &picks, self.frames, self.device))
        })
    }
}

/// The non-overlapping windows of every utterance of `utts`, from its start.
fn tiling(utts: &[Utterance], frames: i64) -> Vec<(usize, i64)> {
    let mut picks = Vec::new();
    for (i, u) in utts.iter().enumerate() {
        let n = u.starts(frames);
        picks.extend((0..n).step_by(frames as usize).map(|j| (i, j)));
    }
    picks
}

// ------------------------------------------------------------------ the recipe

/// What one run of the claim does.
#[derive(Debug, Clone)]
struct Recipe {
    cpc: CpcConfig,
    /// Window length in encoder frames (`frames * 160` samples).
    frames: i64,
    /// Windows per optimiser step.
    batch: i64,
    /// Windows per loss: the negatives and BatchNorm statistics of one of the paper's GPUs.
    group: i64,
    steps_per_epoch: u64,
    epochs: usize,
    lr: f64,
    probe_steps_per_epoch: u64,
    probe_epochs: usize,
    probe_lr: f64,
    checkpoint_every: usize,
}

impl Recipe {
    /// Sec. 3.1: windows of 20480 samples, 8 GPUs x 8 windows, Adam 2e-4, ~300k updates; the
    /// probes (not specified by the paper): Adam 1e-3, 20k steps of 64 windows.
    fn paper() -> Self {
        Recipe {
            cpc: CpcConfig::audio(),
            frames: 128,
            batch: 64,
            group: 8,
            steps_per_epoch: 1000,
            epochs: 300,
            lr: 2e-4,
            probe_steps_per_epoch: 1000,
            probe_epochs: 20,
            probe_lr: 1e-3,
            checkpoint_every: 5000,
        }
    }

    /// Seconds on the CPU: the audio encoder's strides at 32 channels, 0.2 s windows.
    fn tiny() -> Self {
        Recipe {
            cpc: CpcConfig {
                channels: 32,
                context_dim: 32,
                horizon: 4,
                ..CpcConfig::audio()
            },
            frames: 20,
            batch: 8,
            group: 4,
            steps_per_epoch: 10,
            epochs: 3,
            lr: 2e-3,
            probe_steps_per_epoch: 15,
            probe_epochs: 4,
            probe_lr: 1e-2,
            checkpoint_every: 0,
        }
    }
}

/// Pre-trains `model` (variables in `vs`) with the CPC loss, one loss per group of windows.
fn pretrain(
    model: &Cpc,
    vs: &mut nn::VarStore,
    corpus: &Corpus,
    r: &Recipe,
    seed: u64,
    dir: Option<PathBuf>,
) -> Result<train_kit::TrainReport> {
    let source = RandomWindows::new(&corpus.train, r, r.steps_per_epoch, seed, vs.device())?;
    let tcfg = TrainerConfig {
        epochs: r.epochs,
        schedule: Schedule::Constant { lr: r.lr },
        seeding: Seeding::PerStep(seed),
        checkpoint_every: r.checkpoint_every,
        eval_every: 0,
        log_every: 50,
        recipe: json!({"claim": "nce.full", "cpc": r.cpc, "window": r.frames * HOP,
                       "batch": r.batch, "group": r.group, "lr": r.lr}),
        ..Default::default()
    };
    let run = RunOptions {
        dir,
        progress: true,
        label: "nce.full CPC pre-training".into(),
        stop_after: None,
    };
    let mut opt = AdamW::with_single_group(
        vs,
        AdamWConfig {
            lr: r.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let step = |b: Windows, _: &train_kit::StepInfo| -> Result<StepOutput, NceError> {
        let groups = b.wave.split(r.group, 0);
        let (mut losses, mut first, mut last) = (Vec::new(), 0.0, 0.0);
        for g in &groups {
            let out = model.loss(g, true)?;
            first += out.accuracy.first().copied().unwrap_or(f64::NAN);
            last += out.accuracy.last().copied().unwrap_or(f64::NAN);
            losses.push(out.loss);
        }
        let n = groups.len() as f64;
        Ok(StepOutput {
            loss: Tensor::stack(&losses, 0).mean(Kind::Float),
            parts: vec![
                ("acc_k1".into(), Tensor::from(first / n)),
                ("acc_kmax".into(), Tensor::from(last / n)),
            ],
        })
    };
    Ok(Trainer::new(&tcfg, &run)?.fit(vs, &mut opt, &source, step, train_kit::trainer::no_eval)?)
}

/// Test accuracies of the two probes and their curve over the probe epochs.
struct Probed {
    phone: f64,
    speaker: f64,
    curve: Vec<(f64, f64, f64)>,
}

/// `(phone, speaker)` accuracy of the probes on the non-overlapping test windows.
fn score(
    model: &Cpc,
    probes: &(nn::Linear, nn::Linear),
    test: &[Utterance],
    frames: i64,
    device: Device,
) -> Result<(f64, f64)> {
    let _g = tch::no_grad_guard();
    let picks = tiling(test, frames);
    ensure!(
        !picks.is_empty(),
        "no test utterance holds a window of {} samples",
        frames * HOP
    );
    let (mut phone_hits, mut speaker_hits) = (0i64, 0i64);
    for chunk in picks.chunks(64) {
        let b = gather(test, chunk, frames, device);
        let c = model.frame_contexts(&b.wave)?;
        let phones = c.apply(&probes.0).argmax(-1, false);
        phone_hits += phones
            .eq_tensor(&b.phones)
            .sum(Kind::Int64)
            .int64_value(&[]);
        let speakers = c
            .mean_dim([1i64].as_slice(), false, Kind::Float)
            .apply(&probes.1)
            .argmax(-1, false);
        speaker_hits += speakers
            .eq_tensor(&b.speakers)
            .sum(Kind::Int64)
            .int64_value(&[]);
    }
    let windows = picks.len() as f64;
    Ok((
        100.0 * phone_hits as f64 / (windows * frames as f64),
        100.0 * speaker_hits as f64 / windows,
    ))
}

/// Trains the phone probe (per frame on `c_t`) and the speaker probe (per window on the mean
/// of `c_t`) on frozen features of `model`, scoring both on the test split after each epoch.
fn probe(
    model: &Cpc,
    corpus: &Corpus,
    r: &Recipe,
    seed: u64,
    label: &str,
    device: Device,
) -> Result<Probed> {
    let source = RandomWindows::new(&corpus.train, r, r.probe_steps_per_epoch, seed + 1, device)?;
    tch::manual_seed(seed as i64 + 1);
    let mut pvs = nn::VarStore::new(device);
    let d = r.cpc.context_dim;
    let probes = (
        nn::linear(
            pvs.root() / "phone",
            d,
            corpus.phone_classes,
            Default::default(),
        ),
        nn::linear(
            pvs.root() / "speaker",
            d,
            corpus.speakers.len() as i64,
            Default::default(),
        ),
    );
    let tcfg = TrainerConfig {
        epochs: r.probe_epochs,
        schedule: Schedule::Constant { lr: r.probe_lr },
        seeding: Seeding::PerStep(seed + 1),
        eval_every: 1,
        log_every: 50,
        ..Default::default()
    };
    let run = RunOptions {
        dir: None,
        progress: true,
        label: format!("nce.full probes ({label})"),
        stop_after: None,
    };
    let mut opt = AdamW::with_single_group(
        &pvs,
        AdamWConfig {
            lr: r.probe_lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let step = |b: Windows, _: &train_kit::StepInfo| -> Result<StepOutput, NceError> {
        let c = tch::no_grad(|| model.frame_contexts(&b.wave))?;
        let t = c.size()[1];
        if t != r.frames {
            return Err(NceError::Shape {
                what: "cpc frame contexts",
                expected: format!("{} frames, one per phone label", r.frames),
                got: c.size(),
            });
        }
        let logits = c.apply(&probes.0).reshape([-1, corpus.phone_classes]);
        let phone = logits.cross_entropy_for_logits(&b.phones.reshape([-1]));
        let speaker = c
            .mean_dim([1i64].as_slice(), false, Kind::Float)
            .apply(&probes.1)
            .cross_entropy_for_logits(&b.speakers);
        Ok(StepOutput {
            loss: &phone + &speaker,
            parts: vec![
                ("phone".into(), phone.detach()),
                ("speaker".into(), speaker.detach()),
            ],
        })
    };
    let mut curve = Vec::new();
    let eval = |epoch: u64| -> Result<train_kit::EvalMetrics, NceError> {
        let (p, s) = score(model, &probes, &corpus.test, r.frames, device)
            .map_err(|e| NceError::Config(format!("scoring the probes: {e:#}")))?;
        curve.push((epoch as f64 + 1.0, p, s));
        Ok(vec![
            ("test_phone_acc".into(), p),
            ("test_speaker_acc".into(), s),
        ])
    };
    Trainer::new(&tcfg, &run)?.fit(&mut pvs, &mut opt, &source, step, eval)?;
    let &(_, phone, speaker) = curve.last().context("the probes were never scored")?;
    Ok(Probed {
        phone,
        speaker,
        curve,
    })
}

// ------------------------------------------------------------------ the claim

fn needs(what: String, verdict: Verdict) -> Outcome {
    Outcome {
        value: f64::NAN,
        value_text: what,
        measured: Measured::new(),
        skipped: Some(verdict),
        plots: vec![],
        details: json!({
            "paper_phone_accuracy": PAPER_PHONE,
            "paper_speaker_accuracy": PAPER_SPEAKER,
            "command": FULL_COMMAND,
        }),
    }
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let Some((train_dir, test_dir)) = corpus_dirs(ctx.data_root.as_deref()) else {
        return Ok(needs(
            format!(
                "needs: LibriSpeech train-clean-100 with the CPC authors' phone alignments and \
                 split, converted to DIR/librispeech/{{train,test}}, and a GPU: {FULL_COMMAND}"
            ),
            Verdict::NeedsData,
        ));
    };
    let recipe = match (ctx.mode, ctx.device) {
        (Mode::Full, Device::Cuda(_)) => Recipe::paper(),
        (Mode::Smoke, _) => Recipe::tiny(),
        _ => {
            return Ok(needs(
                format!("the paper recipe needs --full on a GPU (~300k updates): {FULL_COMMAND}"),
                Verdict::NeedsGpu,
            ))
        }
    };
    let corpus = load(&train_dir, &test_dir)?;
    let _threads = crate::experiments::OneThread::on(ctx.device);
    tch::manual_seed(ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let model = Cpc::new(&vs.root(), &recipe.cpc)?;
    // The same architecture and seed, never trained: the paper's random-init row.
    let random = probe(
        &model,
        &corpus,
        &recipe,
        ctx.seed,
        "random init",
        ctx.device,
    )?;
    let dir = match ctx.mode {
        Mode::Full => {
            let d = ctx.out_dir.join("pretrain");
            std::fs::create_dir_all(&d)?;
            Some(d)
        }
        _ => None,
    };
    let report = pretrain(&model, &mut vs, &corpus, &recipe, ctx.seed, dir)?;
    let cpc = probe(&model, &corpus, &recipe, ctx.seed, "CPC", ctx.device)?;

    let plot = "probes.png".to_owned();
    let per_epoch = |f: fn(&(f64, f64, f64)) -> f64, p: &Probed| -> Vec<(f64, f64)> {
        p.curve.iter().map(|e| (e.0, f(e))).collect()
    };
    let flat = |y: f64| cpc.curve.iter().map(|e| (e.0, y)).collect::<Vec<_>>();
    train_kit::line_plot(
        &ctx.out_dir.join(&plot),
        "nce.full: linear probes on frozen CPC context vectors (LibriSpeech test split)",
        "probe epoch",
        "test accuracy (%)",
        &[
            Series::new("phones, CPC", per_epoch(|e| e.1, &cpc)),
            Series::new("speakers, CPC", per_epoch(|e| e.2, &cpc)),
            Series::new("phones, random init", per_epoch(|e| e.1, &random)),
            Series::new("speakers, random init", per_epoch(|e| e.2, &random)),
            Series::new("paper: phones 64.6", flat(PAPER_PHONE)),
            Series::new("paper: speakers 97.4", flat(PAPER_SPEAKER)),
        ],
    )?;
    let loss_plot = "cpc_loss.png".to_owned();
    train_kit::line_plot(
        &ctx.out_dir.join(&loss_plot),
        "nce.full: CPC pre-training loss (InfoNCE, mean over k = 1..K)",
        "epoch",
        "loss",
        &[Series::new(
            "train",
            report
                .epoch_loss()
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as f64 + 1.0, l))
                .collect(),
        )],
    )?;
    Ok(Outcome {
        value: cpc.phone,
        value_text: format!(
            "phones {:.1}%, speakers {:.1}% (paper 64.6 / 97.4); random-init encoder {:.1}% / \
             {:.1}% (paper 27.6 / 1.9)",
            cpc.phone, cpc.speaker, random.phone, random.speaker
        ),
        measured: Measured::new()
            .number(PHONE_ACC, cpc.phone)
            .number(SPEAKER_ACC, cpc.speaker),
        skipped: None,
        plots: vec![plot, loss_plot],
        details: json!({
            "recipe": format!("{recipe:?}"),
            "train_utterances": corpus.train.len(),
            "test_utterances": corpus.test.len(),
            "speakers": corpus.speakers.len(),
            "phone_classes": corpus.phone_classes,
            "random_init": {"phone": random.phone, "speaker": random.speaker},
            "cpc_epoch_loss": report.epoch_loss(),
            "pretrain_seconds": report.seconds,
            "probe_curve": cpc.curve,
            "paper": {"phone": PAPER_PHONE, "speaker": PAPER_SPEAKER,
                      "random_phone": 27.6, "random_speaker": 1.9},
        }),
    })
}

#[cfg(test)]
mod tests;
