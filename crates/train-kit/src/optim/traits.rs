//! The [`Optimizer`] trait: what a training loop ([`crate::Trainer`]), gradient accumulation
//! and checkpoints need from an optimiser, so that AdamW (flat or per parameter), SGD and LARS
//! are interchangeable.

use crate::error::Result;
use crate::grad::try_clip_grad_norm;
use tch::Tensor;

/// An optimiser over named parameters with a settable base learning rate and a state that
/// checkpoints as named tensors.
pub trait Optimizer {
    /// One update from the parameters' current gradients. Parameters without a gradient are
    /// left untouched.
    fn step(&mut self) -> Result<()>;

    /// Clips the total 2-norm of the gradients to `max_norm` (coefficient
    /// `min(1, max_norm / (norm + 1e-6))`, as `torch.nn.utils.clip_grad_norm_`), steps, and
    /// returns the norm before clipping. The default scales the `.grad` tensors in place.
    fn step_with_clip(&mut self, max_norm: f64) -> Result<f64> {
        let params: Vec<Tensor> = self.params().into_iter().map(|(_, t)| t).collect();
        let norm = try_clip_grad_norm(&params, max_norm)?;
        self.step()?;
        Ok(norm)
    }

    /// Sets every parameter's gradient to undefined (torch's `set_to_none=True`).
    fn zero_grad(&mut self);

    /// Sets the base learning rate (a parameter group uses `lr * lr_scale`).
    fn set_lr(&mut self, lr: f64);

    /// The base learning rate.
    fn lr(&self) -> f64;

    /// Optimiser steps taken so far (restored with the state).
    fn step_count(&self) -> i64;

    /// The optimised variables (shallow clones) with their VarStore names.
    fn params(&self) -> Vec<(String, Tensor)>;

    /// The state to checkpoint: named tensors, views of the live state where possible (write
    /// them out, or `copy()` them to keep a snapshot).
    fn state_tensors(&self) -> Vec<(String, Tensor)>;

    /// Restores what [`Optimizer::state_tensors`] returned. Everything is checked (missing or
    /// unexpected names, shapes) before anything changes.
    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()>;
}
