//! yolo: YOLO v1 (Redmon et al. 2016, "You Only Look Once", arXiv 1506.02640) as in the paper,
//! with darknet's departures (`src/detection_layer.c`, CVPR-era `cfg/yolo.cfg`) as options.
//!
//! - [`net`]: the paper network (24 conv + 2 FC), Fast YOLO, a small ResNet-18 option; output
//!   `[N, S, S, B*5 + C]`;
//! - [`loss`]: targets on the grid from a det-core batch and the sum-squared loss (paper and
//!   darknet rules);
//! - [`decode`]: class-specific confidences, thresholds, NMS, image coordinates, and the
//!   [`det_pyramid::Detector`] implementation;
//! - [`train`]: the paper's warm-up-then-steps learning rate and loading trained models.
//!
//! See `docs/yolo.md`.

pub mod decode;
pub mod error;
pub mod loss;
pub mod net;
pub mod train;

pub use decode::{decode, DecodeConfig, YoloDetector};
pub use error::{Result, YoloError};
pub use loss::{grid_targets, yolo_loss, GridTargets, LossConfig, LossParts, TieRule};
pub use net::{parameter_count, Arch, Head, Layout, Yolo, YoloConfig};
