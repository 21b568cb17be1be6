//! The Rust half of the side-by-side all-reduce timing (`cargo xtask bench` runs it beside
//! `benches/python/allreduce_bench.py`, which does the same with `torch.distributed`).
//!
//! `allreduce_bench --size-mb 16 --iters 10 --warmup 2 --nproc 2 --threads T`: run plainly it
//! starts `--nproc` ranks of itself on this machine (torchrun's variables, loopback) and prints
//! rank 0's JSON line; each rank joins a Gloo process group of the dist crate (PyTorch's c10d)
//! and times `--iters` sum all-reduces of one float32 tensor of `--size-mb` MB (1 MB = 2^20
//! bytes), each after a refill and a barrier outside the timer. The bus bandwidth is NCCL-tests'
//! `2 (n - 1) / n * bytes / time` at the median time.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use cvlab_util::launch::World;
use dist::{Backend, ProcessGroup, ReduceOp, Rendezvous};
use tch::{Device, Kind, Tensor};

/// One side-by-side all-reduce timing.
#[derive(Parser, Debug, Clone)]
#[command(
    about = "Gloo all-reduce timing through the dist crate, the Rust half of \
                   benches/python/allreduce_bench.py"
)]
struct Cli {
    /// Tensor size in MB (2^20 bytes) of float32.
    #[arg(long, default_value_t = 16.0)]
    size_mb: f64,
    /// Timed all-reduces.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed all-reduces first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Ranks to start when run plainly.
    #[arg(long, default_value_t = 2)]
    nproc: usize,
    /// CPU threads in all, shared by the ranks (default: libtorch's choice).
    #[arg(long)]
    threads: Option<usize>,
    /// The process group's timeout, seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match Rendezvous::from_env()? {
        Some(rv) => rank(&cli, &rv),
        None => launch(&cli),
    }
}

/// Starts the ranks (re-running this binary with the same arguments) and prints rank 0's last
/// stdout line.
fn launch(cli: &Cli) -> Result<()> {
    let world = World::local(cli.nproc, None)?;
    let exe = std::env::current_exe().context("finding this binary")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let children = (0..cli.nproc)
        .map(|r| {
            let mut cmd = world.command(r, exe.as_os_str(), &args);
            cmd.stdout(if r == 0 {
                Stdio::piped()
            } else {
                Stdio::null()
            });
            cmd.spawn().with_context(|| format!("starting rank {r}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut line = None;
    for (r, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("rank {r} failed ({})", out.status);
        }
        if r == 0 {
            line = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .map(str::to_owned);
        }
    }
    println!("{}", line.context("rank 0 printed nothing")?);
    Ok(())
}

fn rank(cli: &Cli, rv: &Rendezvous) -> Result<()> {
    if let Some(t) = cli.threads {
        tch::set_num_threads(i32::try_from((t / rv.world_size).max(1))?);
    }
    let pg = ProcessGroup::new(rv, Backend::Gloo, Duration::from_secs(cli.timeout_s))?;
    let bytes = (cli.size_mb * (1u64 << 20) as f64).round() as i64;
    let numel = bytes / 4;
    let mut t = Tensor::ones([numel], (Kind::Float, Device::Cpu));
    let mut times = Vec::with_capacity(cli.iters);
    for i in 0..cli.warmup + cli.iters {
        let _ = t.fill_(1.0);
        pg.barrier()?;
        let t0 = Instant::now();
        pg.all_reduce(&t, ReduceOp::Sum)?;
        let dt = t0.elapsed().as_secs_f64();
        if i >= cli.warmup {
            times.push(dt);
        }
    }
    let want = rv.world_size as f64;
    if t.min().double_value(&[]) != want || t.max().double_value(&[]) != want {
        bail!("the all-reduced tensor is not {want} everywhere");
    }
    let median = benches::median(&times);
    let n = rv.world_size as f64;
    let busbw = 2.0 * (n - 1.0) / n * (numel * 4) as f64 / median;
    if rv.rank == 0 {
        let line = serde_json::json!({
            "impl": "dist (c10d Gloo via the Rust shim)", "backend": "gloo",
            "world_size": rv.world_size, "size_mb": cli.size_mb, "bytes": numel * 4,
            "iters": cli.iters, "threads": tch::get_num_threads(),
            "median_s": median, "times_s": times, "busbw_gb_s": busbw / 1e9,
        });
        cvlab_util::pipe::outln(&line.to_string())?;
    }
    pg.barrier()?;
    Ok(())
}
