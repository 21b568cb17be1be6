//! LARS (You et al. 2017, "Large Batch Training of Convolutional Networks", arXiv 1708.03888)
//! as the official MAE linear probe uses it (`util/lars.py`, after the MoCo v3 code): for a
//! tensor with more than one dimension the update `u = g + wd p` is scaled by the trust ratio
//! `trust * |p| / |u|` (1 when either norm is 0); 1-D tensors (norms, biases) take the plain
//! gradient, without weight decay; then heavy-ball momentum without dampening:
//!
//! ```text
//! mu <- momentum * mu + u
//! p  <- p - lr * mu
//! ```

use super::state::{check_state, read_count};
use super::{factor, resolve_groups, GradHolder, GroupSpec, Optimizer, ParamGroup};
use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Hyper-parameters of LARS. Defaults are `util/lars.py`'s (lr 0, weight decay 0, momentum
/// 0.9, trust coefficient 0.001); the MAE probe sets the lr from a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LarsConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// Trust coefficient of the layer-wise ratio.
    pub trust_coefficient: f64,
    /// Default weight decay of [`Lars::with_single_group`] (applied to tensors with more
    /// than one dimension only).
    pub weight_decay: f64,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 0.0,
            momentum: 0.9,
            trust_coefficient: 0.001,
            weight_decay: 0.0,
        }
    }
}

#[derive(Debug)]
struct State {
    name: String,
    var: Tensor,
    spec: GroupSpec,
    mu: Tensor,
}

/// LARS over the variables of some [`ParamGroup`]s. See the module docs.
#[derive(Debug)]
pub struct Lars {
    cfg: LarsConfig,
    lr: f64,
    step: i64,
    params: Vec<State>,
    holder: GradHolder,
}

impl Lars {
    /// LARS over the groups' trainable variables of `vs`; momentum buffers start at zero.
    pub fn new(vs: &nn::VarStore, groups: Vec<ParamGroup>, cfg: LarsConfig) -> Result<Self> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !(finite_nonneg(cfg.lr)
            && finite_nonneg(cfg.momentum)
            && finite_nonneg(cfg.trust_coefficient)
            && finite_nonneg(cfg.weight_decay))
        {
            return Err(TrainError::InvalidConfig(format!(
                "LarsConfig {cfg:?}: expected finite lr, momentum, trust_coefficient, \
                 weight_decay >= 0"
            )));
        }
        let mut params = Vec::new();
        for (spec, group) in resolve_groups(vs, &groups)? {
            for (name, var) in group {
                let mu = var.f_zeros_like()?;
                params.push(State {
                    name,
                    var,
                    spec,
                    mu,
                });
            }
        }
        let holder = GradHolder::new(params.iter().map(|s| &s.var))?;
        Ok(Lars {
            cfg,
            lr: cfg.lr,
            step: 0,
            params,
            holder,
        })
    }

    /// One group with every trainable variable and `cfg.weight_decay`.
    pub fn with_single_group(vs: &nn::VarStore, cfg: LarsConfig) -> Result<Self> {
        Self::new(vs, ParamGroup::single(vs, cfg.weight_decay), cfg)
    }

    /// The configuration.
    pub fn config(&self) -> &LarsConfig {
        &self.cfg
    }
}

impl Optimizer for Lars {
    fn step(&mut self) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let trust = self.cfg.trust_coefficient;
        for s in self.params.iter_mut() {
            let g = s.var.grad();
            if !g.defined() {
                continue;
            }
            let p = &s.var;
            let dp = if p.dim() > 1 {
                let dp = g.f_addcmul(p, &factor(p, s.spec.weight_decay)?)?;
                let (pn, un) = (p.f_norm()?, dp.f_norm()?);
                let one = pn.f_ones_like()?;
                // where(|p| > 0, where(|u| > 0, trust |p| / |u|, 1), 1)
                let ratio = pn
                    .f_mul_scalar(trust)?
                    .f_div(&un)?
                    .f_where_self(&un.f_gt(0.0)?, &one)?;
                let q = ratio.f_where_self(&pn.f_gt(0.0)?, &one)?;
                dp.f_mul(&q)?
            } else {
                g
            };
            let _ = s.mu.f_mul_scalar_(self.cfg.momentum)?.f_add_(&dp)?;
            let lr = self.lr * s.spec.lr_scale;
            let _ = s.var.f_addcmul_(&s.mu, &factor(&s.var, -lr)?)?;
        }
        Ok(())
    }

    fn zero_grad(&mut self) {
        if self.holder.zero_grad().is_err() {
            for s in self.params.iter_mut() {
                s.var.zero_grad();
            }
        }
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn step_count(&self) -> i64 {
        self.step
    }

    fn params(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|s| (s.name.clone(), s.var.shallow_clone()))
            .collect()
    }

    /// `step`, then `mu/<name>` per parameter.
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_owned(), Tensor::from_slice(&[self.step]))];
        for s in &self.params {
            out.push((format!("mu/{}", s.name), s.mu.shallow_clone()));
        }
        out
    }

    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut expected = vec![("step".to_owned(), None)];
        for s in &self.params {
            expected.push((format!("mu/{}", s.name), Some(s.var.size())));
        }
        let map = check_state(state, &expected)?;
        let step = read_count(map["step"], "step")?;
        let _guard = tch::no_grad_guard();
        for s in self.params.iter_mut() {
            s.mu.f_copy_(map[format!("mu/{}", s.name).as_str()])?;
        }
        self.step = step;
        Ok(())
    }
}
