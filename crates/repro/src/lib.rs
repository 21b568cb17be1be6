//! The papers' claims as experiments.
//!
//! Each claim declares what the paper says, its source, the published value, the tolerance and
//! what its full recipe needs; [`claim::registry`] lists them and the `repro` binary (driven by
//! `cargo xtask reproduce`) runs them and writes `reports/<id>/result.json` and `reports/REPORT.md`.

pub mod claim;
pub mod experiments;
pub mod plot;
pub mod report;

pub use claim::{registry, Claim, Ctx, Outcome};
pub use report::{ClaimResult, Mode, Verdict};

/// Unit tests that draw from torch's process-wide generator hold this, so that one test's
/// `manual_seed` and its draws are not interleaved with another's.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
