//! SGD with momentum and Nesterov momentum, as `torch.optim.SGD` (single-tensor path), the
//! optimiser of the detection recipes (YOLO v1: momentum 0.9, weight decay 5e-4; FCOS /
//! CenterNet / detectron2: momentum 0.9, weight decay 1e-4):
//!
//! ```text
//! g  <- g + wd * p                        (weight decay, coupled as in torch)
//! b  <- g                                 (first step)
//! b  <- momentum * b + (1 - dampening) * g (later steps)
//! g  <- g + momentum * b  (Nesterov)   or   g <- b
//! p  <- p - lr * g
//! ```
//!
//! Sutskever et al. 2013 for the Nesterov form. Per-group weight decay and lr scale come
//! from [`ParamGroup`]s; the momentum buffer of a parameter is created at its first step with
//! a gradient, as torch does.

use super::state::{check_state, read_count};
use super::{factor, resolve_groups, GradHolder, GroupSpec, Optimizer, ParamGroup};
use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Hyper-parameters of SGD. Defaults: lr 0.01, momentum 0.9, no dampening, no Nesterov,
/// weight decay 0 (torch's default momentum is 0; 0.9 is what every detection recipe uses).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum factor (0 = plain SGD).
    pub momentum: f64,
    /// Dampening of the momentum update.
    pub dampening: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0, as torch requires).
    pub nesterov: bool,
    /// Default weight decay of [`Sgd::with_single_group`].
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

impl SgdConfig {
    fn validate(&self) -> Result<()> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        let ok = finite_nonneg(self.lr)
            && finite_nonneg(self.momentum)
            && finite_nonneg(self.dampening)
            && finite_nonneg(self.weight_decay);
        if !ok {
            return Err(TrainError::InvalidConfig(format!(
                "SgdConfig {self:?}: expected finite lr, momentum, dampening, weight_decay >= 0"
            )));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "SgdConfig {self:?}: Nesterov momentum requires momentum > 0 and zero dampening"
            )));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct State {
    name: String,
    var: Tensor,
    spec: GroupSpec,
    buf: Option<Tensor>,
    steps: i64,
}

/// SGD over the variables of some [`ParamGroup`]s. See the module docs.
#[derive(Debug)]
pub struct Sgd {
    cfg: SgdConfig,
    lr: f64,
    step: i64,
    params: Vec<State>,
    holder: GradHolder,
}

impl Sgd {
    /// SGD over the groups' trainable variables of `vs`.
    pub fn new(vs: &nn::VarStore, groups: Vec<ParamGroup>, cfg: SgdConfig) -> Result<Self> {
        cfg.validate()?;
        let mut params = Vec::new();
        for (spec, group) in resolve_groups(vs, &groups)? {
            for (name, var) in group {
                params.push(State {
                    name,
                    var,
                    spec,
                    buf: None,
                    steps: 0,
                });
            }
        }
        let holder = GradHolder::new(params.iter().map(|s| &s.var))?;
        Ok(Sgd {
            cfg,
            lr: cfg.lr,
            step: 0,
            params,
            holder,
        })
    }

    /// One group with every trainable variable and `cfg.weight_decay`.
    pub fn with_single_group(vs: &nn::VarStore, cfg: SgdConfig) -> Result<Self> {
        Self::new(vs, ParamGroup::single(vs, cfg.weight_decay), cfg)
    }

    /// The configuration.
    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let c = self.cfg;
        for s in self.params.iter_mut() {
            let g = s.var.grad();
            if !g.defined() {
                continue;
            }
            s.steps += 1;
            let wd = s.spec.weight_decay;
            // torch's `grad.add(param, alpha=wd)` and `param.add_(d_p, alpha=-lr)` are one
            // pass each; tch binds no `alpha`, so both are `addcmul` with a 0-dim factor, equal
            // to them bit for bit and without the temporaries of a multiply then an add (for
            // Fast YOLO's 27 M parameters each is 108 MB).
            let mut d_p = if wd != 0.0 {
                g.f_addcmul(&s.var, &factor(&s.var, wd)?)?
            } else {
                g
            };
            if c.momentum != 0.0 {
                let buf = match s.buf.take() {
                    None => d_p.f_detach_copy()?,
                    Some(mut b) => {
                        let _ = b.f_mul_scalar_(c.momentum)?;
                        if c.dampening == 0.0 {
                            let _ = b.f_add_(&d_p)?;
                        } else {
                            let _ = b.f_addcmul_(&d_p, &factor(&d_p, 1.0 - c.dampening)?)?;
                        }
                        b
                    }
                };
                d_p = if c.nesterov {
                    d_p.f_addcmul(&buf, &factor(&buf, c.momentum)?)?
                } else {
                    buf.shallow_clone()
                };
                s.buf = Some(buf);
            }
            let lr = self.lr * s.spec.lr_scale;
            let _ = s.var.f_addcmul_(&d_p, &factor(&s.var, -lr)?)?;
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

    /// `step`, then per parameter `steps/<name>` and, once it exists, `momentum_buffer/<name>`.
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_owned(), Tensor::from_slice(&[self.step]))];
        for s in &self.params {
            out.push((format!("steps/{}", s.name), Tensor::from_slice(&[s.steps])));
            if let Some(b) = &s.buf {
                out.push((format!("momentum_buffer/{}", s.name), b.shallow_clone()));
            }
        }
        out
    }

    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        // Which parameters have a buffer follows from their step counts.
        let steps_of = |name: &str| -> Result<Option<i64>> {
            match state.iter().find(|(n, _)| n == name) {
                Some((n, t)) => Ok(Some(read_count(t, n)?)),
                None => Ok(None),
            }
        };
        let mut expected = vec![("step".to_owned(), None)];
        for s in &self.params {
            let key = format!("steps/{}", s.name);
            let has_buf = self.cfg.momentum != 0.0 && steps_of(&key)?.unwrap_or(0) > 0;
            expected.push((key, None));
            if has_buf {
                expected.push((format!("momentum_buffer/{}", s.name), Some(s.var.size())));
            }
        }
        let map = check_state(state, &expected)?;
        let step = read_count(map["step"], "step")?;
        let _guard = tch::no_grad_guard();
        for s in self.params.iter_mut() {
            let key = format!("steps/{}", s.name);
            s.steps = read_count(map[key.as_str()], &key)?;
            s.buf = match map.get(format!("momentum_buffer/{}", s.name).as_str()) {
                Some(t) => Some(
                    t.f_to_device(s.var.device())?
                        .f_to_kind(s.var.kind())?
                        .f_detach_copy()?,
                ),
                None => None,
            };
        }
        self.step = step;
        Ok(())
    }
}
