//! det-anchorfree: detectors without anchor boxes, on det-pyramid's trunks.
//!
//! - [`centernet`]: Zhou et al. 2019, "Objects as Points", arXiv 1904.07850; official code
//!   `xingyizhou/CenterNet` (targets, penalty-reduced focal loss, peak decoding).
//! - [`fcos`]: Tian et al. 2019, "FCOS: Fully Convolutional One-Stage Object Detection", arXiv
//!   1904.01355; official code `tianzhi0549/FCOS` (per-level assignment, centre-ness, IoU loss).
//!
//! See `docs/det-anchorfree.md` for the formulas and where the official codes and the papers
//! differ.

pub mod centernet;
pub mod fcos;
