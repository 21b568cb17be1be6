//! Per-parameter AdamW: the textbook loop over tensors, ~10 kernel launches each, with the
//! same update sequence as the flat [`super::AdamW`] (`torch.optim.AdamW`, single-tensor
//! path; Loshchilov & Hutter 2019). Kept as the bench baseline and as a test oracle; unlike
//! the flat version it keeps torch's per-parameter step counts.

use super::{adamw_update, resolve_groups, AdamWConfig, GradHolder, GroupSpec, Hyper, ParamGroup};
use crate::error::Result;
use tch::{nn, Tensor};

#[derive(Debug)]
struct State {
    name: String,
    var: Tensor,
    spec: GroupSpec,
    m: Tensor,
    v: Tensor,
    step: i64,
}

/// Reference AdamW, one tensor at a time.
#[derive(Debug)]
pub struct PerParamAdamW {
    cfg: AdamWConfig,
    lr: f64,
    params: Vec<State>,
    holder: GradHolder,
}

impl PerParamAdamW {
    /// Same grouping rules as [`super::AdamW::new`]; the variables are not touched.
    pub fn new(vs: &nn::VarStore, groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Result<Self> {
        let mut params = Vec::new();
        for (spec, group) in resolve_groups(vs, &groups, &cfg)? {
            for (name, var) in group {
                let m = var.f_zeros_like()?;
                let v = var.f_zeros_like()?;
                params.push(State {
                    name,
                    var,
                    spec,
                    m,
                    v,
                    step: 0,
                });
            }
        }
        let holder = GradHolder::new(params.iter().map(|s| &s.var))?;
        Ok(PerParamAdamW {
            cfg,
            lr: cfg.lr,
            params,
            holder,
        })
    }

    /// One step; parameters without a gradient are skipped (their step count included).
    pub fn step(&mut self) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for s in self.params.iter_mut() {
            let g = s.var.grad();
            if !g.defined() {
                continue;
            }
            s.step += 1;
            let h = Hyper {
                lr: self.lr * s.spec.lr_scale,
                wd: s.spec.weight_decay,
                beta1: self.cfg.beta1,
                beta2: self.cfg.beta2,
                eps: self.cfg.eps,
                step: s.step,
            };
            let mut sq = g.f_empty_like()?;
            let tmp = g.f_empty_like()?;
            let mut p = s.var.shallow_clone();
            adamw_update(&mut p, &mut s.m, &mut s.v, &g, &mut sq, &tmp, h)?;
        }
        Ok(())
    }

    /// Sets every parameter's gradient to undefined (torch's `set_to_none=True`).
    pub fn zero_grad(&mut self) {
        if self.holder.zero_grad().is_err() {
            for s in self.params.iter_mut() {
                s.var.zero_grad();
            }
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The optimised variables with their names.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|s| (s.name.clone(), s.var.shallow_clone()))
            .collect()
    }
}
