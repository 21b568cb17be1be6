"""The PyTorch-eager half of the side-by-side contrastive-nce timing (the Rust twin is
`contrastive_bench`; same arguments, same JSON line).

- `--model mi`: one iteration is the whole MI benchmark for one estimator, as the vbmi / SMILE
  notebooks' `train_estimator`: a fresh critic (vbmi's MLPs, two hidden layers of 256, 32-d
  embeddings) trained by Adam 5e-4 on fresh correlated-Gaussian batches over MI 2, 4, 6, 8, 10
  nats, `--steps-per-level` steps each. The estimators are transcribed from vbmi_demo.ipynb and
  SMILE's estimators.py.
- `--model ntxent`: one SimCLR step of an MLP 784-512-128 at batch 256: two noisy views,
  NT-Xent (tau 0.5, self-similarity masked, both directions), backward, Adam step.
"""
import argparse
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_common import make_sync, median, time_steps


def mlp(d_in, hidden, d_out, layers=2):
    mods, d = [], d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    return nn.Sequential(*mods, nn.Linear(d, d_out))


class Separable(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.g, self.h = mlp(dim, 256, 32), mlp(dim, 256, 32)

    def forward(self, x, y):  # scores[i, j] = f(x_j, y_i)
        return self.h(y) @ self.g(x).t()


class Concat(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.f = mlp(2 * dim, 256, 1)

    def forward(self, x, y):
        n = x.size(0)
        pairs = torch.cat([x[None].expand(n, n, -1), y[:, None].expand(n, n, -1)], 2)
        return self.f(pairs.reshape(n * n, -1)).reshape(n, n)


def lme_nodiag(x):
    n = x.size(0)
    return torch.logsumexp(x.masked_fill(torch.eye(n, dtype=torch.bool), -np.inf), dim=(0, 1)) - np.log(n * (n - 1.0))


def infonce(s):
    return np.log(s.size(0)) + (s.diag() - s.logsumexp(1)).mean()


def nwj(s):
    s = s - 1.0
    return 1.0 + s.diag().mean() - lme_nodiag(s).exp()


def js_fgan(f):
    n, d = f.size(0), f.diag()
    return -F.softplus(-d).mean() - (F.softplus(f).sum() - F.softplus(d).sum()) / (n * (n - 1.0))


def js(f):
    j = js_fgan(f)
    return j + (nwj(f) - j).detach()


def smile(f, clip=1.0):
    dv = f.diag().mean() - lme_nodiag(f.clamp(-clip, clip))
    j = js_fgan(f)
    return j + (dv - j).detach()


ESTIMATORS = {"infonce": infonce, "nwj": nwj, "js": js, "smile": smile}


def mi_benchmark(a, seed):
    torch.manual_seed(seed)
    dim = 20
    critic = (Separable if a.critic == "separable" else Concat)(dim)
    opt = torch.optim.Adam(critic.parameters(), lr=5e-4)
    est = ESTIMATORS[a.estimator]
    for mi in [2.0, 4.0, 6.0, 8.0, 10.0]:
        rho = float(np.sqrt(1 - np.exp(-2.0 / dim * mi)))
        for _ in range(a.steps_per_level):
            x, eps = torch.randn(a.batch, 2 * dim).chunk(2, dim=1)
            y = rho * x + np.sqrt(1 - rho ** 2) * eps
            v = est(critic(x, y))
            opt.zero_grad(set_to_none=True)
            (-v).backward()
            opt.step()
            float(v.detach())  # the Rust side reads each step's estimate


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["mi", "ntxent"], default="mi")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", choices=["cpu"], default="cpu")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--estimator", choices=list(ESTIMATORS), default="infonce")
    p.add_argument("--critic", choices=["separable", "concat"], default="separable")
    p.add_argument("--steps-per-level", type=int, default=4000)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    sync = make_sync(a.device)
    if a.model == "mi":
        seed = [0]

        def step():
            seed[0] += 1
            mi_benchmark(a, seed[0])
    else:
        torch.manual_seed(0)
        enc = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 128))
        opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
        x = torch.rand(a.batch, 784)
        targets = torch.arange(2 * a.batch).roll(a.batch)  # the other view of each sample

        def step():
            z = F.normalize(torch.cat([enc(x + torch.randn_like(x) * 0.1), enc(x + torch.randn_like(x) * 0.1)]), dim=1)
            sim = z @ z.t() / 0.5
            sim = sim.masked_fill(torch.eye(2 * a.batch, dtype=torch.bool), -np.inf)
            loss = F.cross_entropy(sim, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    times = time_steps(step, a.warmup, a.iters, sync)
    print(json.dumps({
        "impl": "pytorch", "model": a.model, "batch": a.batch, "estimator": a.estimator,
        "critic": a.critic, "steps_per_level": a.steps_per_level, "device": a.device,
        "threads": torch.get_num_threads(), "times_s": times, "median_s": median(times),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
