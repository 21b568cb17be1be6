//! det-anchorfree claims: CenterNet and FCOS against det-pyramid's anchor-based RetinaNet on
//! the same trunk, data and budget (`anchorfree.vs-anchors`), CenterNet's corrected against
//! its original Gaussian radius (`anchorfree.radius-fix`), FCOS centre sampling and
//! centre-ness on the regression branch (`anchorfree.center-sampling`), and the paper recipes
//! on COCO (`anchorfree.full`, needs data).
//!
//! Every detector here trains with det-pyramid's claim budget
//! ([`super::det_pyramid::budget`]) and data ([`super::det_pyramid::mnist_config`],
//! [`super::det_pyramid::deepforest`]), so its rows sit beside RetinaNet's.

mod centernet;
mod fcos;
mod vs_anchors;

use std::path::PathBuf;

use det_core::data::DetectionReport;

use crate::claim::Claim;

/// One detector trained with the shared budget and evaluated on a held-out set.
#[derive(Debug, Clone)]
pub(crate) struct Trial {
    /// COCO statistics and images/s on the test set.
    pub report: DetectionReport,
    /// Seconds of training.
    pub train_s: f64,
    /// The training log (`metrics.jsonl`).
    pub metrics: PathBuf,
}

/// The det-anchorfree claims, in report order.
pub fn claims() -> Vec<Claim> {
    let mut all = vs_anchors::claims();
    all.extend(centernet::claims());
    all.extend(fcos::claims());
    all
}
