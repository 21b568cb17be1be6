//! [`DistError`]: what went wrong, naming the operation, the variable or the peer, and the timeout.

use std::time::Duration;

/// Errors of rendezvous, process-group creation and collectives.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A torchrun variable is missing or has a bad value.
    #[error("{var}: expected {expected}, found {found}")]
    Env {
        /// The variable (`RANK`, `WORLD_SIZE`, ...).
        var: &'static str,
        /// What it should hold.
        expected: String,
        /// What it held (`unset` when missing).
        found: String,
    },
    /// The TCPStore rendezvous failed (port in use, master unreachable, ranks missing).
    #[error(
        "rendezvous at MASTER_ADDR={addr} MASTER_PORT={port} as rank {rank} of WORLD_SIZE={world_size} \
         (timeout {timeout:?}) failed: {message}"
    )]
    Rendezvous {
        /// `MASTER_ADDR`.
        addr: String,
        /// `MASTER_PORT`.
        port: u16,
        /// This rank.
        rank: usize,
        /// Ranks expected.
        world_size: usize,
        /// How long it waited.
        timeout: Duration,
        /// c10d's message.
        message: String,
    },
    /// Creating the process group (connecting every pair of ranks) failed.
    #[error(
        "creating the {backend} process group as rank {rank} of {world_size} (timeout {timeout:?}) \
         failed: {message}"
    )]
    Group {
        /// `Gloo` or `NCCL`.
        backend: &'static str,
        /// This rank.
        rank: usize,
        /// Ranks in the group.
        world_size: usize,
        /// The group's timeout.
        timeout: Duration,
        /// c10d's message.
        message: String,
    },
    /// A collective failed or timed out (a peer died, a peer never called it).
    #[error("{op} on rank {rank} of {world_size} (timeout {timeout:?}) failed: {message}")]
    Op {
        /// The collective (`all_reduce`, `broadcast`, ...).
        op: &'static str,
        /// This rank.
        rank: usize,
        /// Ranks in the group.
        world_size: usize,
        /// The group's timeout.
        timeout: Duration,
        /// The backend's message (it names the peer when a connection was lost).
        message: String,
    },
    /// A tensor the backend cannot take, caught before any communication.
    #[error("{op}: expected {expected}, got {got}")]
    Tensor {
        /// The collective.
        op: &'static str,
        /// What it takes.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// A backend this build does not have.
    #[error("backend {backend}: not built in ({why})")]
    Unsupported {
        /// The backend asked for.
        backend: &'static str,
        /// Why, and what to do.
        why: &'static str,
    },
}

/// `Result` with [`DistError`].
pub type Result<T> = std::result::Result<T, DistError>;
