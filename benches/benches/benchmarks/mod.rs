//! Bench modules.

pub mod adamw;
pub mod det;
pub mod mae;
pub mod vit;
