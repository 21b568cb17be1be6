//! What data-parallel training needs from a communication backend, as a trait: the
//! [`crate::Trainer`] broadcasts the parameters from rank 0, all-reduces the gradients and the
//! logged losses, and lets only rank 0 write, through any [`Collective`].
//!
//! The workspace's implementation is the `dist` crate (PyTorch's c10d engine: `TCPStore`
//! rendezvous, Gloo for CPU tensors, NCCL for CUDA ones). The trait lives here so that train-kit
//! links no C++ shim and the model crates change not at all. [`Solo`] is the one-process
//! collective (rank 0 of 1, every operation a no-op), for code that takes one either way.

use crate::error::{Result, TrainError};
use tch::Tensor;

/// An operation started on the backend and not yet waited for (Gloo and NCCL run collectives
/// on their own threads / streams, so the caller can pack the next bucket meanwhile).
#[must_use = "a started collective must be waited for before its tensor is read"]
pub struct Pending(Box<dyn FnOnce() -> Result<()> + Send>);

impl Pending {
    /// Wraps the wait of a started operation.
    pub fn new(wait: impl FnOnce() -> Result<()> + Send + 'static) -> Self {
        Pending(Box::new(wait))
    }

    /// An operation that is already complete.
    pub fn done() -> Self {
        Pending::new(|| Ok(()))
    }

    /// Blocks until the operation is complete (or failed, or timed out).
    pub fn wait(self) -> Result<()> {
        (self.0)()
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

/// A process group: `world_size` processes, this one `rank`, and the collectives a data-parallel
/// loop uses. Every rank must call the same operations in the same order with tensors of the
/// same shapes and dtypes, as with `torch.distributed`.
pub trait Collective: std::fmt::Debug + Send + Sync {
    /// This process, `0..world_size`.
    fn rank(&self) -> usize;

    /// Processes in the group.
    fn world_size(&self) -> usize;

    /// Starts summing `t` over the ranks, in place (contiguous tensor).
    fn all_reduce_sum_start(&self, t: &Tensor) -> Result<Pending>;

    /// Sums `t` over the ranks in place and waits.
    fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.all_reduce_sum_start(t)?.wait()
    }

    /// Copies rank `root`'s `t` into every rank's `t`, in place, and waits.
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()>;

    /// Waits until every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Whether this is rank 0, the one that writes checkpoints, metrics, plots and reports.
    fn is_main(&self) -> bool {
        self.rank() == 0
    }
}

/// One process alone: rank 0 of 1. Every collective is a no-op (the sum over one rank is the
/// tensor itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_reduce_sum_start(&self, _t: &Tensor) -> Result<Pending> {
        Ok(Pending::done())
    }

    fn broadcast(&self, _t: &Tensor, root: usize) -> Result<()> {
        if root != 0 {
            return Err(TrainError::Distributed(format!(
                "broadcast from rank {root}: expected a rank below the world size 1"
            )));
        }
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}
