//! Bench modules.

pub mod adamw;
pub mod vit;
