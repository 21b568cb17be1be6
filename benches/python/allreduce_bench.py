"""The PyTorch half of the side-by-side all-reduce timing (`cargo xtask bench` runs it beside the
Rust `allreduce_bench` binary with the same arguments and prints the ratio).

Same work as the Rust side: run plainly it starts `--nproc` ranks of itself on this machine
(torchrun's variables, loopback) and prints rank 0's JSON line; each rank joins
`torch.distributed.init_process_group("gloo")` from those variables and times `--iters` sum
all-reduces of one float32 tensor of `--size-mb` MB (1 MB = 2^20 bytes), each after a refill and
a barrier outside the timer. Bus bandwidth = 2 (n - 1) / n * bytes / median time.
"""
import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import time

import torch
import torch.distributed as dist


def median(v):
    """The upper median, as the Rust side."""
    return sorted(v)[len(v) // 2] if v else float("nan")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(a):
    port = free_port()
    cores = os.cpu_count() or 1
    children = []
    for r in range(a.nproc):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r),
                   WORLD_SIZE=str(a.nproc), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(a.nproc))
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // a.nproc)))
        out = subprocess.PIPE if r == 0 else subprocess.DEVNULL
        children.append(subprocess.Popen([sys.executable, __file__] + sys.argv[1:], env=env, stdout=out))
    line = None
    for r, c in enumerate(children):
        stdout, _ = c.communicate()
        if c.returncode != 0:
            sys.exit(f"rank {r} failed ({c.returncode})")
        if r == 0:
            line = stdout.decode().strip().splitlines()[-1]
    print(line)


def rank(a):
    world = int(os.environ["WORLD_SIZE"])
    if a.threads:
        torch.set_num_threads(max(1, a.threads // world))
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=a.timeout_s))
    r = dist.get_rank()
    numel = round(a.size_mb * (1 << 20)) // 4
    t = torch.ones(numel, dtype=torch.float32)
    times = []
    for i in range(a.warmup + a.iters):
        t.fill_(1.0)
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
    if t.min().item() != world or t.max().item() != world:
        sys.exit(f"the all-reduced tensor is not {world} everywhere")
    m = median(times)
    busbw = 2 * (world - 1) / world * numel * 4 / m
    if r == 0:
        print(json.dumps({
            "impl": "torch.distributed", "backend": "gloo", "world_size": world, "size_mb": a.size_mb,
            "bytes": numel * 4, "iters": a.iters, "threads": torch.get_num_threads(),
            "median_s": m, "times_s": times, "busbw_gb_s": busbw / 1e9,
        }), flush=True)
    dist.barrier()
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=16.0)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--threads", type=int)
    p.add_argument("--timeout-s", type=int, default=300)
    a = p.parse_args()
    if "WORLD_SIZE" in os.environ:
        rank(a)
    else:
        launch(a)


if __name__ == "__main__":
    main()
