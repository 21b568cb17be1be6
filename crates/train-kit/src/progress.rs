//! Progress reporting: an indicatif bar (pos/len, rate, ETA) for terminals and a plain
//! one-line summary for logs.
//!
//! The bar keeps indicatif's default draw target, which draws nothing when stderr is not a
//! terminal (CI, `nohup`); print [`plain_progress_line`] every N steps to get progress into
//! such logs.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

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
