//! OadTR's two kinds of layer, named as the official state_dict:
//!
//! - the encoder layer of `transformer_models/Transformer.py` (`TransformerModel`): pre-norm,
//!   `x + Dropout(SelfAttention(LN(x)))` then `x + FeedForward(LN(x))`, stored as
//!   `encoder.net.{2i}.fn.{norm, fn.qkv, fn.proj}` and `encoder.net.{2i+1}.fn.{norm,
//!   fn.net.0, fn.net.3}` (the qkv projection has no bias, `Attention.py`);
//! - the decoder layer of `transformer_models/decoder.py` (`DecoderLayer`, Informer-style):
//!   post-norm, causal self-attention over the queries, cross-attention to the encoder, a
//!   feed-forward of two 1x1 convolutions with GELU, stored as `self_attention.{query,key,value,
//!   out}_projection`, `cross_attention.*`, `conv1`, `conv2`, `norm1..3`.
//!
//! Attention is the official `softmax(q k^T / sqrt(d)) v` with dropout on the attention map
//! (`attn_drop`, `FullAttention.dropout`); without dropout (inference) it runs through libtorch's
//! fused `scaled_dot_product_attention` (flash on CUDA).

use tch::nn::{self, Init};
use tch::Tensor;

/// PyTorch's default init of `nn.Linear` / `nn.Conv1d` (kaiming-uniform with a = sqrt(5):
/// weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as the official model is built.
fn torch_uniform(fan_in: i64) -> Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// `nn.Linear(i, o, bias)` with PyTorch's default init.
pub(crate) fn linear(vs: nn::Path, i: i64, o: i64, bias: bool) -> nn::Linear {
    nn::linear(
        vs,
        i,
        o,
        nn::LinearConfig {
            ws_init: torch_uniform(i),
            bs_init: bias.then_some(torch_uniform(i)),
            bias,
        },
    )
}

/// `nn.LayerNorm(dim, eps)`.
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

/// Splits `[B, N, H * hd]` into heads `[B, H, N, hd]`.
fn heads(x: &Tensor, h: i64) -> Tensor {
    let (b, n, c) = (x.size()[0], x.size()[1], x.size()[2]);
    x.view([b, n, h, c / h]).transpose(1, 2)
}

/// Joins heads `[B, H, N, hd]` back into `[B, N, H * hd]`.
fn merge(x: &Tensor) -> Tensor {
    let s = x.size();
    x.transpose(1, 2).reshape([s[0], s[2], s[1] * s[3]])
}

/// `softmax(q k^T / sqrt(d)) v` over heads `[B, H, N, d]`, causal when asked (query `i` sees
/// keys `0..=i`), with dropout `p` on the attention map in training. Without dropout it is
/// libtorch's fused `scaled_dot_product_attention`; with dropout the map is written out as the
/// official code does (the fused CPU kernels do not drop, and their fallback is slower).
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, p: f64, train: bool, causal: bool) -> Tensor {
    if !(train && p > 0.0) {
        return Tensor::scaled_dot_product_attention(
            q,
            k,
            v,
            None::<Tensor>,
            0.0,
            causal,
            None,
            false,
        );
    }
    let d = q.size()[3] as f64;
    let mut scores = (q * d.powf(-0.5)).matmul(&k.transpose(-2, -1));
    if causal {
        let (l, s) = (q.size()[2], k.size()[2]);
        let mask = Tensor::ones([l, s], (tch::Kind::Bool, q.device())).triu(1);
        scores = scores.masked_fill(&mask, f64::NEG_INFINITY);
    }
    scores
        .softmax(-1, scores.kind())
        .dropout(p, train)
        .matmul(v)
}

/// One pre-norm encoder layer (`Residual(PreNormDrop(SelfAttention))`,
/// `Residual(PreNorm(FeedForward))`).
#[derive(Debug)]
pub(crate) struct EncoderLayer {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
    dropout: f64,
    attn_dropout: f64,
}

impl EncoderLayer {
    /// `vs` is `encoder.net`; the layer is number `i`.
    pub(crate) fn new(vs: &nn::Path, i: i64, cfg: &crate::OadConfig) -> Self {
        let d = cfg.embed_dim;
        let attn = vs / (2 * i) / "fn";
        let ffn = vs / (2 * i + 1) / "fn";
        EncoderLayer {
            norm1: layer_norm(&attn / "norm", d, cfg.ln_eps),
            qkv: linear(&attn / "fn" / "qkv", d, 3 * d, false),
            proj: linear(&attn / "fn" / "proj", d, d, true),
            norm2: layer_norm(&ffn / "norm", d, cfg.ln_eps),
            fc1: linear(&ffn / "fn" / "net" / 0, d, cfg.hidden_dim, true),
            fc2: linear(&ffn / "fn" / "net" / 3, cfg.hidden_dim, d, true),
            heads: cfg.num_heads,
            dropout: cfg.dropout,
            attn_dropout: cfg.attn_dropout,
        }
    }

    /// `x`: `[B, N, D]`.
    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (b, n, c) = (x.size()[0], x.size()[1], x.size()[2]);
        let qkv = x
            .apply(&self.norm1)
            .apply(&self.qkv)
            .view([b, n, 3, self.heads, c / self.heads])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let a = attend(&q, &k, &v, self.attn_dropout, train, false);
        // SelfAttention's proj_drop (attn_dropout_rate), then PreNormDrop's dropout.
        let a = merge(&a)
            .apply(&self.proj)
            .dropout(self.attn_dropout, train)
            .dropout(self.dropout, train);
        let x = x + a;
        let f = x
            .apply(&self.norm2)
            .apply(&self.fc1)
            .gelu("none")
            .dropout(self.dropout, train)
            .apply(&self.fc2)
            .dropout(self.dropout, train);
        x + f
    }
}

/// Informer's `AttentionLayer(FullAttention)`: separate q/k/v/out projections.
#[derive(Debug)]
struct AttentionLayer {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    heads: i64,
    causal: bool,
}

impl AttentionLayer {
    fn new(vs: nn::Path, d: i64, heads: i64, causal: bool) -> Self {
        AttentionLayer {
            q: linear(&vs / "query_projection", d, d, true),
            k: linear(&vs / "key_projection", d, d, true),
            v: linear(&vs / "value_projection", d, d, true),
            out: linear(&vs / "out_projection", d, d, true),
            heads,
            causal,
        }
    }

    fn forward_t(&self, x: &Tensor, memory: &Tensor, dropout: f64, train: bool) -> Tensor {
        let q = heads(&x.apply(&self.q), self.heads);
        let k = heads(&memory.apply(&self.k), self.heads);
        let v = heads(&memory.apply(&self.v), self.heads);
        // TriangularCausalMask: query i sees keys 0..=i (top-left aligned).
        let a = attend(&q, &k, &v, dropout, train, self.causal);
        merge(&a).apply(&self.out)
    }
}

/// `Linear` stored as a `Conv1d(kernel_size=1)` (`[out, in, 1]` weight), as the decoder's
/// feed-forward is in the official code.
#[derive(Debug)]
struct Conv1x1 {
    ws: Tensor,
    bs: Tensor,
}

impl Conv1x1 {
    fn new(vs: nn::Path, i: i64, o: i64) -> Self {
        Conv1x1 {
            ws: vs.var("weight", &[o, i, 1], torch_uniform(i)),
            bs: vs.var("bias", &[o], torch_uniform(i)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.ws.squeeze_dim(-1), Some(&self.bs))
    }
}

/// One post-norm decoder layer (`DecoderLayer` of `decoder.py`).
#[derive(Debug)]
pub(crate) struct DecoderLayer {
    self_attention: AttentionLayer,
    cross_attention: AttentionLayer,
    conv1: Conv1x1,
    conv2: Conv1x1,
    norm1: nn::LayerNorm,
    norm2: nn::LayerNorm,
    norm3: nn::LayerNorm,
    dropout: f64,
}

impl DecoderLayer {
    pub(crate) fn new(vs: nn::Path, d: i64, dec: &crate::DecoderConfig, eps: f64) -> Self {
        DecoderLayer {
            self_attention: AttentionLayer::new(&vs / "self_attention", d, dec.num_heads, true),
            cross_attention: AttentionLayer::new(&vs / "cross_attention", d, dec.num_heads, false),
            conv1: Conv1x1::new(&vs / "conv1", d, dec.ff_dim),
            conv2: Conv1x1::new(&vs / "conv2", dec.ff_dim, d),
            norm1: layer_norm(&vs / "norm1", d, eps),
            norm2: layer_norm(&vs / "norm2", d, eps),
            norm3: layer_norm(&vs / "norm3", d, eps),
            dropout: dec.dropout,
        }
    }

    /// `x`: the queries `[B, Q, D]`; `memory`: the encoder output `[B, N, D]`.
    pub(crate) fn forward_t(&self, x: &Tensor, memory: &Tensor, train: bool) -> Tensor {
        let p = self.dropout;
        let a = self
            .self_attention
            .forward_t(x, x, p, train)
            .dropout(p, train);
        let x = (x + a).apply(&self.norm1);
        let a = self
            .cross_attention
            .forward_t(&x, memory, p, train)
            .dropout(p, train);
        let x = (x + a).apply(&self.norm2);
        let y = self.conv1.forward(&x).gelu("none").dropout(p, train);
        let y = self.conv2.forward(&y).dropout(p, train);
        (x + y).apply(&self.norm3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_written_out_attention_equals_the_fused_one() {
        let r = |s: [i64; 4]| Tensor::randn(s, (Kind::Float, Device::Cpu));
        let (q, k, v) = (r([2, 3, 5, 4]), r([2, 3, 5, 4]), r([2, 3, 5, 4]));
        for causal in [false, true] {
            let fused = attend(&q, &k, &v, 0.0, false, causal);
            // A vanishing dropout takes the written-out path without dropping anything.
            let explicit = attend(&q, &k, &v, 1e-12, true, causal);
            assert!(
                fused.allclose(&explicit, 1e-5, 1e-6, false),
                "causal {causal}"
            );
        }
    }
}
