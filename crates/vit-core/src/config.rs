//! [`ViTConfig`] and its presets (Dosovitskiy et al. 2020, Table 1; Tiny/Small as in timm).

use serde::{Deserialize, Serialize};

use crate::error::{Result, ViTError};

/// How the token sequence becomes one vector for the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalPool {
    /// The class token (`x[:, 0]`), as in the paper.
    Token,
    /// Mean over the patch tokens (prefix tokens excluded), followed by `fc_norm` (MAE fine-tuning).
    Avg,
    /// No pooling: `forward_head` returns the whole normalised sequence.
    None,
}

/// Position embedding of the patch grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PosEmbedKind {
    /// A learned parameter `pos_embed` (timm's default), initialised N(0, 0.02).
    Learned,
    /// Fixed 2-D sin-cos (MAE `get_2d_sincos_pos_embed`, computed in float64), stored in
    /// `pos_embed` but not trained.
    SinCos,
}

/// How a position embedding is resampled to another grid (timm `resample_abs_pos_embed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosResample {
    /// Bicubic with `align_corners = false` in every case; `antialias = true` is timm's default
    /// (it matters only when shrinking), `false` is the official MAE `interpolate_pos_embed`.
    pub antialias: bool,
}

impl Default for PosResample {
    fn default() -> Self {
        Self { antialias: true }
    }
}

/// A Vision Transformer's architecture. `Default` is ViT-B/16 at 224 with 1000 classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViTConfig {
    /// Image size (height, width) the position embedding is made for. Other sizes that are a
    /// multiple of the patch are accepted at run time (the embedding is resampled).
    pub img_size: (i64, i64),
    /// Side P of the square patches (Eq. 1: the image becomes `HW / P^2` patches).
    pub patch_size: i64,
    /// Input channels (3 for RGB).
    pub in_chans: i64,
    /// 0 = no head: `forward` returns the pooled features.
    pub num_classes: i64,
    /// Width D of every token (the paper's latent vector size, Table 1 "Hidden size").
    pub embed_dim: i64,
    /// Number L of transformer blocks (Table 1 "Layers").
    pub depth: i64,
    /// Attention heads per block (Table 1 "Heads"); must divide `embed_dim`.
    pub num_heads: i64,
    /// MLP width as a multiple of D (4 in the paper: Table 1 "MLP size" = 4D).
    pub mlp_ratio: f64,
    /// A bias on the query / key / value projection (timm's default).
    pub qkv_bias: bool,
    /// A learned class token prepended to the patches (Eq. 1, `x_class`).
    pub class_token: bool,
    /// Register tokens (Darcet et al. 2023), placed after the class token.
    pub reg_tokens: i64,
    /// `true`: the position embedding covers only the patches and prefix tokens get none
    /// (DeiT-III, registers models); `false`: it has one entry per prefix token too (original ViT).
    pub no_embed_class: bool,
    /// How the head reads the sequence (class token, average, none).
    pub global_pool: GlobalPool,
    /// `None` = timm's rule: a `fc_norm` after pooling iff the pool is `Avg` (then `norm` is absent).
    pub fc_norm: Option<bool>,
    /// Learned or fixed sin-cos position embedding (Eq. 1, `E_pos`).
    pub pos_embed: PosEmbedKind,
    /// How the position embedding is resampled to another grid.
    pub pos_resample: PosResample,
    /// LayerScale initial value (Touvron et al. 2021); `None` = no layer scale.
    pub init_values: Option<f64>,
    /// Dropout after the position embedding and before the head.
    pub drop_rate: f64,
    /// Dropout on the attention weights.
    pub attn_drop_rate: f64,
    /// Dropout after the attention projection and in the MLP.
    pub proj_drop_rate: f64,
    /// Stochastic depth: block `i` drops its residual branches with rate `i / (depth - 1) * rate`.
    pub drop_path_rate: f64,
    /// LayerNorm epsilon: 1e-6 in ViT and MAE (not PyTorch's 1e-5).
    pub norm_eps: f64,
}

impl Default for ViTConfig {
    fn default() -> Self {
        Self::base(16)
    }
}

/// The model sizes of the paper (Table 1) and timm's Tiny/Small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// ViT-Ti (timm): 192 wide, 12 blocks, 3 heads.
    Tiny,
    /// ViT-S (timm): 384 wide, 12 blocks, 6 heads.
    Small,
    /// ViT-B (Table 1): 768 wide, 12 blocks, 12 heads.
    Base,
    /// ViT-L (Table 1): 1024 wide, 24 blocks, 16 heads.
    Large,
    /// ViT-H (Table 1): 1280 wide, 32 blocks, 16 heads.
    Huge,
}

impl Size {
    /// Every size, smallest first.
    pub const ALL: [Size; 5] = [Size::Tiny, Size::Small, Size::Base, Size::Large, Size::Huge];

    /// (width, depth, heads, MLP width).
    pub fn dims(self) -> (i64, i64, i64, i64) {
        match self {
            Size::Tiny => (192, 12, 3, 768),
            Size::Small => (384, 12, 6, 1536),
            Size::Base => (768, 12, 12, 3072),
            Size::Large => (1024, 24, 16, 4096),
            Size::Huge => (1280, 32, 16, 5120),
        }
    }

    /// The size's name in timm's preset names (`tiny` ... `huge`).
    pub fn name(self) -> &'static str {
        match self {
            Size::Tiny => "tiny",
            Size::Small => "small",
            Size::Base => "base",
            Size::Large => "large",
            Size::Huge => "huge",
        }
    }
}

impl ViTConfig {
    /// A preset: the given size and patch at 224x224, 1000 classes, class-token pooling,
    /// learned positions, qkv bias (timm `vit_<size>_patch<p>_224`).
    pub fn preset(size: Size, patch_size: i64) -> Self {
        let (embed_dim, depth, num_heads, mlp) = size.dims();
        Self {
            img_size: (224, 224),
            patch_size,
            in_chans: 3,
            num_classes: 1000,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: mlp as f64 / embed_dim as f64,
            qkv_bias: true,
            class_token: true,
            reg_tokens: 0,
            no_embed_class: false,
            global_pool: GlobalPool::Token,
            fc_norm: None,
            pos_embed: PosEmbedKind::Learned,
            pos_resample: PosResample::default(),
            init_values: None,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            proj_drop_rate: 0.0,
            drop_path_rate: 0.0,
            norm_eps: 1e-6,
        }
    }

    /// ViT-Ti/`patch_size` at 224 (timm).
    pub fn tiny(patch_size: i64) -> Self {
        Self::preset(Size::Tiny, patch_size)
    }
    /// ViT-S/`patch_size` at 224 (timm).
    pub fn small(patch_size: i64) -> Self {
        Self::preset(Size::Small, patch_size)
    }
    /// ViT-B/`patch_size` at 224 (Table 1).
    pub fn base(patch_size: i64) -> Self {
        Self::preset(Size::Base, patch_size)
    }
    /// ViT-L/`patch_size` at 224 (Table 1).
    pub fn large(patch_size: i64) -> Self {
        Self::preset(Size::Large, patch_size)
    }
    /// ViT-H/`patch_size` at 224 (Table 1).
    pub fn huge(patch_size: i64) -> Self {
        Self::preset(Size::Huge, patch_size)
    }

    /// A preset by timm's name, e.g. `vit_base_patch16_224`, `vit_huge_patch14_224`,
    /// `vit_small_patch16_384`.
    pub fn by_name(name: &str) -> Result<Self> {
        let bad = || {
            ViTError::Config(format!(
            "unknown preset `{name}`: expected vit_{{tiny,small,base,large,huge}}_patch{{14,16,32}}_<img size>"
        ))
        };
        let rest = name.strip_prefix("vit_").ok_or_else(bad)?;
        let mut parts = rest.split('_');
        let size = match parts.next() {
            Some("tiny") => Size::Tiny,
            Some("small") => Size::Small,
            Some("base") => Size::Base,
            Some("large") => Size::Large,
            Some("huge") => Size::Huge,
            _ => return Err(bad()),
        };
        let patch: i64 = parts
            .next()
            .and_then(|p| p.strip_prefix("patch"))
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)?;
        let img: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() || ![14, 16, 32].contains(&patch) {
            return Err(bad());
        }
        let mut cfg = Self::preset(size, patch);
        cfg.img_size = (img, img);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every preset name: 5 sizes x 3 patch sizes at 224.
    pub fn preset_names() -> Vec<String> {
        let mut out = Vec::new();
        for size in Size::ALL {
            for p in [14, 16, 32] {
                out.push(format!("vit_{}_patch{p}_224", size.name()));
            }
        }
        out
    }

    /// Width of one attention head, `embed_dim / num_heads`.
    pub fn head_dim(&self) -> i64 {
        self.embed_dim / self.num_heads
    }

    /// Hidden width of the MLP, `embed_dim * mlp_ratio` truncated as timm does.
    pub fn mlp_hidden(&self) -> i64 {
        (self.embed_dim as f64 * self.mlp_ratio) as i64
    }

    /// Class token plus registers.
    pub fn num_prefix_tokens(&self) -> i64 {
        self.class_token as i64 + self.reg_tokens
    }

    /// The patch grid (rows, columns) at `img_size`.
    pub fn grid_size(&self) -> (i64, i64) {
        (
            self.img_size.0 / self.patch_size,
            self.img_size.1 / self.patch_size,
        )
    }

    /// Patches at `img_size`, `rows * columns` (the paper's N).
    pub fn num_patches(&self) -> i64 {
        let (h, w) = self.grid_size();
        h * w
    }

    /// Rows of `pos_embed`: the patches, plus the prefix tokens unless `no_embed_class`.
    pub fn pos_embed_len(&self) -> i64 {
        self.num_patches()
            + if self.no_embed_class {
                0
            } else {
                self.num_prefix_tokens()
            }
    }

    /// timm's rule for `fc_norm`: present iff pooling is `Avg`, unless set.
    pub fn use_fc_norm(&self) -> bool {
        self.fc_norm.unwrap_or(self.global_pool == GlobalPool::Avg)
    }

    /// Drop-path rate of block `i`: linear from 0 to `drop_path_rate` (timm `torch.linspace`).
    pub fn drop_path_at(&self, i: i64) -> f64 {
        if self.depth <= 1 {
            return 0.0;
        }
        self.drop_path_rate * i as f64 / (self.depth - 1) as f64
    }

    /// Checks what a forward would otherwise fail on.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(ViTError::Config(m));
        if self.patch_size <= 0 || self.embed_dim <= 0 || self.depth < 0 || self.num_heads <= 0 {
            return err(format!(
                "patch_size, embed_dim, num_heads must be > 0 and depth >= 0, got {}, {}, {}, {}",
                self.patch_size, self.embed_dim, self.num_heads, self.depth
            ));
        }
        if self.embed_dim % self.num_heads != 0 {
            return err(format!(
                "embed_dim {} is not divisible by num_heads {}",
                self.embed_dim, self.num_heads
            ));
        }
        let (h, w) = self.img_size;
        if h % self.patch_size != 0 || w % self.patch_size != 0 || h <= 0 || w <= 0 {
            return err(format!(
                "img_size {h}x{w} is not a positive multiple of patch_size {}",
                self.patch_size
            ));
        }
        if self.in_chans <= 0 || self.num_classes < 0 || self.reg_tokens < 0 {
            return err(format!(
                "in_chans must be > 0, num_classes and reg_tokens >= 0, got {}, {}, {}",
                self.in_chans, self.num_classes, self.reg_tokens
            ));
        }
        if self.global_pool == GlobalPool::Token && !self.class_token {
            return err("global_pool = token needs class_token = true".into());
        }
        if self.mlp_hidden() <= 0 {
            return err(format!("mlp_ratio {} gives an empty MLP", self.mlp_ratio));
        }
        for (name, p) in [
            ("drop_rate", self.drop_rate),
            ("attn_drop_rate", self.attn_drop_rate),
            ("proj_drop_rate", self.proj_drop_rate),
            ("drop_path_rate", self.drop_path_rate),
        ] {
            if !(0.0..1.0).contains(&p) {
                return err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::{assert_close, Tol};

    #[test]
    fn presets_by_name() {
        let b = ViTConfig::by_name("vit_base_patch16_224").unwrap();
        assert_eq!(b, ViTConfig::base(16));
        assert_eq!(b.mlp_hidden(), 3072);
        let h = ViTConfig::by_name("vit_huge_patch14_224").unwrap();
        assert_eq!(
            (h.embed_dim, h.depth, h.num_heads, h.mlp_hidden()),
            (1280, 32, 16, 5120)
        );
        let s = ViTConfig::by_name("vit_small_patch32_384").unwrap();
        assert_eq!(s.grid_size(), (12, 12));
        for bad in [
            "vit_base_patch15_224",
            "deit_base",
            "vit_giant_patch14_224",
            "vit_base_patch16",
        ] {
            assert!(ViTConfig::by_name(bad).is_err(), "{bad}");
        }
        assert_eq!(ViTConfig::preset_names().len(), 15);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = ViTConfig::tiny(16);
        c.img_size = (225, 224);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("225x224") && e.contains("16"), "{e}");
        let mut c = ViTConfig::tiny(16);
        c.num_heads = 5;
        assert!(c.validate().unwrap_err().to_string().contains("divisible"));
        let mut c = ViTConfig::tiny(16);
        c.class_token = false;
        assert!(c.validate().is_err());
        c.global_pool = GlobalPool::Avg;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn drop_path_is_linear_per_block() {
        let mut c = ViTConfig::tiny(16);
        c.drop_path_rate = 0.1;
        assert_eq!(c.drop_path_at(0), 0.0);
        assert_close(c.drop_path_at(11), 0.1, Tol::abs(1e-12));
        assert_close(c.drop_path_at(4), 0.1 * 4.0 / 11.0, Tol::abs(1e-12));
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let c = ViTConfig::small(16);
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ViTConfig>(&s).unwrap(), c);
        assert!(serde_json::from_str::<ViTConfig>(r#"{"embed_dims": 3}"#).is_err());
        // Missing fields take the default (ViT-B/16).
        let d: ViTConfig = serde_json::from_str(r#"{"depth": 2}"#).unwrap();
        assert_eq!((d.depth, d.embed_dim), (2, 768));
    }
}
