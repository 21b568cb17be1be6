//! Per-parameter AdamW: the textbook loop over tensors, ~10 kernel launches each, with the
//! same update sequence as the flat [`super::AdamW`] (`torch.optim.AdamW`, single-tensor
//! path; Loshchilov & Hutter 2019). Kept as the bench baseline and as a test oracle; unlike
//! the flat version it keeps torch's per-parameter step counts.

use super::state::{check_state, read_count};
use super::{
    adamw_update, resolve_groups, AdamWConfig, GradHolder, GroupSpec, Hyper, Optimizer, ParamGroup,
};
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
    steps: i64,
}

impl PerParamAdamW {
    /// Same grouping rules as [`super::AdamW::new`]; the variables are not touched.
    pub fn new(vs: &nn::VarStore, groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Result<Self> {
        let mut params = Vec::new();
        for (spec, group) in {
            cfg.validate()?;
            resolve_groups(vs, &groups)?
        } {
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
            steps: 0,
        })
    }

    /// One step; parameters without a gradient are skipped (their step count included).
    pub fn step(&mut self) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.steps += 1;
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

    /// Sets the base learning rate (each group uses `lr * lr_scale`).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The base learning rate.
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

impl Optimizer for PerParamAdamW {
    fn step(&mut self) -> Result<()> {
        PerParamAdamW::step(self)
    }

    fn zero_grad(&mut self) {
        PerParamAdamW::zero_grad(self)
    }

    fn set_lr(&mut self, lr: f64) {
        PerParamAdamW::set_lr(self, lr)
    }

    fn lr(&self) -> f64 {
        PerParamAdamW::lr(self)
    }

    fn step_count(&self) -> i64 {
        self.steps
    }

    fn params(&self) -> Vec<(String, Tensor)> {
        PerParamAdamW::params(self)
    }

    /// `step`, then per parameter `steps/<name>` (torch's own per-parameter count),
    /// `exp_avg/<name>` and `exp_avg_sq/<name>`.
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_owned(), Tensor::from_slice(&[self.steps]))];
        for s in &self.params {
            out.push((format!("steps/{}", s.name), Tensor::from_slice(&[s.step])));
            out.push((format!("exp_avg/{}", s.name), s.m.shallow_clone()));
            out.push((format!("exp_avg_sq/{}", s.name), s.v.shallow_clone()));
        }
        out
    }

    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut expected = vec![("step".to_owned(), None)];
        for s in &self.params {
            expected.push((format!("steps/{}", s.name), None));
            expected.push((format!("exp_avg/{}", s.name), Some(s.var.size())));
            expected.push((format!("exp_avg_sq/{}", s.name), Some(s.var.size())));
        }
        let map = check_state(state, &expected)?;
        let steps = read_count(map["step"], "step")?;
        let mut counts = Vec::with_capacity(self.params.len());
        for s in &self.params {
            let key = format!("steps/{}", s.name);
            counts.push(read_count(map[key.as_str()], &key)?);
        }
        let _guard = tch::no_grad_guard();
        for (s, count) in self.params.iter_mut().zip(counts) {
            s.m.f_copy_(map[format!("exp_avg/{}", s.name).as_str()])?;
            s.v.f_copy_(map[format!("exp_avg_sq/{}", s.name).as_str()])?;
            s.step = count;
        }
        self.steps = steps;
        Ok(())
    }
}
