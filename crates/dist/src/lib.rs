//! Data-parallel communication on PyTorch's own distributed engine, c10d, bound from Rust: the
//! libtorch this workspace links already contains `TCPStore` and `ProcessGroupGloo` (in
//! `libtorch_cpu`); a small C++ shim (`src/shim.cpp`, compiled against the wheel's headers)
//! exposes them, and this crate gives a safe API on tch tensors.
//!
//! - [`Rendezvous`]: torchrun's environment (`MASTER_ADDR`, `MASTER_PORT`, `RANK`,
//!   `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`), as set by `torchrun --nproc-per-node N`
//!   and `cargo xtask launch --nproc N`;
//! - [`ProcessGroup`]: the TCPStore rendezvous (rank 0 serves it) and a Gloo group on it;
//!   [`ProcessGroup::all_reduce`] (sum, average), [`ProcessGroup::all_reduce_start`] (async, a
//!   [`Work`] to wait on), [`ProcessGroup::broadcast`], [`ProcessGroup::all_gather`],
//!   [`ProcessGroup::barrier`]; it implements [`train_kit::Collective`] for the Trainer;
//! - [`DistError`]: every C++ exception comes back as an error naming the operation, the rank,
//!   the variable or port, and the timeout; a lost peer or a missing rank fails within the
//!   timeout instead of hanging or aborting.
//!
//! Gloo runs on CPU tensors only (checked before any communication, as are contiguity and, for
//! the average, a floating-point dtype). [`Backend::Nccl`] (CUDA tensors, one GPU per rank:
//! `LOCAL_RANK`) is there with the `nccl` cargo feature when the build finds the CUDA headers
//! ([`nccl_available`] says why not otherwise); it has not been run on a GPU yet.
//!
//! ```no_run
//! use std::time::Duration;
//! use dist::{Backend, ProcessGroup, ReduceOp};
//! # fn main() -> dist::Result<()> {
//! // Under `cargo xtask launch --nproc 2 -- <binary>`; `None` when run plainly.
//! if let Some(pg) = ProcessGroup::from_env(Backend::Gloo, Duration::from_secs(60))? {
//!     let t = tch::Tensor::from_slice(&[pg.rank() as f32 + 1.0]);
//!     pg.all_reduce(&t, ReduceOp::Sum)?; // 3.0 on both ranks of 2
//! }
//! # Ok(())
//! # }
//! ```

mod collective;
pub mod error;
mod ffi;
pub mod group;
pub mod rendezvous;

pub use error::{DistError, Result};
pub use group::{nccl_available, Backend, ProcessGroup, ReduceOp, Work};
pub use rendezvous::Rendezvous;
