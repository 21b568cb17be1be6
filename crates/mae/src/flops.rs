//! Analytic cost of one MAE forward (paper Sec. 3 and Table 1c/2): the encoder runs on
//! `1 + keep` tokens, the decoder on `1 + L`. With mask tokens in the encoder (Table 1c), the
//! encoder runs on `1 + L` too. Matmul MACs only, as [`vit_core::Macs`] counts them (FLOPs =
//! 2 x MACs); a training step costs about 3x its forward on both designs, so the ratio of
//! forwards is the ratio of steps.

use serde::Serialize;
use vit_core::Macs;

use crate::config::{check_ratio, MaeConfig};
use crate::error::Result;

/// MACs per image of one forward, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MaeMacs {
    /// Patch projection over all L patches (the official code embeds before masking).
    pub patch_embed: i64,
    /// Encoder blocks (qkv, attention matmuls, proj, MLP).
    pub encoder: i64,
    /// `decoder_embed` on the encoder's tokens.
    pub decoder_embed: i64,
    /// Decoder blocks on `1 + L` tokens.
    pub decoder: i64,
    /// `decoder_pred` on `1 + L` tokens.
    pub decoder_pred: i64,
}

impl MaeMacs {
    /// The cost at `mask_ratio`; `encoder_mask_tokens` selects the Table 1c design.
    pub fn of(cfg: &MaeConfig, mask_ratio: f64, encoder_mask_tokens: bool) -> Result<Self> {
        let l = cfg.num_patches();
        let keep = check_ratio(l, mask_ratio)?;
        let enc_tokens = if encoder_mask_tokens { l + 1 } else { keep + 1 };
        let e = &cfg.encoder;
        let img = e.img_size;
        let enc = Macs::with_tokens(e, img, &vec![(enc_tokens, enc_tokens); e.depth as usize]);
        let dec_cfg = cfg.decoder_vit();
        let dec = Macs::with_tokens(
            &dec_cfg,
            img,
            &vec![(l + 1, l + 1); cfg.decoder_depth as usize],
        );
        Ok(Self {
            patch_embed: enc.patch_embed,
            encoder: enc.qkv + enc.attention + enc.proj + enc.mlp,
            decoder_embed: enc_tokens * e.embed_dim * cfg.decoder_embed_dim,
            decoder: dec.qkv + dec.attention + dec.proj + dec.mlp,
            decoder_pred: (l + 1) * cfg.decoder_embed_dim * cfg.patch_dim(),
        })
    }

    /// The whole forward: patch embedding, encoder, decoder embedding, decoder, prediction.
    pub fn total(&self) -> i64 {
        self.patch_embed + self.encoder + self.decoder_embed + self.decoder + self.decoder_pred
    }
}

/// Cost of the encoder-with-mask-tokens design over the asymmetric one at `mask_ratio`
/// (paper Table 1c: 3.3x for ViT-L at 75%).
pub fn mask_token_flop_ratio(cfg: &MaeConfig, mask_ratio: f64) -> Result<f64> {
    let with = MaeMacs::of(cfg, mask_ratio, true)?.total() as f64;
    let without = MaeMacs::of(cfg, mask_ratio, false)?.total() as f64;
    Ok(with / without)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_l_ratio_is_the_papers_3_3x() {
        let _rng = test_support::rng_lock();
        let cfg = MaeConfig::mae_vit_large_patch16();
        let r = mask_token_flop_ratio(&cfg, 0.75).unwrap();
        // Paper Table 1c: 3.3x. Matmul MACs give 3.23x (norms and softmax are not counted).
        test_support::assert_close(r, 3.3, test_support::Tol::abs(0.1));
        let m = MaeMacs::of(&cfg, 0.75, false).unwrap();
        // 50 encoder tokens, 24 blocks of width 1024: 12 d^2 per token plus 2 t^2 d attention.
        assert_eq!(m.encoder, 24 * (50 * 12 * 1024 * 1024 + 2 * 50 * 50 * 1024));
        assert_eq!(m.decoder, 8 * (197 * 12 * 512 * 512 + 2 * 197 * 197 * 512));
        assert_eq!(m.patch_embed, 196 * 1024 * 768);
        // The decoder is light: < 10% of the encoder's per-token cost (paper Sec. 3).
        let per_token = (m.decoder as f64 / 197.0) / (m.encoder as f64 / 50.0);
        assert!(per_token < 0.1, "{per_token}");
        assert!(mask_token_flop_ratio(&cfg, 1.0).is_err());
    }
}
