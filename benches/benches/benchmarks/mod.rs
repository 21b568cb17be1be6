//! Bench modules.

pub mod adamw;
pub mod anchorfree;
pub mod contrastive;
pub mod det;
pub mod det_pyramid;
pub mod mae;
pub mod oad;
pub mod smooth_metrics;
pub mod vit;
pub mod yolo;
