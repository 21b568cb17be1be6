//! OadTR (`VisionTransformer_v3` of `transformer_models/ViT.py`): features projected to the
//! token width, a learned task token appended last, a learned position encoding over the
//! `enc_steps + 1` tokens, the pre-norm encoder and its final LayerNorm, then the decoder's
//! learned queries attending (causally) to each other and to the encoder; the current frame is
//! classified from `[task token; mean of the decoder outputs]`, each query classifies one
//! future step.

use tch::nn::{self, Init, Module};
use tch::{Kind, Tensor};

use crate::config::OadConfig;
use crate::error::{shape_error, Result};
use crate::layers::{layer_norm, linear, DecoderLayer, EncoderLayer};

/// What a forward gives.
#[derive(Debug)]
pub struct OadOutput {
    /// Current-frame logits `[B, num_classes]` (`enc_score_p0`).
    pub current: Tensor,
    /// Anticipation logits `[B, num_queries, num_classes]` (`dec_scores`), query `j` for the
    /// frame `j + 1` steps after the window's last; `None` for the encoder-only model.
    pub future: Option<Tensor>,
}

#[derive(Debug)]
struct Decoder {
    layers: Vec<DecoderLayer>,
    norm: nn::LayerNorm,
    queries: Tensor,
    classifier: nn::Linear,
}

/// The OadTR model.
#[derive(Debug)]
pub struct OadTR {
    cfg: OadConfig,
    linear_encoding: nn::Linear,
    cls_token: Tensor,
    position_encoding: Tensor,
    encoder: Vec<EncoderLayer>,
    pre_head_ln: nn::LayerNorm,
    decoder: Option<Decoder>,
    mlp_head: nn::Linear,
}

impl OadTR {
    /// Builds the model's variables under `vs` with the official names and PyTorch's default
    /// init (Linear/Conv kaiming-uniform, `nn.Embedding` N(0, 1), zero task token and queries).
    pub fn new(vs: &nn::Path, cfg: &OadConfig) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.embed_dim;
        let decoder = cfg.decoder.as_ref().map(|dec| {
            let dv = vs / "decoder";
            Decoder {
                layers: (0..dec.num_layers)
                    .map(|l| DecoderLayer::new(&dv / "layers" / l, d, dec, cfg.ln_eps))
                    .collect(),
                norm: layer_norm(&dv / "norm", d, cfg.ln_eps),
                queries: vs.var(
                    "decoder_cls_token",
                    &[1, dec.num_queries, d],
                    Init::Const(0.0),
                ),
                classifier: linear(vs / "classifier", d, cfg.num_classes, true),
            }
        });
        let head_in = if decoder.is_some() { 2 * d } else { d };
        Ok(OadTR {
            linear_encoding: linear(vs / "linear_encoding", cfg.feature_dim, d, true),
            cls_token: vs.var("cls_token", &[1, 1, d], Init::Const(0.0)),
            position_encoding: (vs / "position_encoding" / "pe").var(
                "weight",
                &[cfg.enc_steps + 1, d],
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
            encoder: (0..cfg.num_layers)
                .map(|i| EncoderLayer::new(&(vs / "encoder" / "net"), i, cfg))
                .collect(),
            pre_head_ln: layer_norm(vs / "pre_head_ln", d, cfg.ln_eps),
            mlp_head: linear(vs / "mlp_head", head_in, cfg.num_classes, true),
            decoder,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OadConfig {
        &self.cfg
    }

    /// The number of trainable elements in `vs`.
    pub fn num_params(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(Tensor::numel)
            .sum::<usize>() as i64
    }

    /// The weights' kind and device, for checks and buffers.
    pub(crate) fn weight(&self) -> &Tensor {
        &self.linear_encoding.ws
    }

    /// Checks `x` is `[B, T, feature_dim]` floating, on the weights' device; `T` is returned.
    fn check_window(&self, x: &Tensor, what: &'static str, width: i64) -> Result<()> {
        let s = x.size();
        let ok = s.len() == 3
            && s[0] >= 1
            && s[1] == self.cfg.enc_steps
            && s[2] == width
            && x.is_floating_point()
            && x.device() == self.weight().device();
        if !ok {
            return Err(shape_error(
                what,
                format!(
                    "[B >= 1, {}, {width}] floating on {:?}",
                    self.cfg.enc_steps,
                    self.weight().device()
                ),
                x,
            ));
        }
        Ok(())
    }

    /// The linear projection of features `[..., feature_dim]` to tokens `[..., embed_dim]`
    /// (`linear_encoding`); what the streaming path keeps in its ring buffer.
    pub fn project(&self, features: &Tensor) -> Tensor {
        self.linear_encoding.forward(features)
    }

    /// The forward on a batch of windows `[B, enc_steps, feature_dim]`, oldest step first.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<OadOutput> {
        self.check_window(x, "OadTR::forward_t", self.cfg.feature_dim)?;
        Ok(self.forward_tokens(&self.project(x), train))
    }

    /// The forward from already projected windows `[B, enc_steps, embed_dim]`
    /// ([`OadTR::project`] of the features).
    pub fn forward_projected(&self, tokens: &Tensor, train: bool) -> Result<OadOutput> {
        self.check_window(tokens, "OadTR::forward_projected", self.cfg.embed_dim)?;
        Ok(self.forward_tokens(tokens, train))
    }

    fn forward_tokens(&self, tokens: &Tensor, train: bool) -> OadOutput {
        let b = tokens.size()[0];
        let cls = self
            .cls_token
            .expand([b, -1, -1], false)
            .to_kind(tokens.kind());
        // The task token goes last (`torch.cat((x, cls_tokens), dim=1)`).
        let mut x = (Tensor::cat(&[tokens, &cls], 1) + &self.position_encoding)
            .dropout(self.cfg.dropout, train);
        for layer in &self.encoder {
            x = layer.forward_t(&x, train);
        }
        let x = x.apply(&self.pre_head_ln);
        let task = x.select(1, -1);
        match &self.decoder {
            None => OadOutput {
                current: task.apply(&self.mlp_head),
                future: None,
            },
            Some(dec) => {
                let mut q = dec.queries.expand([b, -1, -1], false).to_kind(x.kind());
                for layer in &dec.layers {
                    q = layer.forward_t(&q, &x, train);
                }
                let q = q.apply(&dec.norm).dropout(self.cfg.dropout, train);
                let future = q.apply(&dec.classifier);
                let pooled = q.mean_dim(1, false, None::<Kind>);
                OadOutput {
                    current: Tensor::cat(&[&task, &pooled], 1).apply(&self.mlp_head),
                    future: Some(future),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn small() -> OadConfig {
        OadConfig::small(6, 5, 8)
    }

    #[test]
    fn shapes_counts_and_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = small();
        let m = OadTR::new(&vs.root(), &cfg).unwrap();
        let x = Tensor::randn([3, 8, 6], (Kind::Float, Device::Cpu));
        let out = m.forward_t(&x, false).unwrap();
        assert_eq!(out.current.size(), [3, 5]);
        assert_eq!(out.future.unwrap().size(), [3, 4, 5]);
        assert_eq!(OadTR::num_params(&vs), crate::param_count(&cfg));
        let names = vs.variables();
        for n in [
            "linear_encoding.weight",
            "cls_token",
            "position_encoding.pe.weight",
            "encoder.net.0.fn.fn.qkv.weight",
            "encoder.net.3.fn.fn.net.3.bias",
            "decoder.layers.1.cross_attention.out_projection.weight",
            "decoder.layers.0.conv1.weight",
            "decoder_cls_token",
            "classifier.bias",
            "mlp_head.weight",
        ] {
            assert!(names.contains_key(n), "{n} missing");
        }
        assert!(!names.contains_key("encoder.net.0.fn.fn.qkv.bias"));
        assert_eq!(names["decoder.layers.0.conv1.weight"].size(), [128, 64, 1]);
        assert_eq!(names["mlp_head.weight"].size(), [5, 128]);
    }

    #[test]
    fn encoder_only_has_no_future_and_a_narrow_head() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = small().encoder_only();
        let m = OadTR::new(&vs.root(), &cfg).unwrap();
        let out = m
            .forward_t(&Tensor::randn([2, 8, 6], (Kind::Float, Device::Cpu)), false)
            .unwrap();
        assert!(out.future.is_none());
        assert_eq!(vs.variables()["mlp_head.weight"].size(), [5, 64]);
        assert_eq!(OadTR::num_params(&vs), crate::param_count(&cfg));
    }

    #[test]
    fn wrong_windows_are_errors_naming_the_layout() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = OadTR::new(&vs.root(), &small()).unwrap();
        for bad in [
            Tensor::zeros([2, 7, 6], (Kind::Float, Device::Cpu)),
            Tensor::zeros([2, 8, 5], (Kind::Float, Device::Cpu)),
            Tensor::zeros([8, 6], (Kind::Float, Device::Cpu)),
            Tensor::zeros([2, 8, 6], (Kind::Int64, Device::Cpu)),
        ] {
            let e = m.forward_t(&bad, false).unwrap_err().to_string();
            assert!(e.contains("[B >= 1, 8, 6]"), "{e}");
        }
    }

    #[test]
    fn eval_is_deterministic_and_train_uses_dropout() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = OadTR::new(&vs.root(), &small()).unwrap();
        let x = Tensor::randn([2, 8, 6], (Kind::Float, Device::Cpu));
        let a = m.forward_t(&x, false).unwrap().current;
        let b = m.forward_t(&x, false).unwrap().current;
        assert!(a.equal(&b));
        let c = m.forward_t(&x, true).unwrap().current;
        assert!(!a.allclose(&c, 1e-6, 1e-6, false));
    }

    #[test]
    fn the_decoder_self_attention_is_causal() {
        // Query j must not depend on queries > j: perturbing the last query leaves the
        // anticipation of the earlier steps unchanged.
        let vs = nn::VarStore::new(Device::Cpu);
        let m = OadTR::new(&vs.root(), &small()).unwrap();
        let x = Tensor::randn([1, 8, 6], (Kind::Float, Device::Cpu));
        let before = m.forward_t(&x, false).unwrap().future.unwrap();
        tch::no_grad(|| {
            let q = vs.variables()["decoder_cls_token"].shallow_clone();
            let _ = q.narrow(1, 3, 1).fill_(5.0);
        });
        let after = m.forward_t(&x, false).unwrap().future.unwrap();
        assert!(before
            .narrow(1, 0, 3)
            .allclose(&after.narrow(1, 0, 3), 1e-6, 1e-6, false));
        assert!(!before
            .narrow(1, 3, 1)
            .allclose(&after.narrow(1, 3, 1), 1e-3, 1e-3, false));
    }
}
