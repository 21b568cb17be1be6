//! The papers' claims as experiments.
//!
//! Each claim declares what the paper says, its source, the published value, its
//! [`Tolerance`] (from which both the report's tolerance text and the verdict are derived) and
//! what its full recipe needs; [`registry`] lists them and the `repro` binary (driven by
//! `cargo xtask reproduce`) runs them and writes `reports/<id>/result.json` and
//! `reports/REPORT.md`.
//!
//! Modules depend one way: [`experiments`] -> [`claim`] -> [`report`]; the claim module knows
//! no experiment.

pub mod claim;
pub mod experiments;
pub mod plot;
pub mod report;

pub use claim::{Bound, Check, Claim, Ctx, Measure, Measured, Outcome, Tolerance};
pub use experiments::registry;
pub use report::{ClaimResult, Mode, Verdict};
