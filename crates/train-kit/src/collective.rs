//! What data-parallel training needs from a communication backend, as a trait: the
//! [`crate::Trainer`] broadcasts the parameters from rank 0, all-reduces the gradients and the
//! logged losses, and lets only rank 0 write, through any [`Collective`].
//!
//! The workspace's implementation is the `dist` crate (PyTorch's c10d engine: `TCPStore`
//! rendezvous, Gloo for CPU tensors, NCCL for CUDA ones). The trait lives here so that train-kit
//! links no C++ shim and the model crates change not at all. [`ThreadGroup`] runs ranks as
//! threads of one process, without a backend.

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

/// Which ranks of the default group write a run's files (checkpoints, `metrics.jsonl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writers {
    /// Rank 0 only: the ranks share the run folder (one node, or a shared file system).
    #[default]
    RankZero,
    /// Every rank, each in a folder of its own (the caller gives each rank a different run
    /// folder, e.g. a scratch one for ranks above 0): code after the loop that reads the run's
    /// files works on every rank. Resuming still reads rank 0's folder only.
    EveryRank,
}

static DEFAULT_GROUP: std::sync::OnceLock<(std::sync::Arc<dyn Collective>, Writers)> =
    std::sync::OnceLock::new();

/// Makes `group` the process's default group, the one every [`crate::Trainer`] without its own
/// ([`crate::Trainer::with_collective`]) trains data-parallel over, as `torch.distributed`'s
/// default group, with `writers` saying which ranks write the run's files. Set once, by a
/// binary's `main` when it was launched with `WORLD_SIZE`; a second call is refused.
pub fn set_default_group(group: std::sync::Arc<dyn Collective>, writers: Writers) -> Result<()> {
    DEFAULT_GROUP.set((group, writers)).map_err(|_| {
        TrainError::Distributed(
            "the default process group is already set: expected one call per process".into(),
        )
    })
}

/// The default group, when one was set.
pub fn default_group() -> Option<&'static dyn Collective> {
    DEFAULT_GROUP.get().map(|(g, _)| g.as_ref())
}

/// Which ranks of the default group write ([`Writers::RankZero`] when none is set).
pub fn default_writers() -> Writers {
    DEFAULT_GROUP.get().map_or(Writers::RankZero, |(_, w)| *w)
}

/// `world` ranks as threads of one process (shared memory, `std::sync::Barrier`): data-parallel
/// training without a backend, for tests and for trying a recipe's data-parallel path. Sums run
/// in rank order on every rank, so every rank gets the same bits, as a ring all-reduce gives.
/// There is no timeout: a rank that stops calling blocks the others.
#[derive(Debug, Clone)]
pub struct ThreadGroup {
    rank: usize,
    shared: std::sync::Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    world: usize,
    barrier: std::sync::Barrier,
    slots: std::sync::Mutex<Vec<Option<Tensor>>>,
}

impl ThreadGroup {
    /// The `world` handles, rank 0 first: move handle `r` into thread `r`.
    pub fn new(world: usize) -> Result<Vec<ThreadGroup>> {
        if world == 0 {
            return Err(TrainError::InvalidConfig(
                "ThreadGroup of 0 ranks: expected a world size >= 1".into(),
            ));
        }
        let shared = std::sync::Arc::new(Shared {
            world,
            barrier: std::sync::Barrier::new(world),
            slots: std::sync::Mutex::new((0..world).map(|_| None).collect()),
        });
        Ok((0..world)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
            })
            .collect())
    }

    fn slots(&self) -> Result<std::sync::MutexGuard<'_, Vec<Option<Tensor>>>> {
        self.shared
            .slots
            .lock()
            .map_err(|_| TrainError::Distributed("a rank thread panicked".into()))
    }

    /// The slots summed in rank order.
    fn sum_slots(&self) -> Result<Tensor> {
        let slots = self.slots()?;
        let mut sum: Option<Tensor> = None;
        for (r, s) in slots.iter().enumerate() {
            let p = s.as_ref().ok_or_else(|| {
                TrainError::Distributed(format!("rank {r} left no tensor in the all-reduce"))
            })?;
            sum = Some(match sum {
                None => p.f_detach_copy()?,
                Some(acc) => {
                    if p.size() != acc.size() || p.kind() != acc.kind() {
                        return Err(TrainError::Distributed(format!(
                            "all-reduce: rank {r} has {:?} {:?}, rank 0 {:?} {:?}",
                            p.size(),
                            p.kind(),
                            acc.size(),
                            acc.kind()
                        )));
                    }
                    acc.f_add(p)?
                }
            });
        }
        sum.ok_or_else(|| TrainError::Distributed("an empty group".into()))
    }

    fn copy_from(&self, root: usize, t: &Tensor) -> Result<()> {
        let src = self.slots()?[root]
            .as_ref()
            .map(Tensor::shallow_clone)
            .ok_or_else(|| TrainError::Distributed("broadcast: the root left nothing".into()))?;
        if src.size() != t.size() {
            return Err(TrainError::Distributed(format!(
                "broadcast: rank {} expects {:?}, the root sent {:?}",
                self.rank,
                t.size(),
                src.size()
            )));
        }
        t.shallow_clone().f_copy_(&src)?;
        Ok(())
    }

    fn put(&self, t: &Tensor) -> Result<()> {
        self.slots()?[self.rank] = Some(t.shallow_clone());
        Ok(())
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world
    }

    fn all_reduce_sum_start(&self, t: &Tensor) -> Result<Pending> {
        let _guard = tch::no_grad_guard();
        self.put(t)?;
        self.shared.barrier.wait();
        // Every rank reaches the second barrier, error or not, so that none is left waiting.
        let sum = self.sum_slots();
        self.shared.barrier.wait();
        let sum = sum?;
        t.shallow_clone().f_copy_(&sum)?;
        Ok(Pending::done())
    }

    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        if root >= self.shared.world {
            return Err(TrainError::Distributed(format!(
                "broadcast from rank {root}: expected a rank below the world size {}",
                self.shared.world
            )));
        }
        let _guard = tch::no_grad_guard();
        if self.rank == root {
            self.put(t)?;
        }
        self.shared.barrier.wait();
        let copied = if self.rank != root {
            self.copy_from(root, t)
        } else {
            Ok(())
        };
        self.shared.barrier.wait();
        copied
    }

    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}
