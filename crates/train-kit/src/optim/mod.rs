//! AdamW configuration, parameter groups and the update shared by the two implementations.
//!
//! AdamW is Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
//! Regularization", ICLR 2019), with the exact update of `torch.optim.AdamW` (non-amsgrad,
//! single-tensor path):
//!
//! ```text
//! p  <- p * (1 - lr * wd)
//! m  <- lerp(m, g, 1 - beta1)
//! v  <- lerp(v, g*g, 1 - beta2)          (torch: v*beta2 + (1-beta2)*g*g)
//! p  <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! `tch` exposes no `value=` argument on `addcmul_`/`addcdiv_`, so the `v` update is a lerp
//! towards `g*g` and the step multiplies `m` by `-step_size` before `addcdiv_`; the bias
//! correction of `v` is folded into the step size and eps (`lr*sqrt(bc2)/bc1 * m /
//! (sqrt(v) + eps*sqrt(bc2))`, one pass fewer). All of it differs from torch's kernels only
//! in rounding (the f64 parity test against torch is at ~1e-16).

mod bucket;
mod flat;
mod lars;
mod per_param;
mod sgd;
mod state;
mod traits;

pub use flat::AdamW;
pub use lars::{Lars, LarsConfig};
pub use per_param::PerParamAdamW;
pub use sgd::{Sgd, SgdConfig};
pub use traits::Optimizer;

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use tch::{nn, Tensor};

/// Hyper-parameters of AdamW. Defaults are torch's (`lr 1e-3, betas (0.9, 0.999), eps 1e-8,
/// weight_decay 0.01`). `weight_decay` is the default used by [`AdamW::with_single_group`];
/// a [`GroupSpec`] carries its own weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Decay rate of the first moment (`betas[0]`).
    pub beta1: f64,
    /// Decay rate of the second moment (`betas[1]`).
    pub beta2: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Decoupled weight decay (the default group's).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamWConfig {
    /// MAE pre-training (He et al. 2022): betas (0.9, 0.95), weight decay 0.05.
    /// `lr` keeps the default; MAE sets it from `blr * batch / 256` through a [`Schedule`].
    ///
    /// [`Schedule`]: crate::Schedule
    pub fn mae_pretrain() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            weight_decay: 0.05,
            ..Default::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps.is_finite()
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(TrainError::InvalidConfig(format!(
                "AdamWConfig {self:?}: expected lr >= 0, 0 <= beta1, beta2 < 1, eps > 0, \
                 weight_decay >= 0, all finite"
            )))
        }
    }
}

/// Per-group settings: absolute weight decay and a multiplier of the optimiser's lr.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Absolute (decoupled or coupled, per optimiser) weight decay of the group.
    pub weight_decay: f64,
    /// Multiplier of the optimiser's base lr (layer-wise lr decay).
    pub lr_scale: f64,
}

impl GroupSpec {
    /// A group spec from its weight decay and lr scale.
    pub fn new(weight_decay: f64, lr_scale: f64) -> Self {
        GroupSpec {
            weight_decay,
            lr_scale,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.weight_decay.is_finite()
            && self.weight_decay >= 0.0
            && self.lr_scale.is_finite()
            && self.lr_scale >= 0.0
        {
            Ok(())
        } else {
            Err(TrainError::InvalidConfig(format!(
                "GroupSpec {self:?}: expected finite weight_decay >= 0 and lr_scale >= 0"
            )))
        }
    }
}

/// A set of VarStore variables (by name) sharing a [`GroupSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    /// The group's settings.
    pub spec: GroupSpec,
    /// VarStore names of its variables.
    pub names: Vec<String>,
}

impl ParamGroup {
    /// A group of the named variables.
    pub fn new(spec: GroupSpec, names: Vec<String>) -> Self {
        ParamGroup { spec, names }
    }

    /// Groups the trainable variables of `vs` by the spec `rule` returns for each; names are
    /// visited in sorted order and groups come in order of first appearance, so the result
    /// is deterministic. Variables that do not require grad are left out.
    pub fn by_rule(
        vs: &nn::VarStore,
        rule: impl Fn(&str, &Tensor) -> GroupSpec,
    ) -> Vec<ParamGroup> {
        let mut groups: Vec<ParamGroup> = Vec::new();
        for (name, t) in sorted_trainable(vs) {
            let spec = rule(&name, &t);
            let same = |g: &&mut ParamGroup| {
                g.spec.weight_decay.to_bits() == spec.weight_decay.to_bits()
                    && g.spec.lr_scale.to_bits() == spec.lr_scale.to_bits()
            };
            match groups.iter_mut().find(same) {
                Some(g) => g.names.push(name),
                None => groups.push(ParamGroup::new(spec, vec![name])),
            }
        }
        groups
    }

    /// The MAE/timm rule (`param_groups_weight_decay`): no weight decay on tensors with at
    /// most one dimension (norms, biases), on names ending in `bias` and on names containing
    /// `token` (cls/mask tokens) or `pos_embed`; `weight_decay` on everything else.
    pub fn decay_no_decay(vs: &nn::VarStore, weight_decay: f64) -> Vec<ParamGroup> {
        Self::by_rule(vs, |name, t| {
            let no_decay = t.dim() <= 1
                || name.ends_with("bias")
                || name.contains("token")
                || name.contains("pos_embed");
            GroupSpec::new(if no_decay { 0.0 } else { weight_decay }, 1.0)
        })
    }

    /// One group with every trainable variable.
    pub fn single(vs: &nn::VarStore, weight_decay: f64) -> Vec<ParamGroup> {
        Self::by_rule(vs, |_, _| GroupSpec::new(weight_decay, 1.0))
    }
}

/// `(name, tensor)` pairs.
pub(crate) type Named = Vec<(String, Tensor)>;

/// Trainable variables of `vs` sorted by name.
pub(crate) fn sorted_trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Resolves groups against `vs`: validates specs, rejects unknown and duplicate names, drops
/// variables that do not require grad. Returns (spec, [(name, variable)]) per group.
pub(crate) fn resolve_groups(
    vs: &nn::VarStore,
    groups: &[ParamGroup],
) -> Result<Vec<(GroupSpec, Named)>> {
    let vars = vs.variables();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        g.spec.validate()?;
        let mut params = Vec::with_capacity(g.names.len());
        for name in &g.names {
            let t = vars
                .get(name)
                .ok_or_else(|| TrainError::UnknownParam { name: name.clone() })?;
            if !seen.insert(name.clone()) {
                return Err(TrainError::DuplicateParam { name: name.clone() });
            }
            if !t.requires_grad() {
                continue;
            }
            if !t.is_floating_point() {
                return Err(TrainError::InvalidConfig(format!(
                    "parameter `{name}` has kind {:?}: expected a floating-point kind",
                    t.kind()
                )));
            }
            params.push((name.clone(), t.shallow_clone()));
        }
        out.push((g.spec, params));
    }
    Ok(out)
}

/// Scalars of one AdamW update.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hyper {
    pub lr: f64,
    pub wd: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub step: i64,
}

/// `x` as a 0-dim tensor of `like`'s kind on its device (a fill there, no host copy): the
/// factor of `a.addcmul_(b, factor)`, which is torch's one-pass `a.add_(b, alpha=x)` (tch binds
/// no `alpha`): equal to it bit for bit (on a million random float32 and float64 values, where
/// a multiply then an add is not), with no temporary.
pub(crate) fn factor(like: &Tensor, x: f64) -> Result<Tensor> {
    Ok(Tensor::f_full(
        &[] as &[i64],
        x,
        (like.kind(), like.device()),
    )?)
}

/// One in-place AdamW update of `p`, `m`, `v` from `g` (all the same shape). `sq` and `tmp`
/// are scratch tensors of that shape; `tmp` may be `g` itself (g is dead by then), `sq` must
/// not alias anything else. 7 kernels (8 with weight decay), the same sequence for the flat
/// buffers and for the per-parameter reference.
pub(crate) fn adamw_update(
    p: &mut Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    g: &Tensor,
    sq: &mut Tensor,
    tmp: &Tensor,
    h: Hyper,
) -> Result<()> {
    // powf like Python's `beta ** step` in torch.optim.AdamW.
    let bc1 = 1.0 - h.beta1.powf(h.step as f64);
    let bc2_sqrt = (1.0 - h.beta2.powf(h.step as f64)).sqrt();
    // lr/bc1 * m / (sqrt(v)/bc2_sqrt + eps) == (lr*bc2_sqrt/bc1) * m / (sqrt(v) + eps*bc2_sqrt):
    // one pass (the division by bc2_sqrt) fewer than torch's sequence.
    let step_size = h.lr * bc2_sqrt / bc1;
    if h.wd != 0.0 {
        let _ = p.f_mul_scalar_(1.0 - h.lr * h.wd)?;
    }
    let _ = m.f_lerp_(g, 1.0 - h.beta1)?;
    let _ = g.f_mul_out(sq, g)?;
    let _ = v.f_lerp_(sq, 1.0 - h.beta2)?;
    let _ = v.f_sqrt_out(sq)?;
    let _ = sq.f_add_scalar_(h.eps * bc2_sqrt)?;
    let _ = m.f_mul_scalar_out(tmp, -step_size)?;
    let _ = p.f_addcdiv_(tmp, sq)?;
    Ok(())
}

/// Sets the gradients of its tensors to undefined in one FFI call: libtorch's C++
/// `Optimizer::zero_grad()` (set_to_none = true, torch's default). A zero-lr SGD that is
/// never stepped only holds the parameter list.
pub(crate) struct GradHolder(tch::COptimizer);

impl GradHolder {
    pub fn new<'a>(params: impl IntoIterator<Item = &'a Tensor>) -> Result<Self> {
        let mut opt = tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false)?;
        for p in params {
            opt.add_parameters(p, 0)?;
        }
        Ok(GradHolder(opt))
    }

    pub fn zero_grad(&self) -> Result<()> {
        Ok(self.0.zero_grad()?)
    }
}

impl std::fmt::Debug for GradHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GradHolder")
    }
}
