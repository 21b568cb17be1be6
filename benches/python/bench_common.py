"""What the PyTorch twins of the side-by-side benches share: the timing loop of their Rust halves
(`benches::time_steps`, `benches::median`). Imported from the scripts' own folder, here and in a
bundle's scripts/."""
import time

import torch


def make_sync(device):
    """Waits for queued CUDA work; a no-op on the CPU."""
    if device == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_steps(step, warmup, iters, sync):
    """`step` `warmup` times untimed, then `iters` times, each timed by the wall clock with the
    device synchronised after it. Returns the seconds."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def median(v):
    """The upper median, as the Rust side; NaN when empty."""
    return sorted(v)[len(v) // 2] if v else float("nan")
