"""Reference for the SGD / LARS parity test (crates/train-kit/tests/parity_sgd_lars.rs).

The problem of adamw_reference.py (three tensors from formulas, a loss whose gradient is
0.3 * p + sin(0.37 i + 0.11 t + k)), 20 steps in float64, two groups ({w1, w3}: lr scale 0.5
and weight decay; {b1}: no weight decay), under
  - torch.optim.SGD (foreach=False) with: no momentum; momentum 0.9; Nesterov; dampening 0.1;
  - LARS as the official MAE code defines it (util/lars.py, written out below from its
    formula: trust ratio on tensors with more than one dimension, weight decay inside the
    ratio, heavy-ball momentum without dampening).
Writes {variant: {"config": ..., "steps": [params after each step]}} to argv[1]/sgd_lars.json.
"""
import json
import math
import os
import sys
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

STEPS = 20
SHAPES = {"w1": [5, 4], "b1": [4], "w3": [3, 2, 2]}
ORDER = ["w1", "b1", "w3"]
INIT = {
    "w1": lambda i: math.sin(0.1 * i + 0.3),
    "b1": lambda i: math.cos(0.2 * i),
    "w3": lambda i: 0.05 * i - 0.3,
}
LR_SCALE = 0.5

VARIANTS = {
    "sgd_plain": dict(kind="sgd", lr=0.05, momentum=0.0, dampening=0.0, nesterov=False, wd=0.0),
    "sgd_momentum": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, wd=1e-2),
    "sgd_nesterov": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.0, nesterov=True, wd=5e-2),
    "sgd_dampening": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.1, nesterov=False, wd=1e-2),
    "lars": dict(kind="lars", lr=0.5, momentum=0.9, trust=0.001, wd=0.05),
}


class Lars(torch.optim.Optimizer):
    """LARS with the update rule of the official MAE `util/lars.py`."""

    def __init__(self, params, lr=0, weight_decay=0, momentum=0.9, trust_coefficient=0.001):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                        trust_coefficient=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                dp = p.grad
                if dp is None:
                    continue
                if p.ndim > 1:
                    dp = dp.add(p, alpha=g["weight_decay"])
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(param_norm > 0.0,
                                    torch.where(update_norm > 0,
                                                g["trust_coefficient"] * param_norm / update_norm,
                                                one),
                                    one)
                    dp = dp.mul(q)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(g["momentum"]).add_(dp)
                p.add_(mu, alpha=-g["lr"])


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def run(cfg):
    params = {}
    for name in ORDER:
        vals = [INIT[name](i) for i in range(numel(SHAPES[name]))]
        params[name] = torch.tensor(vals).reshape(SHAPES[name]).requires_grad_(True)
    groups = [
        {"params": [params["w1"], params["w3"]], "lr": cfg["lr"] * LR_SCALE, "weight_decay": cfg["wd"]},
        {"params": [params["b1"]], "lr": cfg["lr"], "weight_decay": 0.0},
    ]
    if cfg["kind"] == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"],
                              dampening=cfg["dampening"], nesterov=cfg["nesterov"], foreach=False)
    else:
        opt = Lars(groups, lr=cfg["lr"], momentum=cfg["momentum"], trust_coefficient=cfg["trust"])
    steps = []
    for t in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros(())
        for k, name in enumerate(ORDER):
            p = params[name]
            i = torch.arange(p.numel(), dtype=torch.float64).reshape(p.shape)
            loss = loss + (0.15 * p * p + p * torch.sin(0.37 * i + 0.11 * t + k)).sum()
        loss.backward()
        opt.step()
        steps.append({n: params[n].detach().reshape(-1).tolist() for n in ORDER})
    return steps


def main():
    out = sys.argv[1]
    if os.path.isdir(out):
        out = os.path.join(out, "sgd_lars.json")
    torch.set_default_dtype(torch.float64)
    doc = {"lr_scale": LR_SCALE, "shapes": SHAPES, "variants": {}}
    for name, cfg in VARIANTS.items():
        doc["variants"][name] = {"config": cfg, "steps": run(cfg)}
    with open(out, "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    main()
