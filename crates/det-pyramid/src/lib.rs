//! det-pyramid: Image and feature pyramids for multi-scale and small-object detection: ResNet trunks with torchvision's names, FPN, a RetinaNet baseline, SNIP ranges, TridentNet, image-pyramid and tiled inference.
//!
//! Under construction: see `docs/det-pyramid.md` once it lands.
