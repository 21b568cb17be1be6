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
