//! The transformer block of ViT (pre-norm, Dosovitskiy et al. 2020, Eq. 2-3) with timm's names:
//! `norm1`, `attn.qkv`, `attn.proj`, `ls1.gamma`, `norm2`, `mlp.fc1`, `mlp.fc2`, `ls2.gamma`.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use crate::config::ViTConfig;
use crate::error::{Result, ViTError};
use crate::tome::{merge_tokens, TomeState};

/// timm's `init_weights_vit_timm`: Linear weights N(0, 0.02) truncated at +-2 (absolute, so in
/// effect untruncated at this std), biases zero.
pub(crate) fn linear(vs: nn::Path, i: i64, o: i64, bias: bool) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
        bs_init: bias.then_some(Init::Const(0.0)),
        bias,
    };
    nn::linear(vs, i, o, cfg)
}

pub(crate) fn layer_norm(vs: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        vs,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// Whether an input of kind `input` can meet weights of kind `weights`: the same kind, or a
/// half-precision side (bf16 / f16 autocast casts per op).
pub(crate) fn kinds_agree(input: Kind, weights: Kind) -> bool {
    let half = |k: Kind| matches!(k, Kind::Half | Kind::BFloat16);
    input == weights || half(input) || half(weights)
}

/// Checks a token sequence at a public entry point: `[B, N, width]` with N >= 1, a float kind
/// that agrees with the weights' (`like`, see [`kinds_agree`]), on the weights' device. `what`
/// names the entry point in the error.
pub(crate) fn check_tokens(x: &Tensor, width: i64, like: &Tensor, what: &str) -> Result<()> {
    let size = x.size();
    let (kind, device) = (like.kind(), like.device());
    let bad = |why: String| ViTError::Input {
        expected: format!(
            "{what}: tokens [B, N >= 1, {width}] of kind {kind:?} (or an autocast half kind) \
             on {device:?}{why}"
        ),
        got: size.clone(),
    };
    if size.len() != 3 || size[1] < 1 || size[2] != width {
        return Err(bad(String::new()));
    }
    if !x.is_floating_point() || !kinds_agree(x.kind(), kind) {
        return Err(bad(format!(" (got {:?})", x.kind())));
    }
    if x.device() != device {
        return Err(bad(format!(" (got {:?})", x.device())));
    }
    Ok(())
}

/// Which attention kernel a forward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttnImpl {
    /// `scaled_dot_product_attention`: flash / memory-efficient kernels on CUDA, the fused CPU
    /// kernel otherwise. Attention maps are not materialised.
    #[default]
    Fused,
    /// `softmax(q k^T * scale) v` written out; the only path that can return the maps.
    Explicit,
}

/// Per-call options of an attention layer.
#[derive(Default)]
pub(crate) struct AttnCall<'a> {
    pub imp: AttnImpl,
    pub keep_map: bool,
    /// ToMe's proportional attention: `log(size)` is added to the logits of each key.
    pub size: Option<&'a Tensor>,
    /// Return ToMe's similarity metric (the keys averaged over heads).
    pub want_metric: bool,
}

pub(crate) struct AttnOut {
    pub x: Tensor,
    pub map: Option<Tensor>,
    pub metric: Option<Tensor>,
}

/// Multi-head self-attention (MSA, Eq. 2) with timm's `qkv` and `proj` names.
#[derive(Debug)]
pub(crate) struct Attention {
    qkv: nn::Linear,
    proj: nn::Linear,
    num_heads: i64,
    head_dim: i64,
    attn_drop: f64,
    proj_drop: f64,
}

impl Attention {
    pub(crate) fn new(vs: nn::Path, cfg: &ViTConfig) -> Self {
        let d = cfg.embed_dim;
        Self {
            qkv: linear(&vs / "qkv", d, 3 * d, cfg.qkv_bias),
            proj: linear(&vs / "proj", d, d, true),
            num_heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            attn_drop: cfg.attn_drop_rate,
            proj_drop: cfg.proj_drop_rate,
        }
    }

    /// `x` is `[B, N, C]`, checked by the caller ([`Block::forward_t`] or the model).
    pub(crate) fn forward(&self, x: &Tensor, train: bool, call: &AttnCall) -> Result<AttnOut> {
        let (b, n, c) = x.size3()?;
        let qkv = x
            .apply(&self.qkv)
            .reshape([b, n, 3, self.num_heads, self.head_dim])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        // [B, 1, 1, N]: broadcast over heads and queries.
        let bias = call.size.map(|s| s.log().view([b, 1, 1, n]));
        let metric = call.want_metric.then(|| k.mean_dim(1, false, None));
        let drop = if train { self.attn_drop } else { 0.0 };
        let scale = (self.head_dim as f64).powf(-0.5);
        let (out, map) = if call.imp == AttnImpl::Explicit || call.keep_map {
            let mut logits = (&q * scale).matmul(&k.transpose(-2, -1));
            if let Some(bias) = &bias {
                logits += bias;
            }
            let attn = logits.softmax(-1, logits.kind());
            let out = attn.dropout(drop, train).matmul(&v);
            (out, call.keep_map.then_some(attn))
        } else {
            let out =
                Tensor::scaled_dot_product_attention(&q, &k, &v, bias, drop, false, None, false);
            (out, None)
        };
        let x = out
            .transpose(1, 2)
            .reshape([b, n, c])
            .apply(&self.proj)
            .dropout(self.proj_drop, train);
        Ok(AttnOut { x, map, metric })
    }
}

/// The block's MLP: two linear layers with a GELU between (Eq. 3).
#[derive(Debug)]
pub(crate) struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
    drop: f64,
}

impl Mlp {
    pub(crate) fn new(vs: nn::Path, dim: i64, hidden: i64, drop: f64) -> Self {
        Self {
            fc1: linear(&vs / "fc1", dim, hidden, true),
            fc2: linear(&vs / "fc2", hidden, dim, true),
            drop,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.fc1)
            .gelu("none")
            .dropout(self.drop, train)
            .apply(&self.fc2)
            .dropout(self.drop, train)
    }
}

/// Stochastic depth (Huang et al. 2016) per sample: the residual branch is zeroed with
/// probability `rate` and rescaled by `1 / (1 - rate)` otherwise (timm `drop_path`).
pub(crate) fn drop_path(x: Tensor, rate: f64, train: bool) -> Tensor {
    if !train || rate == 0.0 {
        return x;
    }
    let keep = 1.0 - rate;
    let mut shape = vec![1i64; x.dim()];
    shape[0] = x.size()[0];
    let mask = Tensor::empty(shape, (x.kind(), x.device())).bernoulli_float_(keep);
    x * mask / keep
}

/// One pre-norm transformer block (Eq. 2-3): `x + MSA(LN(x))`, then `x + MLP(LN(x))`, with
/// optional layer scale and drop-path on both residual branches.
#[derive(Debug)]
pub struct Block {
    norm1: nn::LayerNorm,
    pub(crate) attn: Attention,
    ls1: Option<Tensor>,
    norm2: nn::LayerNorm,
    mlp: Mlp,
    ls2: Option<Tensor>,
    drop_path: f64,
    width: i64,
}

/// What a block returns besides its output.
pub(crate) struct BlockOut {
    pub x: Tensor,
    pub map: Option<Tensor>,
}

impl Block {
    /// Block `index` of a model with config `cfg` (width, heads, MLP ratio, qkv bias, eps,
    /// dropouts, and the drop-path rate of that index). MAE's decoder builds its blocks this way.
    pub fn new(vs: nn::Path, cfg: &ViTConfig, index: i64) -> Self {
        let d = cfg.embed_dim;
        let ls = |name: &str| {
            cfg.init_values
                .map(|v| (&vs / name).var("gamma", &[d], Init::Const(v)))
        };
        Self {
            norm1: layer_norm(&vs / "norm1", d, cfg.norm_eps),
            attn: Attention::new(&vs / "attn", cfg),
            ls1: ls("ls1"),
            norm2: layer_norm(&vs / "norm2", d, cfg.norm_eps),
            mlp: Mlp::new(&vs / "mlp", d, cfg.mlp_hidden(), cfg.proj_drop_rate),
            ls2: ls("ls2"),
            drop_path: cfg.drop_path_at(index),
            width: d,
        }
    }

    fn scale(x: Tensor, gamma: &Option<Tensor>) -> Tensor {
        match gamma {
            Some(g) => x * g,
            None => x,
        }
    }

    /// The token width D this block was built for.
    pub fn width(&self) -> i64 {
        self.width
    }

    /// `x + attn(norm1(x))`, then `x + mlp(norm2(x))`, through the fused attention. `x` is
    /// `[B, N, D]` tokens (D = the block's width, N >= 1) of a float kind on the weights'
    /// device; anything else is a [`ViTError::Input`] naming what arrived.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        check_tokens(x, self.width, &self.attn.qkv.ws, "Block::forward_t")?;
        Ok(self.forward(x, train, AttnImpl::Fused, false, None)?.x)
    }

    /// One block. With `tome`, `tome.tome.r` token pairs are merged between the attention and
    /// the MLP (Bolya et al. 2022, Fig. 1) and `tome.size` is updated.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        train: bool,
        imp: AttnImpl,
        keep_map: bool,
        tome: Option<&mut TomeState>,
    ) -> Result<BlockOut> {
        let call = AttnCall {
            imp,
            keep_map,
            size: tome.as_ref().filter(|t| t.tome.prop_attn).map(|t| &t.size),
            want_metric: tome.as_ref().is_some_and(|t| t.tome.r > 0),
        };
        let a = self.attn.forward(&x.apply(&self.norm1), train, &call)?;
        let mut x = x + drop_path(Self::scale(a.x, &self.ls1), self.drop_path, train);
        if let (Some(t), Some(metric)) = (tome, a.metric) {
            let (nx, ns) = merge_tokens(&x, &t.size, &metric, t.tome.r, t.prefix);
            x = nx;
            t.size = ns;
        }
        let m = self.mlp.forward(&x.apply(&self.norm2), train);
        let x = &x + drop_path(Self::scale(m, &self.ls2), self.drop_path, train);
        Ok(BlockOut { x, map: a.map })
    }
}
