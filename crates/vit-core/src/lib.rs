//! Vision Transformer (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words", arXiv
//! 2010.11929) on LibTorch, laid out as timm's `vision_transformer.py` so that timm checkpoints
//! load by name.
//!
//! - [`ViTConfig`]: presets tiny/small/base/large/huge x patch 14/16/32, class token or average
//!   pooling, registers (Darcet et al. 2023), layer scale, drop-path, learned or 2-D sin-cos
//!   positions.
//! - [`VisionTransformer`]: fused `scaled_dot_product_attention` (flash / memory-efficient on
//!   CUDA), an explicit path returning attention maps, any image size that is a multiple of the
//!   patch (position embedding resampled bicubically), per-block feature maps, token merging
//!   ([`ToMe`], Bolya et al. 2022, arXiv 2210.09461).
//! - [`param_count`], [`Macs`]: analytic counts, with and without the attention matmuls.
//! - [`VisionTransformer::load_safetensors`] / [`save_safetensors`]: timm names, a report of
//!   missing and unexpected tensors, errors that name the tensor and both shapes.

mod config;
mod count;
mod error;
mod layers;
mod model;
pub mod pos_embed;
mod tome;
mod weights;

pub use config::{GlobalPool, PosEmbedKind, PosResample, Size, ViTConfig};
pub use count::{param_count, Macs, TIMM_COUNTS_JSON};
pub use error::{Result, ViTError};
pub use layers::{AttnImpl, Block};
pub use model::{ForwardOpts, ForwardOutput, VisionTransformer};
pub use tome::ToMe;
pub use weights::{save_safetensors, LoadOptions, LoadReport};
