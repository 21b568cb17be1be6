"""The PyTorch-eager half of the side-by-side smooth-metric timing (beside the Rust
`smooth_metrics_bench` binary, same arguments, same JSON line).

Same work as the Rust side: one loss forward + backward (torch.autograd.grad with respect to the
scores). `lovasz_softmax`: softmax + segmentation-models-pytorch's copy of Berman's
Lovasz-Softmax (`classes='present'`, a loop over classes) of [B, 21, 128, 128] logits;
`smooth_ap`: pytorch-metric-learning's SmoothAPLoss (tau 0.01) of [B, 128] embeddings, 16 per
class (equal counts, and classes == samples per class at B = 256, where it is exact).
"""
import argparse
import json

import torch

from bench_common import make_sync, median, time_steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["lovasz_softmax", "smooth_ap"], default="lovasz_softmax")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["f32"], default="f32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = a.device
    if a.model == "lovasz_softmax":
        from segmentation_models_pytorch.losses import lovasz as smp_lovasz
        x = torch.randn(a.batch, 21, 128, 128, device=dev, requires_grad=True)
        labels = torch.randint(0, 21, (a.batch, 128, 128), device=dev)
        loss_fn = lambda: smp_lovasz._lovasz_softmax(x.softmax(1), labels, classes="present")
    else:
        from pytorch_metric_learning.losses import SmoothAPLoss
        assert a.batch % 16 == 0, "smooth_ap takes a multiple of 16 (16 per class)"
        x = torch.randn(a.batch, 128, device=dev, requires_grad=True)
        labels = torch.arange(a.batch // 16, device=dev).repeat_interleave(16)
        pml = SmoothAPLoss(temperature=0.01)
        loss_fn = lambda: pml(x, labels)

    def step():
        torch.autograd.grad(loss_fn(), x)

    times = time_steps(step, a.warmup, a.iters, make_sync(dev))
    m = median(times)
    print(json.dumps({
        "impl": "pytorch", "model": a.model, "batch": a.batch, "mode": "fwd+bwd", "device": dev,
        "threads": torch.get_num_threads(), "times_s": times, "median_s": m,
        "images_per_s": a.batch / m,
    }))


if __name__ == "__main__":
    main()
