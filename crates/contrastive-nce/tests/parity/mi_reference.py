"""Reference values and gradients of the MI estimators for contrastive-nce's parity test.

Usage: python mi_reference.py OUT_DIR

A direct PyTorch transcription (float64, CPU) of the formulas of
- google-research/vbmi `vbmi_demo.ipynb` (TensorFlow): reduce_logmeanexp_nodiag, tuba_lower_bound,
  nwj_lower_bound, infonce_lower_bound, log_interpolate, compute_log_loomean,
  interpolated_lower_bound, js_fgan_lower_bound, js_lower_bound;
- ermongroup/smile-mi-estimator `estimators.py`: dv_upper_lower_bound, mine_lower_bound,
  smile_lower_bound (its code hard-codes CUDA; the formulas run on the CPU here).

Writes OUT_DIR/mi.safetensors with, for each batch size n: `scores_<n>`, `baseline_<n>` and for
each estimator `<name>_<n>_value`, `<name>_<n>_grad_scores` (and `_grad_baseline` where it reads
one); MINE also `mine_<n>_buffer` (the moving average after the step, from 1.0, momentum 0.9).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.set_num_threads(2)


def logmeanexp_nodiag(x, dim=None):
    n = x.size(0)
    # tf.linalg.tensor_diag(np.inf * ones): inf on the diagonal, 0 elsewhere
    lse = torch.logsumexp(x - torch.diag(np.inf * torch.ones(n, dtype=x.dtype)),
                          dim=(0, 1) if dim is None else dim)
    num = n * (n - 1.0) if dim is None else n - 1.0
    return lse - np.log(num)


def tuba(scores, log_baseline=None):
    if log_baseline is not None:
        scores = scores - log_baseline[:, None]
    joint = scores.diag().mean()
    marg = logmeanexp_nodiag(scores).exp()
    return 1.0 + joint - marg


def nwj(scores):
    return tuba(scores - 1.0)


def infonce(scores):
    nll = (scores.diag() - scores.logsumexp(dim=1)).mean()
    return np.log(scores.size(0)) + nll


def log_interpolate(log_a, log_b, alpha_logit):
    log_alpha = -F.softplus(torch.tensor(-alpha_logit, dtype=log_a.dtype))
    log_1m = -F.softplus(torch.tensor(alpha_logit, dtype=log_a.dtype))
    return torch.logsumexp(torch.stack((log_alpha + log_a, log_1m + log_b)), dim=0)


def softplus_inverse(x):
    # tfp.math.softplus_inverse: log(exp(x) - 1) = x + log(-expm1(-x))
    return x + torch.log(-torch.expm1(-x))


def log_loomean(scores):
    max_scores = scores.max(dim=1, keepdim=True).values
    lse_minus_max = torch.logsumexp(scores - max_scores, dim=1, keepdim=True)
    d = lse_minus_max + (max_scores - scores)
    d_ok = d != 0.0
    safe_d = torch.where(d_ok, d, torch.ones_like(d))
    loo_lse = scores + softplus_inverse(safe_d)
    return loo_lse - np.log(scores.size(1) - 1.0)


def interpolated(scores, baseline, alpha_logit):
    n = scores.size(0)
    nce_baseline = log_loomean(scores)
    interp = log_interpolate(nce_baseline, baseline[:, None].repeat(1, n), alpha_logit)
    critic_marg = scores - interp.diag()[:, None]
    marg = logmeanexp_nodiag(critic_marg).exp()
    critic_joint = scores.diag()[:, None] - interp
    joint = (critic_joint.sum() - critic_joint.diag().sum()) / (n * (n - 1.0))
    return 1 + joint - marg


def js_fgan(f):
    d = f.diag()
    first = -F.softplus(-d).mean()
    n = f.size(0)
    second = (F.softplus(f).sum() - F.softplus(d).sum()) / (n * (n - 1.0))
    return first - second


def js(f):
    j = js_fgan(f)
    mi = nwj(f)
    return j + (mi - j).detach()


def dv(f):
    return f.diag().mean() - logmeanexp_nodiag(f)


def mine(f, buffer, momentum=0.9):
    first = f.diag().mean()
    update = logmeanexp_nodiag(f).exp()
    with torch.no_grad():
        second = logmeanexp_nodiag(f)
        new = torch.clamp(buffer * momentum + update * (1 - momentum), min=1e-4)
        third_no_grad = update / new
    third_grad = update / new
    return first - second - third_grad + third_no_grad, new


def smile(f, clip=None):
    f_ = torch.clamp(f, -clip, clip) if clip is not None else f
    z = logmeanexp_nodiag(f_, dim=None)
    dvv = f.diag().mean() - z
    j = js_fgan(f)
    return j + (dvv - j).detach()


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    tensors, cases = {}, []
    for n, scale in [(7, 1.5), (64, 3.0)]:
        s0 = torch.randn(n, n, dtype=torch.float64) * scale
        s0 += torch.eye(n, dtype=torch.float64) * 2.0  # joint pairs score higher, as trained
        b0 = torch.randn(n, dtype=torch.float64)
        tensors[f"scores_{n}"] = s0
        tensors[f"baseline_{n}"] = b0
        ests = {
            "infonce": (lambda s, b: infonce(s), False),
            "nwj": (lambda s, b: nwj(s), False),
            "tuba": (lambda s, b: tuba(s, b), True),
            "js_fgan": (lambda s, b: js_fgan(s), False),
            "js": (lambda s, b: js(s), False),
            "dv": (lambda s, b: dv(s), False),
            "interpolated_m5": (lambda s, b: interpolated(s, b, -5.0), True),
            "interpolated_0": (lambda s, b: interpolated(s, b, 0.0), True),
            "interpolated_5": (lambda s, b: interpolated(s, b, 5.0), True),
            "smile_1": (lambda s, b: smile(s, 1.0), False),
            "smile_5": (lambda s, b: smile(s, 5.0), False),
            "smile_inf": (lambda s, b: smile(s, None), False),
        }
        for name, (fn, uses_b) in ests.items():
            s = s0.clone().requires_grad_(True)
            b = b0.clone().requires_grad_(True)
            v = fn(s, b)
            v.backward()
            tensors[f"{name}_{n}_value"] = v.detach().reshape(1)
            tensors[f"{name}_{n}_grad_scores"] = s.grad.clone()
            if uses_b:
                tensors[f"{name}_{n}_grad_baseline"] = b.grad.clone()
            cases.append({"name": name, "n": n, "baseline": uses_b})
        s = s0.clone().requires_grad_(True)
        v, new = mine(s, torch.tensor(1.0, dtype=torch.float64), 0.9)
        v.backward()
        tensors[f"mine_{n}_value"] = v.detach().reshape(1)
        tensors[f"mine_{n}_grad_scores"] = s.grad.clone()
        tensors[f"mine_{n}_buffer"] = new.reshape(1)
        cases.append({"name": "mine", "n": n, "baseline": False})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "mi.safetensors"))
    with open(os.path.join(out, "mi_cases.json"), "w") as fh:
        json.dump(cases, fh)


if __name__ == "__main__":
    main(sys.argv[1])
