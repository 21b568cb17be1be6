"""What the parity scripts share: tensors to JSON (shape + flat values) and the output file."""
import json
import os
import sys

import torch


def t2j(t):
    t = t.detach()
    return {"shape": list(t.shape), "data": t.reshape(-1).tolist()}


def write(cases):
    out = sys.argv[1]
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f)


def loss_and_grad(f, x):
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    (g,) = torch.autograd.grad(y, x)
    return float(y.detach()), g
