//! Bench modules.

pub mod adamw;
