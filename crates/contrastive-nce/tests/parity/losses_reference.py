"""Reference values and gradients of InfoNCE and NT-Xent for contrastive-nce's parity test.

Usage: python losses_reference.py OUT_DIR

- `info-nce-pytorch` (`info_nce.InfoNCE`): in-batch, unpaired and paired negatives;
- `pytorch-metric-learning` 2.9 (`losses.NTXentLoss`, cosine similarity): SimCLR's two views
  (labels i, i) and a batch with several positives per anchor.
Float64, CPU. Writes OUT_DIR/losses.safetensors: inputs, `<case>_value`, `<case>_grad_<input>`.
"""
import os
import sys

import torch
from info_nce import InfoNCE
from pytorch_metric_learning.losses import NTXentLoss
from safetensors.torch import save_file

torch.set_num_threads(2)


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    dt = torch.float64
    n, m, d = 6, 10, 8
    t = {
        "query": torch.randn(n, d, dtype=dt),
        "positive": torch.randn(n, d, dtype=dt),
        "unpaired": torch.randn(m, d, dtype=dt),
        "paired": torch.randn(n, m, d, dtype=dt),
        "z1": torch.randn(n, d, dtype=dt),
        "z2": torch.randn(n, d, dtype=dt),
        "emb": torch.randn(12, d, dtype=dt),
        "labels": torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4]),
    }
    out_t = dict(t)

    def record(case, fn, names):
        xs = {k: t[k].clone().requires_grad_(True) for k in names}
        v = fn(**xs)
        v.backward()
        out_t[f"{case}_value"] = v.detach().reshape(1)
        for k in names:
            out_t[f"{case}_grad_{k}"] = xs[k].grad.clone()

    for tau in (0.1, 0.5):
        tag = str(tau).replace(".", "p")
        record(f"infonce_inbatch_{tag}",
               lambda query, positive: InfoNCE(temperature=tau)(query, positive),
               ["query", "positive"])
        record(f"infonce_unpaired_{tag}",
               lambda query, positive, unpaired: InfoNCE(temperature=tau, negative_mode="unpaired")(query, positive, unpaired),
               ["query", "positive", "unpaired"])
        record(f"infonce_paired_{tag}",
               lambda query, positive, paired: InfoNCE(temperature=tau, negative_mode="paired")(query, positive, paired),
               ["query", "positive", "paired"])
        loss = NTXentLoss(temperature=tau)
        labels2 = torch.arange(n).repeat(2)
        record(f"ntxent_simclr_{tag}",
               lambda z1, z2: loss(torch.cat([z1, z2]), labels2),
               ["z1", "z2"])
        record(f"ntxent_multi_{tag}",
               lambda emb: loss(emb, t["labels"]),
               ["emb"])
    save_file({k: v.contiguous() for k, v in out_t.items()}, os.path.join(out, "losses.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
