//! OadTR's configuration, with the official THUMOS'14 setting as the default (`config.py` of
//! wangxiang1230/OadTR) and a small preset for CPU streams.

use serde::{Deserialize, Serialize};

use crate::error::{OadError, Result};

/// The decoder of OadTR: learned queries, causal self-attention, cross-attention to the
/// encoder (`transformer_models/decoder.py`, `ViT.py` `VisionTransformer_v3`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Learned queries = anticipated future steps (`--query_num 8`).
    pub num_queries: i64,
    /// Decoder layers (`--decoder_layers 5`).
    pub num_layers: i64,
    /// Heads of both attentions (`--decoder_num_heads 4`).
    pub num_heads: i64,
    /// Width of the 1x1-conv feed-forward (`--decoder_embedding_dim_out 1024`).
    pub ff_dim: i64,
    /// Dropout on the attention maps, residual branches and feed-forward
    /// (`--decoder_attn_dropout_rate 0.1`).
    pub dropout: f64,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            num_queries: 8,
            num_layers: 5,
            num_heads: 4,
            ff_dim: 1024,
            dropout: 0.1,
        }
    }
}

/// OadTR. `Default` is the official THUMOS'14 setting with TSN-ANet features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OadConfig {
    /// Width of one input feature vector (`--dim_feature`: TSN-ANet rgb 2048 + flow 1024 =
    /// 3072; Kinetics-pretrained 4096).
    pub feature_dim: i64,
    /// Past steps in a window (`--enc_layers 64`); the task token makes `enc_steps + 1` tokens.
    pub enc_steps: i64,
    /// Classes including background (index [`OadConfig::background_class`]) and the ambiguous
    /// class when there is one (`--numclass 22` on THUMOS'14).
    pub num_classes: i64,
    /// Token width of the encoder and the decoder (`--embedding_dim 1024`,
    /// `--decoder_embedding_dim 1024`: the cross-attention needs them equal).
    pub embed_dim: i64,
    /// Encoder heads (`--num_heads 8`).
    pub num_heads: i64,
    /// Encoder layers (`--num_layers 3`).
    pub num_layers: i64,
    /// Encoder feed-forward width (`--hidden_dim 1024`).
    pub hidden_dim: i64,
    /// Dropout after the position encoding, on the attention output and in the feed-forward,
    /// and on the decoder outputs (`--dropout_rate 0.1`).
    pub dropout: f64,
    /// Dropout on the encoder's attention maps (`--attn_dropout_rate 0.1`).
    pub attn_dropout: f64,
    /// The decoder; `None` is the paper's encoder-only ablation (the current-frame head then
    /// reads the task token alone).
    pub decoder: Option<DecoderConfig>,
    /// The background class, left out of the mAP (`frame_level_map_n_cap` starts at 1).
    pub background_class: i64,
    /// The ambiguous class, ignored by the loss and dropped from the evaluation (THUMOS 21).
    pub ambiguous_class: Option<i64>,
    /// Loss weight of the current-frame (encoder) head (`classification_h_loss_coef 1`).
    pub encoder_loss_weight: f64,
    /// Loss weight of the anticipation (decoder) heads (`--classification_pred_loss_coef 0.5`).
    pub decoder_loss_weight: f64,
    /// LayerNorm epsilon (PyTorch's default in the official code).
    pub ln_eps: f64,
}

impl Default for OadConfig {
    fn default() -> Self {
        Self::thumos_tsn()
    }
}

impl OadConfig {
    /// THUMOS'14 with the released TSN-ANet features (3072-d), 22 classes (background, 20
    /// actions, ambiguous): `config.py` and `data/data_info_new.json` of the official code.
    pub fn thumos_tsn() -> Self {
        OadConfig {
            feature_dim: 3072,
            enc_steps: 64,
            num_classes: 22,
            embed_dim: 1024,
            num_heads: 8,
            num_layers: 3,
            hidden_dim: 1024,
            dropout: 0.1,
            attn_dropout: 0.1,
            decoder: Some(DecoderConfig::default()),
            background_class: 0,
            ambiguous_class: Some(21),
            encoder_loss_weight: 1.0,
            decoder_loss_weight: 0.5,
            ln_eps: 1e-5,
        }
    }

    /// THUMOS'14 with the Kinetics-pretrained features (4096-d), the paper's 65.2 mAP setting.
    pub fn thumos_kinetics() -> Self {
        OadConfig {
            feature_dim: 4096,
            ..Self::thumos_tsn()
        }
    }

    /// A small OadTR for CPU streams: width 64, 2 encoder layers (4 heads), 2 decoder layers
    /// (2 heads), 4 queries, feed-forward 128; `feature_dim` inputs, `num_classes` classes
    /// with background 0 and no ambiguous class, windows of `enc_steps`.
    pub fn small(feature_dim: i64, num_classes: i64, enc_steps: i64) -> Self {
        OadConfig {
            feature_dim,
            enc_steps,
            num_classes,
            embed_dim: 64,
            num_heads: 4,
            num_layers: 2,
            hidden_dim: 128,
            dropout: 0.1,
            attn_dropout: 0.1,
            decoder: Some(DecoderConfig {
                num_queries: 4,
                num_layers: 2,
                num_heads: 2,
                ff_dim: 128,
                dropout: 0.1,
            }),
            background_class: 0,
            ambiguous_class: None,
            encoder_loss_weight: 1.0,
            decoder_loss_weight: 0.5,
            ln_eps: 1e-5,
        }
    }

    /// The same configuration without the decoder (the paper's encoder-only ablation).
    pub fn encoder_only(&self) -> Self {
        OadConfig {
            decoder: None,
            ..self.clone()
        }
    }

    /// Anticipated steps (decoder queries); 0 without a decoder.
    pub fn num_queries(&self) -> i64 {
        self.decoder.as_ref().map_or(0, |d| d.num_queries)
    }

    /// The classes the evaluation scores: all but the ambiguous one, in order (the official
    /// evaluation takes the softmax over the first 21 of 22 logits).
    pub fn scored_classes(&self) -> Vec<i64> {
        (0..self.num_classes)
            .filter(|&c| Some(c) != self.ambiguous_class)
            .collect()
    }

    /// Checks the sizes and class indices.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(OadError::Config(m));
        let sizes = [
            ("feature_dim", self.feature_dim),
            ("enc_steps", self.enc_steps),
            ("num_classes", self.num_classes),
            ("embed_dim", self.embed_dim),
            ("num_heads", self.num_heads),
            ("num_layers", self.num_layers),
            ("hidden_dim", self.hidden_dim),
        ];
        for (name, v) in sizes {
            if v < 1 {
                return bad(format!("{name} {v}: expected >= 1"));
            }
        }
        if self.embed_dim % self.num_heads != 0 {
            return bad(format!(
                "embed_dim {} is not a multiple of num_heads {}",
                self.embed_dim, self.num_heads
            ));
        }
        for (name, p) in [
            ("dropout", self.dropout),
            ("attn_dropout", self.attn_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} {p}: expected in [0, 1)"));
            }
        }
        if !(0..self.num_classes).contains(&self.background_class) {
            return bad(format!(
                "background_class {}: expected in 0..{}",
                self.background_class, self.num_classes
            ));
        }
        if let Some(a) = self.ambiguous_class {
            if !(0..self.num_classes).contains(&a) || a == self.background_class {
                return bad(format!(
                    "ambiguous_class {a}: expected in 0..{} and not the background {}",
                    self.num_classes, self.background_class
                ));
            }
        }
        if self.scored_classes().len() < 2 {
            return bad("expected at least the background and one action class".into());
        }
        if let Some(d) = &self.decoder {
            for (name, v) in [
                ("decoder.num_queries", d.num_queries),
                ("decoder.num_layers", d.num_layers),
                ("decoder.num_heads", d.num_heads),
                ("decoder.ff_dim", d.ff_dim),
            ] {
                if v < 1 {
                    return bad(format!("{name} {v}: expected >= 1"));
                }
            }
            if self.embed_dim % d.num_heads != 0 {
                return bad(format!(
                    "embed_dim {} is not a multiple of decoder.num_heads {}",
                    self.embed_dim, d.num_heads
                ));
            }
            if !(0.0..1.0).contains(&d.dropout) {
                return bad(format!("decoder.dropout {}: expected in [0, 1)", d.dropout));
            }
        }
        Ok(())
    }
}

/// The parameter count of the model [`crate::OadTR::new`] builds for `cfg`: every trainable
/// tensor. The official `VisionTransformer_v3` holds `cfg.num_queries() * cfg.embed_dim` more
/// (its `decoder_position_encoding`, created but never used in the forward pass); see
/// [`official_param_count`].
pub fn param_count(cfg: &OadConfig) -> i64 {
    let (d, f, c) = (cfg.embed_dim, cfg.feature_dim, cfg.num_classes);
    let linear = |i: i64, o: i64| i * o + o;
    let ln = 2 * d;
    let encoder_layer =
        ln + 3 * d * d + linear(d, d) + ln + linear(d, cfg.hidden_dim) + linear(cfg.hidden_dim, d);
    let mut n = linear(f, d) + d + (cfg.enc_steps + 1) * d + cfg.num_layers * encoder_layer + ln;
    match &cfg.decoder {
        None => n += linear(d, c),
        Some(dec) => {
            let layer = 8 * d * d + 8 * d + linear(d, dec.ff_dim) + linear(dec.ff_dim, d) + 3 * ln;
            n +=
                dec.num_layers * layer + ln + dec.num_queries * d + linear(d, c) + linear(2 * d, c);
        }
    }
    n
}

/// The count `sum(p.numel() for p in model.parameters())` of the official
/// `VisionTransformer_v3` for `cfg` (logged by `main.py` as "number of params"): ours plus the
/// unused decoder position encoding.
pub fn official_param_count(cfg: &OadConfig) -> i64 {
    param_count(cfg) + cfg.num_queries() * cfg.embed_dim
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_bad_configs_are_named() {
        OadConfig::thumos_tsn().validate().unwrap();
        OadConfig::thumos_kinetics().validate().unwrap();
        OadConfig::small(6, 8, 32).validate().unwrap();
        OadConfig::thumos_tsn().encoder_only().validate().unwrap();
        let mut c = OadConfig::thumos_tsn();
        c.num_heads = 7;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("num_heads 7"));
        let mut c = OadConfig::thumos_tsn();
        c.ambiguous_class = Some(22);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ambiguous_class 22"));
        let mut c = OadConfig::small(6, 8, 32);
        c.enc_steps = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("enc_steps 0"));
    }

    #[test]
    fn scored_classes_drop_the_ambiguous_one() {
        let s = OadConfig::thumos_tsn().scored_classes();
        assert_eq!(s.len(), 21);
        assert_eq!(*s.last().unwrap(), 20);
        assert_eq!(OadConfig::small(6, 8, 32).scored_classes().len(), 8);
    }

    #[test]
    fn config_round_trips_through_json_and_rejects_unknown_fields() {
        let c = OadConfig::thumos_kinetics();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<OadConfig>(&s).unwrap(), c);
        let bad = s.replacen("\"enc_steps\"", "\"enc_step\"", 1);
        assert!(serde_json::from_str::<OadConfig>(&bad).is_err());
    }
}
