//! What the training loops share: run options (checkpoint folder, progress), the progress
//! display, the linear lr scaling rule and the position of a resumed run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;

/// Where a loop keeps its state and how it reports.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Checkpoints (`latest.json` + one safetensors file) and a `metrics.jsonl` log go here;
    /// a run finding a checkpoint here resumes from it. `None`: nothing is written.
    pub dir: Option<PathBuf>,
    /// Show a progress bar (rate and ETA; a plain line every 10% when stderr is not a terminal).
    pub progress: bool,
    /// Prefix of the progress message.
    pub label: String,
    /// Stop after this many micro-iterations in total (a checkpoint is written first, so the
    /// run can be resumed): for tests and time-boxed runs.
    pub stop_after: Option<u64>,
}

/// `lr = blr * effective_batch / 256` (Goyal et al. 2017), unless an absolute lr is given.
pub fn scaled_lr(blr: f64, lr: Option<f64>, effective_batch: usize) -> f64 {
    lr.unwrap_or(blr * effective_batch as f64 / 256.0)
}

/// A progress bar on terminals, plain lines in logs.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    start_pos: u64,
    started: Instant,
    label: String,
    next_plain: u64,
}

impl Progress {
    pub fn new(opts: &RunOptions, total: u64, start_pos: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (opts.progress && tty).then(|| {
            let b = train_kit::progress_bar(total, &opts.label);
            b.set_position(start_pos);
            b.reset_eta();
            b
        });
        Self {
            bar,
            plain: opts.progress && !tty,
            total,
            start_pos,
            started: Instant::now(),
            label: opts.label.clone(),
            next_plain: start_pos + total.div_ceil(10),
        }
    }

    pub fn update(&mut self, pos: u64, msg: impl FnOnce() -> String) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
            if pos % 10 == 0 || pos == self.total {
                b.set_message(format!("{} {}", self.label, msg()));
            }
        } else if self.plain && (pos >= self.next_plain || pos == self.total) {
            self.next_plain = pos + self.total.div_ceil(10);
            let line = train_kit::plain_progress_line(
                pos - self.start_pos,
                self.total - self.start_pos,
                self.started.elapsed(),
                &self.label,
            );
            eprintln!("{line} {}", msg());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
