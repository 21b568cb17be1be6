//! Gradient utilities: total-norm clipping like `torch.nn.utils.clip_grad_norm_` and
//! gradient accumulation over micro-batches (MAE's `accum_iter`).

use crate::error::{Result, TrainError};
use crate::optim::{AdamW, Lars, Optimizer, PerParamAdamW, Sgd};
use tch::{nn, Kind, Tensor};

/// Anything whose parameters' `.grad` can be clipped.
pub trait GradSource {
    /// The parameter tensors (shallow clones); their gradients are read through `.grad()`.
    fn grad_params(&self) -> Vec<Tensor>;
}

impl GradSource for nn::VarStore {
    fn grad_params(&self) -> Vec<Tensor> {
        self.trainable_variables()
    }
}

impl GradSource for [Tensor] {
    fn grad_params(&self) -> Vec<Tensor> {
        self.iter().map(Tensor::shallow_clone).collect()
    }
}

impl GradSource for Vec<Tensor> {
    fn grad_params(&self) -> Vec<Tensor> {
        self.as_slice().grad_params()
    }
}

impl GradSource for AdamW {
    fn grad_params(&self) -> Vec<Tensor> {
        self.params().into_iter().map(|(_, t)| t).collect()
    }
}

impl GradSource for PerParamAdamW {
    fn grad_params(&self) -> Vec<Tensor> {
        PerParamAdamW::params(self)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }
}

impl GradSource for Sgd {
    fn grad_params(&self) -> Vec<Tensor> {
        self.params().into_iter().map(|(_, t)| t).collect()
    }
}

impl GradSource for Lars {
    fn grad_params(&self) -> Vec<Tensor> {
        self.params().into_iter().map(|(_, t)| t).collect()
    }
}

/// Scales all gradients so that their total 2-norm is at most `max_norm` (coefficient
/// `min(1, max_norm / (norm + 1e-6))`, as torch) and returns the norm before clipping.
/// Parameters without a gradient are ignored; none at all gives 0.
///
/// Never panics: an invalid `max_norm` (negative, NaN, inf) or a libtorch failure returns
/// `NaN` with the gradients untouched, which the usual [`crate::check_finite`]-style checks
/// catch. Use [`try_clip_grad_norm`] to get the error instead. With [`AdamW`],
/// [`AdamW::step_with_clip`] does the same on the flat buffers in two kernels per bucket.
pub fn clip_grad_norm<P: GradSource + ?Sized>(params: &P, max_norm: f64) -> f64 {
    try_clip_grad_norm(params, max_norm).unwrap_or(f64::NAN)
}

/// [`clip_grad_norm`] returning errors.
pub fn try_clip_grad_norm<P: GradSource + ?Sized>(params: &P, max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm >= 0.0) {
        return Err(TrainError::InvalidConfig(format!(
            "max_norm {max_norm}: expected a finite value >= 0"
        )));
    }
    let _guard = tch::no_grad_guard();
    let grads: Vec<Tensor> = params
        .grad_params()
        .iter()
        .map(|p| p.grad())
        .filter(Tensor::defined)
        .collect();
    let Some(first) = grads.first() else {
        return Ok(0.0);
    };
    let device = first.device();
    let norms = grads
        .iter()
        .map(|g| Ok(g.f_norm()?.f_to_kind(Kind::Float)?.f_to_device(device)?))
        .collect::<Result<Vec<_>>>()?;
    let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    for mut g in grads {
        let _ = g.f_mul_scalar_(coef)?;
    }
    Ok(total)
}

/// Gradient accumulation: each micro-batch loss is divided by `k` before `backward`, and the
/// optimiser steps on every `k`-th micro-step, so `k` micro-batches of size `b` with mean
/// losses give the update of one batch of size `k*b`.
#[derive(Debug, Clone)]
pub struct GradAccumulator {
    k: usize,
    pending: usize,
}

impl GradAccumulator {
    /// `k >= 1` micro-steps per optimiser step.
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(TrainError::InvalidConfig(
                "GradAccumulator k = 0: expected k >= 1".into(),
            ));
        }
        Ok(GradAccumulator { k, pending: 0 })
    }

    /// Micro-steps per optimiser step.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Micro-steps accumulated since the last optimiser step.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Back-propagates `loss / k`; returns true when this was the `k`-th micro-step (the
    /// caller then steps and zeroes the gradients).
    pub fn backward(&mut self, loss: &Tensor) -> Result<bool> {
        (loss / self.k as f64).f_backward()?;
        self.pending += 1;
        if self.pending == self.k {
            self.pending = 0;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// [`GradAccumulator::backward`], then on the `k`-th micro-step `opt.step()` and
    /// `opt.zero_grad()`. Returns whether the optimiser stepped.
    pub fn backward_step<O: Optimizer + ?Sized>(
        &mut self,
        loss: &Tensor,
        opt: &mut O,
    ) -> Result<bool> {
        let due = self.backward(loss)?;
        if due {
            opt.step()?;
            opt.zero_grad();
        }
        Ok(due)
    }
}
