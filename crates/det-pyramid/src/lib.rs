//! det-pyramid: image and feature pyramids for multi-scale and small-object detection.
//!
//! References:
//! - ResNet trunks: He et al. 2016, arXiv 1512.03385; torchvision `models/resnet.py` names.
//! - FPN: Lin et al. 2017, "Feature Pyramid Networks for Object Detection", arXiv 1612.03144;
//!   torchvision `ops/feature_pyramid_network.py`.
//! - RoI-to-level and SNIP valid ranges: FPN Eq. 1; Singh & Davis 2018, arXiv 1711.08189.
//! - RetinaNet (anchors, 0.5 / 0.4 matching, focal loss, prior 0.01): Lin et al. 2017b, arXiv
//!   1708.02002; torchvision `models/detection/retinanet.py`.
//! - TridentNet: Li et al. 2019, arXiv 1901.01892. Copy-paste of small objects: Kisantal et
//!   al. 2019, arXiv 1902.07296. Soft-NMS merge of scales: Bodla et al. 2017 (det-core).
//!
//! The trunk ([`resnet`]) and the pyramid ([`fpn`]) are the shared base of the detectors in
//! this workspace (det-anchorfree, yolo take their trunk from here). See `docs/det-pyramid.md`.

pub mod anchors;
pub mod assign;
pub mod copy_paste;
pub mod error;
pub mod fpn;
pub mod inference;
pub mod levels;
pub mod loss;
pub mod resnet;
pub mod retinanet;
pub mod sliding;
pub mod trident;
pub mod weights;

pub use error::{PyramidError, Result};
pub use fpn::{Fpn, FpnConfig, Pyramid, TopLevels};
pub use levels::snip::{SnipBatch, SnipConfig, SnipLoader, SnipScale};
pub use levels::{roi_level, roi_level_with, LevelRule, ValidRange};
pub use resnet::{Depth, Features, ResNet, ResNetConfig};
pub use retinanet::{Backbone, BoxLoss, Detector, ResNetFpn, RetinaNet, RetinaNetConfig, Targets};
pub use weights::{LoadOptions, LoadReport};
