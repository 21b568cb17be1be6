//! CenterNet (Zhou et al. 2019, "Objects as Points", arXiv 1904.07850): objects as the peaks
//! of a per-class heatmap at output stride 4, with their size and sub-pixel offset regressed
//! at the peak; no anchors, no NMS (a 3x3 max-pool keeps the peaks).
//!
//! - [`radius`]: CornerNet's Gaussian radius (corrected by default, the official code's
//!   original roots as an option) and `draw_umich_gaussian`;
//! - [`targets`]: heatmap, size, offset, index and mask of a det-core batch;
//! - [`loss`]: penalty-reduced focal loss (alpha 2, beta 4) and the L1 size / offset losses;
//! - [`decode`]: peaks, top-K, boxes in input pixels, back to the original images;
//! - [`model`]: ResNet trunk + deconvolutions + heads, a [`det_pyramid::Detector`];
//! - [`viz`]: heatmap (predicted vs target) and detection PNGs.
//!
//! See `docs/det-anchorfree.md` for the formulas and where the official code and the paper
//! differ.

pub mod decode;
pub mod error;
pub mod loss;
pub mod model;
pub mod radius;
pub mod targets;
pub mod viz;

#[cfg(test)]
mod overfit;

pub use decode::{decode, to_original, DecodeConfig};
pub use error::{CenterNetError, Result};
pub use loss::{centernet_loss, focal_loss, reg_l1_loss, CenterNetLoss, LossConfig};
pub use model::{CenterNet, CenterNetConfig, CenterNetOutput};
pub use radius::{draw_umich_gaussian, gaussian_radius, integer_radius, RadiusRule};
pub use targets::{image_targets, CenterNetTargets, ImageTargets, TargetConfig};
