//! det-core: detection basics in plain Rust (no libtorch).
//!
//! References:
//! - COCO evaluation: pycocotools `cocoeval.py` (`COCOeval`, bbox) and `maskApi.c` (`bbIou`);
//!   Lin et al. 2014, "Microsoft COCO: Common Objects in Context", arXiv 1405.0312.
//! - NMS and the IoU family: torchvision `ops/boxes.py` and `csrc/ops/cpu/nms_kernel.cpp`;
//!   GIoU (Rezatofighi et al. 2019, arXiv 1902.09630), DIoU/CIoU (Zheng et al. 2020,
//!   arXiv 1911.08287); soft-NMS (Bodla et al. 2017, arXiv 1704.04503).
//! - Pascal VOC annotation XML (VOC devkit).
//! - The deepforest CSV layout `image_path,xmin,ymin,xmax,ymax,label` (weecology/DeepForest).
//!
//! Feature `tch` (off by default) adds tensor versions of the IoU family and NMS ([`tensor`])
//! and the detection data path the model crates share ([`data`]: COCO / VOC / deepforest /
//! MNIST-det sources, padded batches, box-aware augmentation on tensors with inverse maps, the
//! evaluation helper and the GT | prediction grid).
//!
//! The COCO evaluator reproduces pycocotools' arithmetic step by step, so the 12 summary
//! numbers are equal to pycocotools' (checked to 1e-12 by `tests/parity_pycocotools.rs`).

pub mod boxes;
pub mod coco;
pub mod csv;
#[cfg(feature = "tch")]
pub mod data;
pub mod deepforest;
pub mod draw;
mod error;
pub mod nms;
pub mod synth;
#[cfg(feature = "tch")]
pub mod tensor;
pub mod transforms;
pub mod voc;
pub mod voc_eval;
mod xml;

pub use boxes::{box_iou, convert, iou, pairwise, BoxFormat, IouKind, Real};
pub use coco::{
    evaluate, CocoAnnotation, CocoCategory, CocoDataset, CocoDetection, CocoEval, CocoImage,
    CocoParams, Summary,
};
pub use error::{DetError, Result};
pub use nms::{batched_nms, nms, nms_with, soft_nms, SoftNmsConfig, SoftNmsMethod};
