//! `cargo xtask launch --nproc N [--master-port P] -- <binary> <args>`: N local processes of a
//! binary with torchrun's variables (`MASTER_ADDR=127.0.0.1`, `MASTER_PORT`, `RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `OMP_NUM_THREADS` = cores / N unless set),
//! their output prefixed `[rank k] `; when one rank fails the others are stopped and its exit
//! code is xtask's (as `torchrun --nproc-per-node N` does). The work is `cvlab_util::launch`.

use anyhow::{Context, Result};
use std::ffi::OsString;

use cvlab_util::launch::{launch, World};

/// The arguments of `cargo xtask launch`.
#[derive(clap::Args, Debug)]
pub struct Opts {
    /// Processes to start on this machine.
    #[arg(long, value_name = "N")]
    pub nproc: usize,
    /// Port of rank 0's rendezvous store (default: a free one).
    #[arg(long, value_name = "P")]
    pub master_port: Option<u16>,
    /// The binary and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "BINARY ARGS")]
    pub command: Vec<OsString>,
}

/// Runs the ranks; returns the exit code to leave with.
pub fn cmd(opts: &Opts) -> Result<i32> {
    let world = World::local(opts.nproc, opts.master_port).context("--nproc / --master-port")?;
    let (program, args) = opts.command.split_first().context("no binary after `--`")?;
    eprintln!(
        "xtask: launch: {} ranks of {} (MASTER_ADDR={} MASTER_PORT={})",
        world.nproc,
        program.to_string_lossy(),
        world.master_addr,
        world.master_port
    );
    launch(&world, program, args)
        .with_context(|| format!("launching {}", program.to_string_lossy()))
}
