//! Analytic parameter and multiply-accumulate counts of a [`ViTConfig`].
//!
//! MACs count the matrix products only (convolution, linear layers, the two attention matmuls
//! `q k^T` and `attn v`), as fvcore and `torch.utils.flop_counter` do (FLOPs = 2 x MACs); norms,
//! softmax, GELU and additions are left out. fvcore does not see a fused
//! `scaled_dot_product_attention`, so a count made with it on a fused model equals
//! [`Macs::without_attention`].

use serde::Serialize;

use crate::config::ViTConfig;

/// timm's parameter counts and `FlopCounterMode` MACs (224x224, 1000 classes) for the 15
/// presets, written by `tests/parity/timm_counts.py` (timm 1.0.31, torch 2.11.0).
pub const TIMM_COUNTS_JSON: &str = include_str!("../reference/timm_counts.json");

/// Every tensor of the state_dict, as [`crate::VisionTransformer::num_params`] counts it.
pub fn param_count(cfg: &ViTConfig) -> i64 {
    let d = cfg.embed_dim;
    let m = cfg.mlp_hidden();
    let p = cfg.patch_size;
    let bias = |yes: bool, n: i64| if yes { n } else { 0 };
    let patch_embed = d * cfg.in_chans * p * p + d;
    let tokens = (cfg.class_token as i64 + cfg.reg_tokens) * d;
    let pos = cfg.pos_embed_len() * d;
    let block = 2 * 2 * d // norm1, norm2
        + 3 * d * d + bias(cfg.qkv_bias, 3 * d)
        + d * d + d
        + d * m + m
        + m * d + d
        + bias(cfg.init_values.is_some(), 2 * d);
    let final_norm = 2 * d; // `norm` or `fc_norm`, never both
    let head = bias(cfg.num_classes > 0, d * cfg.num_classes + cfg.num_classes);
    patch_embed + tokens + pos + cfg.depth * block + final_norm + head
}

/// MACs of one image through the model, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Macs {
    /// The patch projection (Eq. 1, `E`).
    pub patch_embed: i64,
    /// The query / key / value projections, all blocks.
    pub qkv: i64,
    /// `q k^T` and `attn v`, all blocks.
    pub attention: i64,
    /// The attention output projections, all blocks.
    pub proj: i64,
    /// Both MLP layers, all blocks.
    pub mlp: i64,
    /// The classifier head.
    pub head: i64,
}

impl Macs {
    /// At image size `img` (H, W) with every block seeing all tokens.
    pub fn of(cfg: &ViTConfig, img: (i64, i64)) -> Self {
        let t = (img.0 / cfg.patch_size) * (img.1 / cfg.patch_size) + cfg.num_prefix_tokens();
        Self::with_tokens(cfg, img, &vec![(t, t); cfg.depth as usize])
    }

    /// With a per-block token count `(attention tokens, MLP tokens)`: under ToMe a block's
    /// attention sees the tokens before its merge and its MLP those after.
    pub fn with_tokens(cfg: &ViTConfig, img: (i64, i64), per_block: &[(i64, i64)]) -> Self {
        let d = cfg.embed_dim;
        let m = cfg.mlp_hidden();
        let p = cfg.patch_size;
        let patches = (img.0 / p) * (img.1 / p);
        let mut out = Self {
            patch_embed: patches * d * cfg.in_chans * p * p,
            qkv: 0,
            attention: 0,
            proj: 0,
            mlp: 0,
            head: d * cfg.num_classes,
        };
        for &(ta, tm) in per_block {
            out.qkv += ta * d * 3 * d;
            out.attention += 2 * ta * ta * d;
            out.proj += ta * d * d;
            out.mlp += 2 * tm * d * m;
        }
        out
    }

    /// Every matrix product, the attention matmuls included (what `FlopCounterMode` counts).
    pub fn total(&self) -> i64 {
        self.without_attention() + self.attention
    }

    /// Without the two attention matmuls (what fvcore reports on a fused model).
    pub fn without_attention(&self) -> i64 {
        self.patch_embed + self.qkv + self.proj + self.mlp + self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_b16_has_timms_parameter_count() {
        assert_eq!(param_count(&ViTConfig::base(16)), 86_567_656);
    }

    #[test]
    fn vit_b16_macs_match_the_published_17_6_g() {
        let m = Macs::of(&ViTConfig::base(16), (224, 224));
        // 197 tokens: 12 blocks x (qkv 348.6M + attn 59.6M + proj 116.2M + mlp 929.6M) + patch
        // embed 115.6M + head 0.8M.
        assert_eq!(m.attention, 12 * 2 * 197 * 197 * 768);
        let g = m.total() as f64 / 1e9;
        test_support::assert_close(g, 17.6, test_support::Tol::abs(0.05));
        assert!(m.without_attention() < m.total());
    }

    #[test]
    fn variants_change_the_count_as_expected() {
        let base = ViTConfig::tiny(16);
        let n = param_count(&base);
        let mut c = base.clone();
        c.reg_tokens = 4;
        assert_eq!(param_count(&c), n + 4 * 192 + 4 * 192);
        c.no_embed_class = true;
        assert_eq!(param_count(&c), n + 4 * 192 - 192);
        let mut c = base.clone();
        c.num_classes = 0;
        assert_eq!(param_count(&c), n - 192 * 1000 - 1000);
        let mut c = base.clone();
        c.qkv_bias = false;
        c.init_values = Some(1e-5);
        assert_eq!(param_count(&c), n - 12 * 3 * 192 + 12 * 2 * 192);
    }
}
