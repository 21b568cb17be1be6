//! Two ranks over loopback with Gloo: each driver test re-executes this test binary as 2
//! processes (`cvlab_util::launch::World`) running one worker test, and checks both succeeded.
//! The fault tests that need one process only (port in use, a rank that never arrives, no
//! master) run in the test process itself. The Trainer over two ranks is checked against one
//! process with the ranks' batches together.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener};
use std::process::Output;
use std::time::{Duration, Instant};

use cvlab_util::launch::World;
use dist::{Backend, DistError, ProcessGroup, ReduceOp, Rendezvous};
use tch::{Kind, Tensor};
use train_kit::Collective;

const WORKER: &str = "DIST_TEST_WORKER";
const TIMEOUT: Duration = Duration::from_secs(6);

/// Runs `worker` as every rank of a `nproc` world; `env(rank)` adds or overrides variables.
fn run_ranks(
    worker: &str,
    nproc: usize,
    env: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<Output> {
    let world = World::local(nproc, None).unwrap();
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--exact",
        worker,
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    let children: Vec<_> = (0..nproc)
        .map(|rank| {
            let mut cmd = world.command(rank, exe.as_os_str(), &args);
            cmd.env(WORKER, "1").env("OMP_NUM_THREADS", "1");
            cmd.envs(env(rank));
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_all_ok(outputs: &[Output]) {
    for (rank, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "rank {rank} failed:\n{}", text(o));
        assert!(
            text(o).contains("1 passed"),
            "rank {rank} ran no worker:\n{}",
            text(o)
        );
    }
}

/// The group of a worker process, or `None` when the test harness runs the worker by itself.
fn worker_group(timeout: Duration) -> Option<ProcessGroup> {
    std::env::var_os(WORKER)?;
    Some(
        ProcessGroup::from_env(Backend::Gloo, timeout)
            .unwrap()
            .unwrap(),
    )
}

#[test]
#[ignore = "a rank of collectives_over_two_ranks"]
fn worker_collectives() {
    let Some(pg) = worker_group(TIMEOUT) else {
        return;
    };
    let (rank, n) = (pg.rank() as i64, pg.world_size() as i64);
    assert_eq!(n, 2);

    // Sum and average, float32 and int64: rank r holds r + 1 + [0, 1, 2].
    let base = Tensor::from_slice(&[0.0f32, 1.0, 2.0]);
    let t = &base + (rank + 1) as f64;
    pg.all_reduce(&t, ReduceOp::Sum).unwrap();
    assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![3.0, 5.0, 7.0]);
    let t = &base + (rank + 1) as f64;
    pg.all_reduce(&t, ReduceOp::Avg).unwrap();
    assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![1.5, 2.5, 3.5]);
    let ti = Tensor::from_slice(&[10i64 * (rank + 1), -(1i64 << 40)]);
    pg.all_reduce(&ti, ReduceOp::Sum).unwrap();
    assert_eq!(Vec::<i64>::try_from(&ti).unwrap(), vec![30, -(1i64 << 41)]);
    let e = pg.all_reduce(&ti, ReduceOp::Avg).unwrap_err();
    assert!(e.to_string().contains("floating-point"), "{e}");

    // Large: 8 MB of float32 (2 Mi values), a 2-D tensor.
    let big = Tensor::arange(2 * 1024 * 1024, (Kind::Float, tch::Device::Cpu)).view([1024, 2048])
        * (rank + 1) as f64;
    pg.all_reduce(&big, ReduceOp::Sum).unwrap();
    let want =
        Tensor::arange(2 * 1024 * 1024, (Kind::Float, tch::Device::Cpu)).view([1024, 2048]) * 3.0;
    assert!(big.equal(&want));

    // A bucket of a flat buffer, as the Trainer sends: a contiguous view with an offset; the
    // rest of the buffer stays as it was. float64 too.
    let flat = Tensor::full([10], (rank + 1) as f64, (Kind::Double, tch::Device::Cpu));
    pg.all_reduce(&flat.narrow(0, 3, 4), ReduceOp::Sum).unwrap();
    let r = (rank + 1) as f64;
    let want = [r, r, r, 3.0, 3.0, 3.0, 3.0, r, r, r];
    assert_eq!(Vec::<f64>::try_from(&flat).unwrap(), want);

    // Async: started, other work meanwhile, then waited.
    let a = Tensor::full([1000], (rank + 1) as f64, (Kind::Float, tch::Device::Cpu));
    let work = pg.all_reduce_start(&a, ReduceOp::Avg).unwrap();
    let other = Tensor::ones([10], (Kind::Float, tch::Device::Cpu)).sum(Kind::Float);
    work.wait().unwrap();
    assert!(a.equal(&Tensor::full([1000], 1.5, (Kind::Float, tch::Device::Cpu))));
    assert_eq!(other.double_value(&[]), 10.0);

    // Broadcast from rank 1, float32 and int64.
    let b = Tensor::from_slice(&[rank as f32 * 7.0, 1.0]);
    pg.broadcast(&b, 1).unwrap();
    assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![7.0, 1.0]);
    let bi = Tensor::from_slice(&[rank, 100 + rank]);
    pg.broadcast(&bi, 0).unwrap();
    assert_eq!(Vec::<i64>::try_from(&bi).unwrap(), vec![0, 100]);
    assert!(pg
        .broadcast(&bi, 2)
        .unwrap_err()
        .to_string()
        .contains("root 2"));

    // All-gather, as a list and as one buffer.
    let g = Tensor::from_slice(&[rank, rank * 10]).view([1, 2]);
    let parts = pg.all_gather(&g).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].size(), vec![1, 2]);
    assert_eq!(
        Vec::<i64>::try_from(parts[1].flatten(0, -1)).unwrap(),
        vec![1, 10]
    );
    let flat = pg.all_gather_flat(&g).unwrap();
    assert_eq!(flat.size(), vec![2, 1, 2]);
    assert_eq!(
        Vec::<i64>::try_from(flat.flatten(0, -1)).unwrap(),
        vec![0, 0, 1, 10]
    );

    // Checks before any communication: a non-contiguous tensor.
    let nc = Tensor::zeros([4, 4], (Kind::Float, tch::Device::Cpu)).transpose(0, 1);
    let e = pg.all_reduce(&nc, ReduceOp::Sum).unwrap_err();
    assert!(
        matches!(e, DistError::Tensor { .. }) && e.to_string().contains("contiguous"),
        "{e}"
    );

    // The train-kit trait, as the Trainer calls it.
    let c: &dyn Collective = &pg;
    assert_eq!(
        (c.rank(), c.world_size(), c.is_main()),
        (rank as usize, 2, rank == 0)
    );
    let s = Tensor::from_slice(&[1.0f32 + rank as f32]);
    c.all_reduce_sum_start(&s).unwrap().wait().unwrap();
    assert_eq!(s.double_value(&[0]), 3.0);
    c.broadcast(&s, 0).unwrap();
    assert_eq!(pg.sum_scalar(0.25 * (rank + 1) as f64).unwrap(), 0.75);
    c.barrier().unwrap();
    pg.barrier().unwrap();
}

#[test]
fn collectives_over_two_ranks() {
    assert_all_ok(&run_ranks("worker_collectives", 2, |_| vec![]));
}

#[test]
#[ignore = "a rank of a_rank_that_exits_early_fails_the_other"]
fn worker_early_exit() {
    let Some(pg) = worker_group(TIMEOUT) else {
        return;
    };
    pg.barrier().unwrap();
    if pg.rank() == 1 {
        // Leaves without the all-reduce rank 0 waits in.
        std::process::exit(0);
    }
    let start = Instant::now();
    let t = Tensor::ones([1 << 20], (Kind::Float, tch::Device::Cpu));
    let e = pg.all_reduce(&t, ReduceOp::Sum).unwrap_err();
    let took = start.elapsed();
    println!("early-exit error after {took:?}: {e}");
    assert!(
        matches!(
            e,
            DistError::Op {
                op: "all_reduce",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("rank 0 of 2"), "{e}");
    assert!(took < TIMEOUT + Duration::from_secs(6), "{took:?}");
}

#[test]
fn a_rank_that_exits_early_fails_the_other() {
    let outputs = run_ranks("worker_early_exit", 2, |_| vec![]);
    assert!(
        outputs[1].status.success(),
        "rank 1:\n{}",
        text(&outputs[1])
    );
    assert_all_ok(&outputs[..1]);
    eprintln!("{}", text(&outputs[0]));
}

#[test]
#[ignore = "a rank of a_world_size_that_differs_between_ranks_is_named"]
fn worker_world_size_mismatch() {
    if std::env::var_os(WORKER).is_none() {
        return;
    }
    let rv = Rendezvous::from_env().unwrap().unwrap();
    let e = ProcessGroup::new(&rv, Backend::Gloo, Duration::from_secs(3)).unwrap_err();
    println!("rank {} error: {e}", rv.rank);
    if rv.rank == 1 {
        assert!(
            matches!(
                e,
                DistError::Env {
                    var: "WORLD_SIZE",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("rank 0 has WORLD_SIZE=2"), "{e}");
    }
}

#[test]
fn a_world_size_that_differs_between_ranks_is_named() {
    let outputs = run_ranks("worker_world_size_mismatch", 2, |rank| {
        if rank == 1 {
            vec![
                ("WORLD_SIZE", "3".to_owned()),
                ("LOCAL_WORLD_SIZE", "3".to_owned()),
            ]
        } else {
            vec![]
        }
    });
    assert_all_ok(&outputs);
    for o in &outputs {
        eprintln!("{}", text(o));
    }
}

fn rendezvous(rank: usize, world_size: usize, port: u16) -> Rendezvous {
    Rendezvous {
        master_addr: Ipv4Addr::LOCALHOST.to_string(),
        master_port: port,
        rank,
        world_size,
        local_rank: rank,
        local_world_size: world_size,
    }
}

#[test]
fn a_port_in_use_is_named() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = ProcessGroup::new(
        &rendezvous(0, 2, port),
        Backend::Gloo,
        Duration::from_secs(3),
    )
    .unwrap_err();
    let m = e.to_string();
    eprintln!("port in use: {m}");
    assert!(matches!(e, DistError::Rendezvous { .. }), "{m}");
    assert!(
        m.contains(&format!("MASTER_PORT={port}")) && m.contains("in use"),
        "{m}"
    );
}

#[test]
fn a_rank_that_never_arrives_times_out_naming_it() {
    let port = cvlab_util::launch::free_port().unwrap();
    let start = Instant::now();
    let e = ProcessGroup::new(
        &rendezvous(0, 2, port),
        Backend::Gloo,
        Duration::from_secs(2),
    )
    .unwrap_err();
    let m = e.to_string();
    eprintln!("never arrives: {m}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(
        m.contains("1/2 clients joined") && m.contains("never arrived"),
        "{m}"
    );
}

#[test]
fn no_master_times_out_naming_it() {
    let port = cvlab_util::launch::free_port().unwrap();
    let start = Instant::now();
    let e = ProcessGroup::new(
        &rendezvous(1, 2, port),
        Backend::Gloo,
        Duration::from_secs(2),
    )
    .unwrap_err();
    let m = e.to_string();
    eprintln!("no master: {m}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(m.contains("rank 0") && m.contains(&port.to_string()), "{m}");
}

#[test]
fn nccl_is_not_built_in_and_says_so() {
    if dist::nccl_available().is_ok() {
        return;
    }
    let e = ProcessGroup::new(&rendezvous(0, 1, 1), Backend::Nccl, TIMEOUT).unwrap_err();
    assert!(
        e.to_string().contains("NCCL") && e.to_string().contains("not built in"),
        "{e}"
    );
}

#[test]
fn one_rank_alone_is_a_group_too() {
    let port = cvlab_util::launch::free_port().unwrap();
    let pg = ProcessGroup::new(&rendezvous(0, 1, port), Backend::Gloo, TIMEOUT).unwrap();
    let t = Tensor::from_slice(&[2.0f32]);
    pg.all_reduce(&t, ReduceOp::Avg).unwrap();
    assert_eq!(t.double_value(&[0]), 2.0);
    pg.broadcast(&t, 0).unwrap();
    assert!(pg
        .broadcast(&t, 1)
        .unwrap_err()
        .to_string()
        .contains("root 1"));
    pg.barrier().unwrap();
}

/// The NCCL path at world size 1 on a GPU (the `nccl` feature; skipped without CUDA): it still
/// rendezvous, all-reduces (bf16 and f32) and broadcasts.
#[test]
fn nccl_world_of_one_on_a_gpu() {
    if dist::nccl_available().is_err() || !tch::Cuda::is_available() {
        eprintln!("skipped: no NCCL in this build or no GPU");
        return;
    }
    let port = cvlab_util::launch::free_port().unwrap();
    let pg = ProcessGroup::new(&rendezvous(0, 1, port), Backend::Nccl, TIMEOUT).unwrap();
    let dev = pg.device();
    assert_eq!(dev, tch::Device::Cuda(0));
    let t = Tensor::from_slice(&[1.5f32, -2.0])
        .to_device(dev)
        .to_kind(Kind::BFloat16);
    pg.all_reduce(&t, ReduceOp::Sum).unwrap();
    pg.all_reduce(&t, ReduceOp::Avg).unwrap();
    let back = Vec::<f32>::try_from(t.to_kind(Kind::Float).to_device(tch::Device::Cpu)).unwrap();
    assert_eq!(back, vec![1.5, -2.0]);
    let f = Tensor::from_slice(&[3.0f32]).to_device(dev);
    pg.broadcast(&f, 0).unwrap();
    let e = pg
        .all_reduce(&Tensor::from_slice(&[1.0f32]), ReduceOp::Sum)
        .unwrap_err();
    assert!(e.to_string().contains("Cuda"), "{e}");
    pg.barrier().unwrap();
}

/// The Trainer cases over two Gloo ranks: (name, optimiser, accumulation).
const TRAIN_CASES: [(&str, &str, usize); 4] = [
    ("adamw_accum1", "adamw", 1),
    ("adamw_accum2", "adamw", 2),
    ("sgd_accum1", "sgd", 1),
    ("sgd_accum2", "sgd", 2),
];

/// A two-layer net trained by `train_kit::Trainer` on 64 fixed items at batch `batch` (over
/// `group` when given: each rank's model drawn from its own seed, so only rank 0's broadcast
/// makes them agree), 2 epochs, warm-up + cosine, clipping; the run folder is `dir`.
fn train_net(
    group: Option<&ProcessGroup>,
    opt: &str,
    batch: usize,
    accum: usize,
    dir: &std::path::Path,
    stop_after: Option<u64>,
) -> (tch::nn::VarStore, train_kit::TrainReport) {
    use tch::nn::{self, Module};
    use train_kit::{
        AdamW, AdamWConfig, Optimizer, ParamGroup, RunOptions, Schedule, Seeding, Sgd, SgdConfig,
        TrainError, Trainer, TrainerConfig,
    };
    tch::manual_seed(1);
    let x = Tensor::randn([64, 8], (Kind::Float, tch::Device::Cpu));
    let y = Tensor::randint(3, [64], (Kind::Int64, tch::Device::Cpu));
    tch::manual_seed(3 + group.map_or(0, |g| g.rank() as i64));
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let fc1 = nn::linear(&vs.root() / "fc1", 8, 16, Default::default());
    let fc2 = nn::linear(&vs.root() / "fc2", 16, 3, Default::default());
    let groups = ParamGroup::decay_no_decay(&vs, 0.01);
    let mut opt: Box<dyn Optimizer> = match opt {
        "adamw" => Box::new(AdamW::new(&vs, groups, AdamWConfig::default()).unwrap()),
        _ => {
            let cfg = SgdConfig {
                nesterov: true,
                ..Default::default()
            };
            Box::new(Sgd::new(&vs, groups, cfg).unwrap())
        }
    };
    let cfg = TrainerConfig {
        epochs: 2,
        schedule: Schedule::WarmupCosine {
            base_lr: 0.05,
            min_lr: 1e-4,
            warmup_steps: 2,
            total_steps: 16,
        },
        accum_iter: accum,
        clip_grad: Some(1.0),
        seeding: Seeding::PerStep(5),
        checkpoint_every: 1,
        log_every: 1,
        ..Default::default()
    };
    let lcfg = datasets::LoaderConfig {
        batch_size: batch,
        seed: 4,
        prefetch: 0,
        ..Default::default()
    };
    let data = datasets::Loader::new(&x, &y, lcfg).unwrap();
    let run = RunOptions {
        dir: Some(dir.to_path_buf()),
        stop_after,
        ..Default::default()
    };
    let step = |b: datasets::Batch, _: &train_kit::StepInfo| {
        let h = fc1.forward(&b.images).relu();
        Ok::<_, TrainError>(fc2.forward(&h).cross_entropy_for_logits(&b.labels))
    };
    let trainer = Trainer::new(&cfg, &run).unwrap();
    let trainer = match group {
        Some(g) => trainer.with_collective(g),
        None => trainer,
    };
    let report = trainer
        .fit(&mut vs, opt.as_mut(), &data, step, train_kit::no_eval)
        .unwrap();
    (vs, report)
}

#[test]
#[ignore = "a rank of the_trainer_over_two_gloo_ranks_takes_the_steps_of_one_process"]
fn worker_trainer() {
    let Some(pg) = worker_group(Duration::from_secs(60)) else {
        return;
    };
    let out = std::path::PathBuf::from(std::env::var("DIST_TEST_OUT").unwrap());
    let rank = pg.rank();
    for (name, opt, accum) in TRAIN_CASES {
        let (vs, report) = train_net(Some(&pg), opt, 4, accum, &out.join(name), None);
        assert_eq!(report.iters, 16, "{name}");
        vs.save(out.join(format!("{name}_rank{rank}.safetensors")))
            .unwrap();
    }
    // Stopped after 3 optimiser steps (local micro-step 6), then resumed in a second call.
    let (straight, _) = train_net(Some(&pg), "adamw", 4, 2, &out.join("straight"), None);
    let (_, first) = train_net(Some(&pg), "adamw", 4, 2, &out.join("resumed"), Some(6));
    assert!(first.stopped_early);
    let (resumed, second) = train_net(Some(&pg), "adamw", 4, 2, &out.join("resumed"), None);
    assert_eq!(second.resumed_at, Some(6), "rank {rank}");
    for (name, t) in straight.variables() {
        assert!(t.equal(&resumed.variables()[&name]), "rank {rank}: {name}");
    }
}

fn logged_losses(dir: &std::path::Path) -> Vec<f64> {
    train_kit::MetricsLog::read(dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| r.get("iter").and(r["loss"].as_f64()))
        .collect()
}

#[test]
fn the_trainer_over_two_gloo_ranks_takes_the_steps_of_one_process() {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().display().to_string();
    assert_all_ok(&run_ranks("worker_trainer", 2, |_| {
        vec![("DIST_TEST_OUT", path.clone())]
    }));
    for (name, opt, accum) in TRAIN_CASES {
        let single_dir = out.path().join(format!("{name}_single"));
        let (single, _) = train_net(None, opt, 8, accum, &single_dir, None);
        for rank in 0..2 {
            let file = out.path().join(format!("{name}_rank{rank}.safetensors"));
            let ranks = Tensor::read_safetensors(&file).unwrap();
            assert_eq!(ranks.len(), single.variables().len());
            for (var, t) in ranks {
                let d = (&t - &single.variables()[&var])
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(d < 1e-6, "{name} rank {rank} {var}: differs by {d}");
            }
        }
        // Rank 0 alone wrote the log, with the mean of the ranks' micro-batch losses.
        let (one, two) = (
            logged_losses(&single_dir),
            logged_losses(&out.path().join(name)),
        );
        assert_eq!(one.len(), two.len(), "{name}");
        for (a, b) in one.iter().zip(&two) {
            assert!((a - b).abs() < 1e-6, "{name}: logged {b} vs {a}");
        }
    }
}
