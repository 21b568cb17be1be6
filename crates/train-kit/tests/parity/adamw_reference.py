"""Reference for the AdamW parity test (crates/train-kit/tests/parity_adamw.rs).

Runs torch.optim.AdamW (Loshchilov & Hutter 2019) for 20 steps on a small fixed problem in
float64 and writes the parameters after every step as JSON to the path given as argv[1] (or to
adamw_reference.json in it when it is a folder).

Problem (the Rust test rebuilds it from the same formulas; no RNG anywhere):
  params (flat index i):  w1 [5,4]   = sin(0.1*i + 0.3)
                          b1 [4]     = cos(0.2*i)
                          w3 [3,2,2] = 0.05*i - 0.3
  loss at step t (1-based), param k (w1=0, b1=1, w3=2):
      sum(0.15 * p*p + p * sin(0.37*i + 0.11*t + k))   => grad = 0.3*p + sin(...)
  groups: {w1, w3}: lr = 0.01 * 0.5 (lr scale 0.5), weight_decay 0.05
          {b1}:     lr = 0.01,                       weight_decay 0
  betas (0.9, 0.95), eps 1e-8, foreach=False (single-tensor path)
"""
import json
import math
import os
import sys

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

BASE_LR = 0.01
LR_SCALE = 0.5
WD = 0.05
BETAS = (0.9, 0.95)
EPS = 1e-8
STEPS = 20
SHAPES = {"w1": [5, 4], "b1": [4], "w3": [3, 2, 2]}
ORDER = ["w1", "b1", "w3"]
INIT = {
    "w1": lambda i: math.sin(0.1 * i + 0.3),
    "b1": lambda i: math.cos(0.2 * i),
    "w3": lambda i: 0.05 * i - 0.3,
}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def main():
    out_path = sys.argv[1]
    if os.path.isdir(out_path):  # the test harness passes a folder
        out_path = os.path.join(out_path, "adamw_reference.json")
    torch.set_default_dtype(torch.float64)
    params = {}
    for name in ORDER:
        shape = SHAPES[name]
        vals = [INIT[name](i) for i in range(numel(shape))]
        params[name] = torch.tensor(vals, dtype=torch.float64).reshape(shape).requires_grad_(True)

    opt = torch.optim.AdamW(
        [
            {"params": [params["w1"], params["w3"]], "lr": BASE_LR * LR_SCALE, "weight_decay": WD},
            {"params": [params["b1"]], "lr": BASE_LR, "weight_decay": 0.0},
        ],
        lr=BASE_LR,
        betas=BETAS,
        eps=EPS,
        foreach=False,
    )

    def snapshot():
        return {n: params[n].detach().reshape(-1).tolist() for n in ORDER}

    steps = []
    initial = snapshot()
    for t in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros((), dtype=torch.float64)
        for k, name in enumerate(ORDER):
            p = params[name]
            idx = torch.arange(p.numel(), dtype=torch.float64).reshape(p.shape)
            s = torch.sin(0.37 * idx + 0.11 * t + k)
            loss = loss + (0.15 * p * p + p * s).sum()
        loss.backward()
        opt.step()
        steps.append(snapshot())

    doc = {
        "torch_version": torch.__version__,
        "dtype": "float64",
        "config": {"base_lr": BASE_LR, "lr_scale": LR_SCALE, "weight_decay": WD,
                   "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "steps": STEPS},
        "shapes": SHAPES,
        "initial": initial,
        "steps": steps,
    }
    with open(out_path, "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    main()
