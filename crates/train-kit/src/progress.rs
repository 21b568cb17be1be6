//! Progress reporting: an indicatif bar (pos/len, rate, ETA) for terminals and a plain
//! one-line summary for logs.
//!
//! The bar keeps indicatif's default draw target, which draws nothing when stderr is not a
//! terminal (CI, `nohup`, `cargo xtask reproduce > log`); [`Progress`] then prints
//! [`plain_progress_line`]s instead, at least every 10% of the run and every minute.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A plain line is printed at least this often when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(60);

const TEMPLATE: &str = "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta})";

/// A progress bar of `len` steps with message `msg`.
pub fn progress_bar(len: u64, msg: &str) -> ProgressBar {
    let style =
        ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(len).with_style(style);
    bar.set_message(msg.to_owned());
    bar
}

/// `"<msg> <pos>/<len> (<rate> it/s, ETA <eta>)"` from the elapsed time, for plain logs.
pub fn plain_progress_line(pos: u64, len: u64, elapsed: Duration, msg: &str) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { pos as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 {
        format!(
            "{}s",
            ((len.saturating_sub(pos)) as f64 / rate).round() as u64
        )
    } else {
        "?".to_owned()
    };
    format!("{msg} {pos}/{len} ({rate:.2} it/s, ETA {eta})")
}

/// Progress of a loop of `total` steps: a bar on terminals, plain lines in logs (every 10%
/// and at least every minute), nothing when disabled.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    start_pos: u64,
    started: Instant,
    last_line: Instant,
    label: String,
    next_plain: u64,
}

impl Progress {
    /// Starts at position `start_pos` (a resumed run); rate and ETA count from there.
    pub fn new(enabled: bool, label: &str, total: u64, start_pos: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = progress_bar(total, label);
            b.set_position(start_pos);
            b.reset_eta();
            b
        });
        let now = Instant::now();
        Progress {
            bar,
            plain: enabled && !tty,
            total,
            start_pos,
            started: now,
            last_line: now,
            label: label.to_owned(),
            next_plain: start_pos + total.div_ceil(10),
        }
    }

    /// Moves to `pos`; `msg` (e.g. the loss) is formatted only when something is drawn.
    pub fn update(&mut self, pos: u64, msg: impl FnOnce() -> String) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
            if pos % 10 == 0 || pos == self.total {
                b.set_message(format!("{} {}", self.label, msg()));
            }
        } else if self.plain
            && (pos >= self.next_plain
                || pos == self.total
                || self.last_line.elapsed() >= PLAIN_EVERY)
        {
            self.next_plain = pos + self.total.div_ceil(10);
            self.last_line = Instant::now();
            let line = plain_progress_line(
                pos - self.start_pos,
                self.total - self.start_pos,
                self.started.elapsed(),
                &self.label,
            );
            eprintln!("{line} {}", msg());
        }
    }

    /// A one-off message (e.g. an epoch's evaluation): above the bar, or as a plain line.
    pub fn note(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.println(format!("{} {msg}", self.label));
        } else if self.plain {
            eprintln!("{} {msg}", self.label);
        }
    }

    /// Clears the bar (plain lines need no ending).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_and_line() {
        let bar = progress_bar(10, "train");
        bar.inc(3);
        assert_eq!(bar.position(), 3);
        assert_eq!(bar.length(), Some(10));
        assert_eq!(
            plain_progress_line(50, 150, Duration::from_secs(10), "epoch 1"),
            "epoch 1 50/150 (5.00 it/s, ETA 20s)"
        );
        assert_eq!(
            plain_progress_line(0, 5, Duration::ZERO, "x"),
            "x 0/5 (0.00 it/s, ETA ?)"
        );
    }
}
