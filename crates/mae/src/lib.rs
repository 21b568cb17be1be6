//! Masked autoencoders (He, Chen, Xie, Li, Dollar, Girshick 2022, "Masked Autoencoders Are
//! Scalable Vision Learners", CVPR, arXiv 2111.06377; reference code facebookresearch/mae) on
//! LibTorch, built on vit-core's ViT and train-kit's optimiser.
//!
//! - [`MaeConfig`], [`MaskedAutoencoder`]: presets `mae_vit_{base,large}_patch16`,
//!   `mae_vit_huge_patch14` and small CPU ones; random / block / grid masking by `argsort` of
//!   noise (the noise can be passed in), `ids_restore`, the asymmetric encoder (visible patches
//!   only) and decoder with the official state_dict names, fixed 2-D sin-cos positions,
//!   norm-pix loss on the removed patches; the encoder-with-mask-tokens design (Table 1c).
//! - [`pretrain`]: the official pre-training recipe with accumulation, bf16 on CUDA, exact
//!   resume. [`finetune`]: layer-wise lr decay, drop path, mixup / CutMix, label smoothing,
//!   global pooling, timm's RandAugment ([`rand_augment`]). [`linear_probe`]: BatchNorm
//!   without affine before the head, LARS.
//! - [`reconstruct`] / [`save_grid`]: the reconstruction figure. [`MaeMacs`]: analytic costs.
//! - [`MaskedAutoencoder::load_safetensors`], [`load_encoder_into`]: official checkpoints
//!   converted with `tools/convert_timm.py --pth`. [`recipe::imagenet_vit_b`]: the paper's
//!   ViT-B/16 ImageNet recipe end to end.

pub mod augment;
mod config;
mod error;
pub mod finetune;
mod flops;
pub mod masking;
mod model;
pub mod patches;
pub mod pretrain;
pub mod probe;
pub mod randaugment;
pub mod recipe;
mod visualize;
mod weights;

pub use config::{MaeConfig, MaskKind};
pub use error::{MaeError, Result};
pub use finetune::{
    classifier_config, evaluate, finetune, layer_id_for_vit, lrd_spec, param_groups_lrd, EvalSet,
    FinetuneConfig, FinetuneReport,
};
pub use flops::{mask_token_flop_ratio, MaeMacs};
pub use model::{EncoderOutput, MaeOutput, MaskedAutoencoder};
pub use patches::{patchify, unpatchify};
pub use pretrain::{pretrain, time_train_step, PretrainConfig, PretrainReport, SyntheticStep};
pub use probe::{
    extract_features, linear_probe, probe_checkpoint, ProbeConfig, ProbeData, ProbeReport,
};
pub use randaugment::{rand_augment, RandAugmentConfig};
/// The run options and the lr scaling rule are train-kit's; re-exported for the recipes here.
pub use train_kit::{scaled_lr, RunOptions};
pub use visualize::{reconstruct, save_grid, Reconstruction};
pub use weights::{
    is_decoder_name, load_encoder_into, safetensors_names, DecoderStatus, MaeLoadReport,
};
