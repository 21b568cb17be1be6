//! [`MaeConfig`] and its presets (He et al. 2022, Sec. 4 and official `models_mae.py`).

use serde::{Deserialize, Serialize};
use vit_core::{GlobalPool, PosEmbedKind, Size, ViTConfig};

use crate::error::{MaeError, Result};

/// How the patches to remove are chosen (paper Table 1f). Every strategy becomes per-patch noise
/// whose `argsort` orders the patches, so all of them keep exactly `int(L * (1 - ratio))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// Uniform random patches without replacement (the paper's choice, 84.9 at 75%).
    Random,
    /// BEiT's block-wise masking: random rectangles of >= 16 patches, aspect 0.3..3.3, until
    /// the ratio is reached (the paper: 83.9 at 50%, 82.8 at 75%).
    Block,
    /// Keep one patch of every 2x2 cell (the paper's 75% grid, 84.0).
    Grid,
}

/// A masked autoencoder. `Default` is `mae_vit_large_patch16` with a 75% random mask and
/// plain-pixel targets: the defaults of the official `main_pretrain.py` and the paper's
/// ablation baseline (Table 1, gray rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaeConfig {
    /// The encoder: a ViT with a class token, fixed 2-D sin-cos positions, `norm`, no head.
    pub encoder: ViTConfig,
    /// Decoder width (512 in every official preset).
    pub decoder_embed_dim: i64,
    /// Decoder blocks (8).
    pub decoder_depth: i64,
    /// Decoder heads (16).
    pub decoder_num_heads: i64,
    /// Fraction of patches removed, in (0, 1) (0.75).
    pub mask_ratio: f64,
    /// How the removed patches are chosen (random, block or grid; paper Table 1f).
    pub masking: MaskKind,
    /// Targets are each patch's pixels normalised by that patch's mean and unbiased variance
    /// (paper Table 1d; the released checkpoints use it).
    pub norm_pix_loss: bool,
    /// Paper Table 1c "encoder w/ [M]": the encoder runs on every patch, masked ones replaced
    /// by a learned `encoder_mask_token`; the decoder then needs no mask tokens. Only for the
    /// speed/accuracy comparison: it is the slow design.
    pub encoder_mask_tokens: bool,
}

impl Default for MaeConfig {
    fn default() -> Self {
        Self::mae_vit_large_patch16()
    }
}

/// An MAE encoder from a ViT preset: no head, fixed sin-cos positions, class token, `norm`.
fn encoder(mut vit: ViTConfig) -> ViTConfig {
    vit.num_classes = 0;
    vit.pos_embed = PosEmbedKind::SinCos;
    vit.global_pool = GlobalPool::Token;
    vit.fc_norm = Some(false);
    vit
}

impl MaeConfig {
    /// An official preset (`models_mae.py`): the ViT of that size and patch at 224, decoder
    /// 8 blocks x 512 wide with 16 heads.
    pub fn preset(size: Size, patch: i64) -> Self {
        Self {
            encoder: encoder(ViTConfig::preset(size, patch)),
            decoder_embed_dim: 512,
            decoder_depth: 8,
            decoder_num_heads: 16,
            mask_ratio: 0.75,
            masking: MaskKind::Random,
            norm_pix_loss: false,
            encoder_mask_tokens: false,
        }
    }

    /// `mae_vit_base_patch16` (= `mae_vit_base_patch16_dec512d8b`).
    pub fn mae_vit_base_patch16() -> Self {
        Self::preset(Size::Base, 16)
    }

    /// `mae_vit_large_patch16` (= `mae_vit_large_patch16_dec512d8b`), the paper's default.
    pub fn mae_vit_large_patch16() -> Self {
        Self::preset(Size::Large, 16)
    }

    /// `mae_vit_huge_patch14` (= `mae_vit_huge_patch14_dec512d8b`).
    pub fn mae_vit_huge_patch14() -> Self {
        Self::preset(Size::Huge, 14)
    }

    /// A small MAE for 28x28 one-channel images (MNIST, Fashion-MNIST) on a CPU: 4x4 patches
    /// (49 + 1 tokens), encoder 4 blocks x 64 wide (4 heads), decoder 2 blocks x 32 wide (4
    /// heads). Not in the paper; the decoder costs 1/8 of the encoder per token, as in the
    /// paper's default (8 x 512 against ViT-L: 1/12).
    pub fn mae_vit_mini_patch4_28() -> Self {
        Self::mini((28, 28), 1)
    }

    /// The same small MAE for 32x32 RGB images (CIFAR-sized), 64 patches.
    pub fn mae_vit_mini_patch4_32() -> Self {
        Self::mini((32, 32), 3)
    }

    fn mini(img_size: (i64, i64), in_chans: i64) -> Self {
        let vit = ViTConfig {
            img_size,
            patch_size: 4,
            in_chans,
            embed_dim: 64,
            depth: 4,
            num_heads: 4,
            mlp_ratio: 4.0,
            ..ViTConfig::tiny(16)
        };
        Self {
            encoder: encoder(vit),
            decoder_embed_dim: 32,
            decoder_depth: 2,
            decoder_num_heads: 4,
            ..Self::mae_vit_base_patch16()
        }
    }

    /// A preset by name: `mae_vit_{base,large}_patch16`, `mae_vit_huge_patch14`,
    /// `mae_vit_mini_patch4_{28,32}` (the official `_dec512d8b` aliases are accepted).
    pub fn by_name(name: &str) -> Result<Self> {
        let base = name.strip_suffix("_dec512d8b").unwrap_or(name);
        Ok(match base {
            "mae_vit_base_patch16" => Self::mae_vit_base_patch16(),
            "mae_vit_large_patch16" => Self::mae_vit_large_patch16(),
            "mae_vit_huge_patch14" => Self::mae_vit_huge_patch14(),
            "mae_vit_mini_patch4_28" if base == name => Self::mae_vit_mini_patch4_28(),
            "mae_vit_mini_patch4_32" if base == name => Self::mae_vit_mini_patch4_32(),
            _ => {
                return Err(MaeError::Config(format!(
                    "unknown preset `{name}`: expected one of {}",
                    Self::preset_names().join(", ")
                )))
            }
        })
    }

    /// Every preset name [`MaeConfig::by_name`] accepts (besides the `_dec512d8b` aliases).
    pub fn preset_names() -> Vec<&'static str> {
        vec![
            "mae_vit_base_patch16",
            "mae_vit_large_patch16",
            "mae_vit_huge_patch14",
            "mae_vit_mini_patch4_28",
            "mae_vit_mini_patch4_32",
        ]
    }

    /// Patches per image, `L`.
    pub fn num_patches(&self) -> i64 {
        self.encoder.num_patches()
    }

    /// Visible patches per image at `ratio`: `int(L * (1 - ratio))`, as the official code.
    pub fn len_keep(&self, ratio: f64) -> i64 {
        len_keep(self.num_patches(), ratio)
    }

    /// Values per patch, `p * p * C` (the width of `decoder_pred`).
    pub fn patch_dim(&self) -> i64 {
        self.encoder.patch_size * self.encoder.patch_size * self.encoder.in_chans
    }

    /// The decoder's blocks as a ViT config (width, heads, the encoder's MLP ratio and eps).
    pub fn decoder_vit(&self) -> ViTConfig {
        ViTConfig {
            embed_dim: self.decoder_embed_dim,
            depth: self.decoder_depth,
            num_heads: self.decoder_num_heads,
            qkv_bias: true,
            init_values: None,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            proj_drop_rate: 0.0,
            drop_path_rate: 0.0,
            ..self.encoder.clone()
        }
    }

    /// Checks the config, including that `mask_ratio` keeps at least one patch and removes one.
    pub fn validate(&self) -> Result<()> {
        let e = &self.encoder;
        e.validate()?;
        let err = |m: String| Err(MaeError::Config(m));
        if !e.class_token || e.reg_tokens != 0 || e.no_embed_class {
            return err(format!(
                "the MAE encoder has one class token with a position (class_token = true, \
                 reg_tokens = 0, no_embed_class = false), got {}, {}, {}",
                e.class_token, e.reg_tokens, e.no_embed_class
            ));
        }
        if e.num_classes != 0 || e.use_fc_norm() || e.pos_embed != PosEmbedKind::SinCos {
            return err(format!(
                "the MAE encoder has no head, a final `norm` and fixed sin-cos positions \
                 (num_classes = 0, fc_norm off, pos_embed = sin_cos), got {}, {}, {:?}",
                e.num_classes,
                e.use_fc_norm(),
                e.pos_embed
            ));
        }
        let (d, h, depth) = (
            self.decoder_embed_dim,
            self.decoder_num_heads,
            self.decoder_depth,
        );
        if d <= 0 || h <= 0 || depth < 0 || d % h != 0 || d % 4 != 0 {
            return err(format!(
                "decoder width {d} must be positive, divisible by its {h} heads and by 4 \
                 (sin-cos positions), depth {depth} >= 0"
            ));
        }
        if e.embed_dim % 4 != 0 {
            return err(format!(
                "encoder width {} must be divisible by 4 (sin-cos positions)",
                e.embed_dim
            ));
        }
        check_ratio(self.num_patches(), self.mask_ratio)?;
        Ok(())
    }
}

/// `int(L * (1 - ratio))`.
pub(crate) fn len_keep(l: i64, ratio: f64) -> i64 {
    (l as f64 * (1.0 - ratio)) as i64
}

/// A ratio in (0, 1) that keeps at least one of `l` patches.
pub(crate) fn check_ratio(l: i64, ratio: f64) -> Result<i64> {
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(MaeError::Config(format!(
            "mask_ratio must be in (0, 1), got {ratio}"
        )));
    }
    let keep = len_keep(l, ratio);
    if keep < 1 || keep >= l {
        return Err(MaeError::Config(format!(
            "mask_ratio {ratio} keeps {keep} of {l} patches: expected 1 to {} visible",
            l - 1
        )));
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_official_models() {
        let _rng = test_support::rng_lock();
        for (name, (d, depth, heads, p)) in [
            ("mae_vit_base_patch16", (768, 12, 12, 16)),
            ("mae_vit_large_patch16_dec512d8b", (1024, 24, 16, 16)),
            ("mae_vit_huge_patch14", (1280, 32, 16, 14)),
        ] {
            let c = MaeConfig::by_name(name).unwrap();
            let e = &c.encoder;
            assert_eq!(
                (e.embed_dim, e.depth, e.num_heads, e.patch_size),
                (d, depth, heads, p)
            );
            assert_eq!(
                (c.decoder_embed_dim, c.decoder_depth, c.decoder_num_heads),
                (512, 8, 16)
            );
            assert_eq!((e.mlp_hidden(), e.norm_eps), (4 * d, 1e-6));
            c.validate().unwrap();
        }
        assert_eq!(MaeConfig::default(), MaeConfig::mae_vit_large_patch16());
        assert_eq!(MaeConfig::default().len_keep(0.75), 49);
        assert_eq!(MaeConfig::mae_vit_huge_patch14().num_patches(), 256);
        for n in MaeConfig::preset_names() {
            MaeConfig::by_name(n).unwrap().validate().unwrap();
        }
        assert!(MaeConfig::by_name("mae_vit_small_patch16").is_err());
        assert!(MaeConfig::by_name("mae_vit_mini_patch4_28_dec512d8b").is_err());
    }

    #[test]
    fn ratio_is_checked() {
        let _rng = test_support::rng_lock();
        let mut c = MaeConfig::mae_vit_mini_patch4_28();
        for bad in [0.0, 1.0, -0.1, f64::NAN, 0.99] {
            c.mask_ratio = bad;
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("mask_ratio"), "{e}");
        }
        c.mask_ratio = 0.9;
        c.validate().unwrap();
        assert_eq!(c.len_keep(0.9), 4); // int(49 * 0.1) = int(4.9)
        c.decoder_embed_dim = 62;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("decoder width 62"));
        let mut c = MaeConfig::mae_vit_base_patch16();
        c.encoder.pos_embed = PosEmbedKind::Learned;
        assert!(c.validate().is_err());
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let _rng = test_support::rng_lock();
        let c = MaeConfig::mae_vit_mini_patch4_32();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<MaeConfig>(&s).unwrap(), c);
        assert!(serde_json::from_str::<MaeConfig>(r#"{"mask_ration": 0.5}"#).is_err());
        let d: MaeConfig = serde_json::from_str(r#"{"mask_ratio": 0.5}"#).unwrap();
        assert_eq!(d.encoder, MaeConfig::default().encoder);
    }
}
