//! Token merging (ToMe, Bolya et al. 2022, arXiv 2210.09461; facebookresearch/ToMe `merge.py`):
//! between the attention and the MLP of each block, the `r` most similar (cosine of the keys,
//! averaged over heads) pairs across the alternating sets A = even and B = odd tokens are merged
//! by a size-weighted average; with proportional attention each key's logit gets `+ log(size)`.
//!
//! One deliberate difference from the reference: prefix tokens (class, registers) are set aside
//! before matching instead of being masked out of the score matrix, so they stay in front (which
//! the pooling needs) whatever their number. For a single class token the two differ only in
//! which patches form A and B.

use tch::{Kind, Tensor};

/// Inference option: merge `r` tokens per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToMe {
    /// Tokens merged per block (the paper's r).
    pub r: i64,
    /// Size-weighted ("proportional") attention, Eq. 1 of the paper. On by default.
    pub prop_attn: bool,
}

impl ToMe {
    /// Merging `r` tokens per block with proportional attention.
    pub fn new(r: i64) -> Self {
        Self { r, prop_attn: true }
    }

    /// Tokens left after each of `depth` blocks starting from `tokens` (prefix included): each
    /// block merges `min(r, (patches) / 2)`.
    pub fn schedule(&self, tokens: i64, prefix: i64, depth: i64) -> Vec<i64> {
        let mut t = tokens;
        (0..depth)
            .map(|_| {
                t -= self.r.min((t - prefix) / 2).max(0);
                t
            })
            .collect()
    }
}

/// ToMe's running state through the blocks of one forward.
pub(crate) struct TomeState {
    pub tome: ToMe,
    /// `[B, T, 1]`: how many patches each token stands for.
    pub size: Tensor,
    pub prefix: i64,
}

/// Bipartite soft matching + size-weighted merge of the non-prefix tokens of `x` `[B, T, C]`.
/// `size` `[B, T, 1]` counts the patches each token stands for; `metric` `[B, T, c]` is the
/// similarity feature. Returns the merged tokens and sizes, `[B, T - r', ...]`.
pub(crate) fn merge_tokens(
    x: &Tensor,
    size: &Tensor,
    metric: &Tensor,
    r: i64,
    prefix: i64,
) -> (Tensor, Tensor) {
    let t = x.size()[1];
    let r = r.min((t - prefix) / 2);
    if r <= 0 {
        return (x.shallow_clone(), size.shallow_clone());
    }
    let split = |v: &Tensor| (v.narrow(1, 0, prefix), v.narrow(1, prefix, t - prefix));
    let (x_pre, x_tok) = split(x);
    let (s_pre, s_tok) = split(size);
    let (_, m_tok) = split(metric);
    let m = tch::no_grad(|| {
        let m = &m_tok / m_tok.norm_scalaropt_dim(2, [-1], true);
        Matching::new(&m, r)
    });
    // merge_wavg: average weighted by size, sizes summed.
    let merged = m.merge(&(&x_tok * &s_tok));
    let s_new = m.merge(&s_tok);
    let x_new = merged / &s_new;
    (
        Tensor::cat(&[x_pre, x_new.to_kind(x.kind())], 1),
        Tensor::cat(&[s_pre, s_new], 1),
    )
}

/// The matching of one block: which A tokens stay (`unm_idx`), which merge (`src_idx`) and into
/// which B token (`dst_idx`); indices are `[B, k, 1]`.
struct Matching {
    unm_idx: Tensor,
    src_idx: Tensor,
    dst_idx: Tensor,
    r: i64,
}

impl Matching {
    fn new(metric: &Tensor, r: i64) -> Self {
        let t = metric.size()[1];
        let a = metric.slice(1, 0, t, 2);
        let b = metric.slice(1, 1, t, 2);
        let scores = a.matmul(&b.transpose(-1, -2));
        let (node_max, node_idx) = scores.max_dim(-1, false);
        let edge_idx = node_max.argsort(-1, true).unsqueeze(-1);
        let ta = edge_idx.size()[1];
        let unm_idx = edge_idx.narrow(1, r, ta - r);
        let src_idx = edge_idx.narrow(1, 0, r);
        let dst_idx = node_idx.unsqueeze(-1).gather(1, &src_idx, false);
        Self {
            unm_idx,
            src_idx,
            dst_idx,
            r,
        }
    }

    /// Sums each merged A token into its B token (`scatter_add`, differentiable).
    fn merge(&self, x: &Tensor) -> Tensor {
        let t = x.size()[1];
        let (n, c) = (x.size()[0], x.size()[2]);
        let src = x.slice(1, 0, t, 2);
        let dst = x.slice(1, 1, t, 2);
        let t1 = src.size()[1];
        let unm = src.gather(1, &self.unm_idx.expand([n, t1 - self.r, c], false), false);
        let src = src.gather(1, &self.src_idx.expand([n, self.r, c], false), false);
        let dst = dst.scatter_add(1, &self.dst_idx.expand([n, self.r, c], false), &src);
        Tensor::cat(&[unm, dst], 1)
    }
}

/// Sizes `[B, T, 1]` of unmerged tokens: all ones.
pub(crate) fn initial_size(x: &Tensor) -> Tensor {
    let s = x.size();
    Tensor::ones([s[0], s[1], 1], (Kind::Float, x.device())).to_kind(x.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn schedule_counts_tokens() {
        // 197 tokens, r = 8, 12 blocks: 197 - 96 = 101 (ToMe paper, ViT-B r=8).
        let s = ToMe::new(8).schedule(197, 1, 12);
        assert_eq!(s.last(), Some(&101));
        // r larger than half the patches merges only half.
        assert_eq!(ToMe::new(100).schedule(17, 1, 2), vec![9, 5]);
    }

    #[test]
    fn merging_identical_tokens_preserves_the_mean_and_sizes() {
        tch::manual_seed(0);
        // After the prefix token come 4 identical pairs (1,2), (3,4), (5,6), (7,8).
        let base = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
        let pre = Tensor::randn([1, 6], (Kind::Float, Device::Cpu));
        let rows: Vec<Tensor> = (0..4).flat_map(|i| [base.get(i), base.get(i)]).collect();
        let x = Tensor::cat(&[pre, Tensor::stack(&rows, 0)], 0).unsqueeze(0);
        let size = initial_size(&x);
        let (y, s) = merge_tokens(&x, &size, &x, 4, 1);
        assert_eq!(y.size(), [1, 5, 6]);
        assert!(
            y.get(0).get(0).equal(&x.get(0).get(0)),
            "prefix token moved"
        );
        assert_eq!(s.sum(Kind::Float).double_value(&[]), 9.0);
        assert_eq!(s.squeeze().narrow(0, 1, 4).max().double_value(&[]), 2.0);
        // Merged rows are exactly the duplicated rows (average of equal vectors).
        let want = base.sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
        let got = y
            .get(0)
            .narrow(0, 1, 4)
            .sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
        assert!(got.allclose(&want, 1e-5, 1e-5, false));
        // Size-weighted mean over all tokens is invariant under merging.
        let mean =
            |x: &Tensor, s: &Tensor| (x * s).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        assert!(mean(&y, &s).allclose(&mean(&x, &size), 1e-5, 1e-5, false));
    }
}
