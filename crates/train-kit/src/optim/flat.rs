//! Flat-buffer AdamW: `torch.optim.AdamW` (Loshchilov & Hutter 2019) for tch without
//! `_fused_adamw_` / `_foreach_` ops.
//!
//! Every trainable parameter becomes a view into one flat 1-D buffer per
//! (group, dtype, device) "bucket" (see `bucket.rs`): the variable's data is copied into
//! `flat.narrow(0, off, n).view(shape)` and the variable is `set_data` to that view. Autograd
//! still fills one `.grad` per variable; a step gathers them with one `Tensor::cat` into a
//! flat gradient buffer and runs the update as 8 in-place kernels over the flat buffers
//! (see [`super::adamw_update`]), instead of ~10 per tensor. On a GPU that is one batch per
//! bucket; on the CPU the buffers are cut into cache-sized segments (`set_segment_elems`).
//!
//! Per-group lr scale and weight decay: one bucket per group (not per-element scale
//! tensors). Groups are few (two for MAE: decay / no decay), so the extra launches per group
//! are cheap, lr and wd stay scalars with exactly torch's per-group arithmetic, and no memory
//! is spent on two extra parameter-sized scale tensors plus their multiply kernels.
//!
//! Memory: parameters, m, v, plus two flat scratch buffers (gradient gather, denominator).
//!
//! Deviation from torch: the bias-correction step count is one counter for the optimiser,
//! torch keeps one per parameter. They differ only for a parameter that had no gradient on
//! some earlier step (torch's counter for it lags). A parameter without a gradient on a step
//! is otherwise treated like torch: its value and moments are left untouched.

use super::bucket::Bucket;
use super::{resolve_groups, AdamWConfig, GradHolder, Hyper, Named, Optimizer, ParamGroup};
use crate::error::{Result, TrainError};
use std::collections::HashMap;
use tch::{nn, Device, Kind, Tensor};

/// AdamW over flat per-(group, dtype, device) buffers. See the module docs.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    lr: f64,
    step: i64,
    buckets: Vec<Bucket>,
    holder: GradHolder,
}

impl AdamW {
    /// Moves the groups' trainable variables of `vs` into flat buffers and builds the
    /// optimiser. Variables that do not require grad are skipped; variables in no group are
    /// not optimised. Values, names and `vs.save`/`vs.load` are unchanged.
    pub fn new(vs: &nn::VarStore, groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Result<Self> {
        let resolved = {
            cfg.validate()?;
            resolve_groups(vs, &groups)?
        };
        let mut buckets = Vec::new();
        for (spec, params) in resolved {
            let mut parts: Vec<((Kind, Device), Named)> = Vec::new();
            for (name, t) in params {
                let key = (t.kind(), t.device());
                match parts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => v.push((name, t)),
                    None => parts.push((key, vec![(name, t)])),
                }
            }
            for ((kind, device), params) in parts {
                buckets.push(Bucket::build(spec, kind, device, params)?);
            }
        }
        let holder = GradHolder::new(
            buckets
                .iter()
                .flat_map(|b| b.entries.iter().map(|e| &e.var)),
        )?;
        Ok(AdamW {
            cfg,
            lr: cfg.lr,
            step: 0,
            buckets,
            holder,
        })
    }

    /// One group with all trainable variables and `cfg.weight_decay`.
    pub fn with_single_group(vs: &nn::VarStore, cfg: AdamWConfig) -> Result<Self> {
        Self::new(vs, ParamGroup::single(vs, cfg.weight_decay), cfg)
    }

    /// One AdamW step from the current gradients.
    pub fn step(&mut self) -> Result<()> {
        self.step_impl(None).map(|_| ())
    }

    /// Clips the total 2-norm of the gathered gradients to `max_norm` (like
    /// `torch.nn.utils.clip_grad_norm_`: scale `min(1, max_norm / (norm + 1e-6))`) and steps.
    /// Only the optimiser's gathered copy is scaled; the variables' `.grad` are left as they
    /// are. Returns the norm before clipping.
    pub fn step_with_clip(&mut self, max_norm: f64) -> Result<f64> {
        if !(max_norm.is_finite() && max_norm >= 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "max_norm {max_norm}: expected a finite value >= 0"
            )));
        }
        Ok(self.step_impl(Some(max_norm))?.unwrap_or(0.0))
    }

    /// Segment size of the update, in elements (see `bucket.rs`): default 2^18 on the CPU
    /// (cache-sized), whole buffers on GPUs; `0` means whole buffers.
    pub fn set_segment_elems(&mut self, elems: i64) {
        for b in self.buckets.iter_mut() {
            b.set_segment_elems(elems);
        }
    }

    /// Number of update segments over all buffers (kernel batches per step).
    pub fn num_segments(&self) -> usize {
        self.buckets.iter().map(|b| b.num_segments()).sum()
    }

    fn step_impl(&mut self, max_norm: Option<f64>) -> Result<Option<f64>> {
        let _guard = tch::no_grad_guard();
        for b in &self.buckets {
            b.check_linked()?;
        }
        self.step += 1;
        let hyper = |b: &Bucket| Hyper {
            lr: self.lr * b.spec.lr_scale,
            wd: b.spec.weight_decay,
            beta1: self.cfg.beta1,
            beta2: self.cfg.beta2,
            eps: self.cfg.eps,
            step: self.step,
        };
        let Some(max_norm) = max_norm else {
            // Gather and update segment by segment: the segment stays in cache.
            for bi in 0..self.buckets.len() {
                let h = hyper(&self.buckets[bi]);
                for s in self.buckets[bi].segment_ids() {
                    if let Some(g) = self.buckets[bi].gather(s, true)? {
                        self.buckets[bi].update(&g, h)?;
                    }
                }
            }
            return Ok(None);
        };
        // Clipping needs the total norm first: gather everything (copies, so the variables'
        // .grad stay unscaled), scale, then update.
        let mut gathered = Vec::new();
        for (bi, b) in self.buckets.iter().enumerate() {
            for s in b.segment_ids() {
                if let Some(g) = b.gather(s, false)? {
                    gathered.push((bi, g));
                }
            }
        }
        let Some((_, first)) = gathered.first() else {
            return Ok(Some(0.0));
        };
        let device = first.g.device();
        let norms = gathered
            .iter()
            .map(|(_, g)| Ok(g.g.f_norm()?.f_to_kind(Kind::Float)?.f_to_device(device)?))
            .collect::<Result<Vec<_>>>()?;
        // One host sync: the norm is returned anyway.
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
        let coef = (max_norm / (total + 1e-6)).min(1.0);
        for (bi, g) in &gathered {
            let _ = g.g.shallow_clone().f_mul_scalar_(coef)?;
            let h = hyper(&self.buckets[*bi]);
            self.buckets[*bi].update(g, h)?;
        }
        Ok(Some(total))
    }

    /// Sets every parameter's gradient to undefined (torch's `set_to_none=True`), one FFI call.
    pub fn zero_grad(&mut self) {
        if self.holder.zero_grad().is_err() {
            for e in self.buckets.iter_mut().flat_map(|b| b.entries.iter_mut()) {
                e.var.zero_grad();
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

    /// Number of steps taken (restored by [`AdamW::load_state_tensors`]).
    pub fn step_count(&self) -> i64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Number of flat buffers (one per group, dtype and device).
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The optimised variables (shallow clones), with their names, in buffer order.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        let entries = self.buckets.iter().flat_map(|b| b.entries.iter());
        entries
            .map(|e| (e.name.clone(), e.var.shallow_clone()))
            .collect()
    }

    /// Optimiser state for checkpointing: `step` (int64, shape `[1]`) and, per parameter,
    /// `exp_avg/<name>` and `exp_avg_sq/<name>` with the parameter's shape. The moment
    /// tensors are views of the live buffers: write them out, or `copy()` to keep a snapshot.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_owned(), Tensor::from_slice(&[self.step]))];
        for b in &self.buckets {
            for e in &b.entries {
                for (prefix, t) in [("exp_avg", &b.m), ("exp_avg_sq", &b.v)] {
                    let view = t.narrow(0, e.offset, e.numel).view(e.shape.as_slice());
                    out.push((format!("{prefix}/{}", e.name), view));
                }
            }
        }
        out
    }

    /// Restores the state written by [`AdamW::state_tensors`]. Everything is checked (missing
    /// or unexpected entries, shapes) before anything is changed.
    pub fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let ctx = || "optimiser state".to_owned();
        let map: HashMap<&str, &Tensor> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let step_t = map.get("step").ok_or_else(|| TrainError::MissingTensor {
            name: "step".into(),
            context: ctx(),
        })?;
        if step_t.numel() != 1 || step_t.kind() != Kind::Int64 {
            return Err(TrainError::InvalidConfig(format!(
                "optimiser state `step`: expected one int64, found {:?} of shape {:?}",
                step_t.kind(),
                step_t.size()
            )));
        }
        let step = step_t.f_reshape([-1])?.f_int64_value(&[0])?;
        let mut plan = Vec::new();
        for (bi, b) in self.buckets.iter().enumerate() {
            for (ei, e) in b.entries.iter().enumerate() {
                for (which, prefix) in ["exp_avg", "exp_avg_sq"].into_iter().enumerate() {
                    let name = format!("{prefix}/{}", e.name);
                    let t = map
                        .get(name.as_str())
                        .ok_or_else(|| TrainError::MissingTensor {
                            name: name.clone(),
                            context: ctx(),
                        })?;
                    if t.size() != e.shape {
                        return Err(TrainError::ShapeMismatch {
                            name,
                            expected: e.shape.clone(),
                            actual: t.size(),
                        });
                    }
                    plan.push((bi, ei, which, *t));
                }
            }
        }
        if plan.len() + 1 != state.len() {
            let expected: std::collections::HashSet<String> = self
                .buckets
                .iter()
                .flat_map(|b| b.entries.iter())
                .flat_map(|e| {
                    [
                        format!("exp_avg/{}", e.name),
                        format!("exp_avg_sq/{}", e.name),
                    ]
                })
                .collect();
            if let Some((name, _)) = state
                .iter()
                .find(|(n, _)| n != "step" && !expected.contains(n))
            {
                return Err(TrainError::UnexpectedTensor {
                    name: name.clone(),
                    context: ctx(),
                });
            }
        }
        let _guard = tch::no_grad_guard();
        for (bi, ei, which, t) in plan {
            let b = &self.buckets[bi];
            let buf = if which == 0 { &b.m } else { &b.v };
            Bucket::slice(buf, &b.entries[ei])?.f_copy_(t)?;
        }
        self.step = step;
        Ok(())
    }
}

impl Optimizer for AdamW {
    fn step(&mut self) -> Result<()> {
        AdamW::step(self)
    }

    /// Clips the optimiser's gathered copy of the gradients (see [`AdamW::step_with_clip`]).
    fn step_with_clip(&mut self, max_norm: f64) -> Result<f64> {
        AdamW::step_with_clip(self, max_norm)
    }

    fn zero_grad(&mut self) {
        AdamW::zero_grad(self)
    }

    fn set_lr(&mut self, lr: f64) {
        AdamW::set_lr(self, lr)
    }

    fn lr(&self) -> f64 {
        AdamW::lr(self)
    }

    fn step_count(&self) -> i64 {
        AdamW::step_count(self)
    }

    fn params(&self) -> Vec<(String, Tensor)> {
        AdamW::params(self)
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        AdamW::state_tensors(self)
    }

    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        AdamW::load_state_tensors(self, state)
    }
}
