//! FCOS (Tian et al. 2019, "FCOS: Fully Convolutional One-Stage Object Detection", arXiv
//! 1904.01355; official code `tianzhi0549/FCOS`, `fcos_core/modeling/rpn/fcos/`).
//!
//! Every location of P3-P7 inside a box whose `max(l, t, r, b)` falls in the level's range
//! regresses that box's distances (`targets`), scored by a sigmoid classifier and a
//! centre-ness branch (`head`), trained with focal, IoU and centre-ness losses (`loss`), and
//! decoded with `sqrt(cls * centre-ness)`, per-level top-k and NMS (`inference`).
//!
//! [`FcosConfig::default`] is the original FCOS, [`FcosConfig::improved`] the official
//! improved configs (centre sampling 1.5, GIoU, normalised targets, centre-ness on the
//! regression tower).

mod config;
mod error;
mod head;
mod inference;
mod loss;
mod targets;

pub use config::{FcosConfig, IouLossKind, INF};
pub use error::{FcosError, Result};
pub use head::{Fcos, FcosOutputs};
pub use loss::{fcos_loss, iou_loss, iou_loss_elementwise, LossParts};
pub use targets::{
    centerness_target, compute_targets_for_locations, locations, prepare_targets, LocationTargets,
    Targets,
};
