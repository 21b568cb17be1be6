"""Smooth-AP parity: pytorch-metric-learning 2.9.0 `SmoothAPLoss` and a transcription of the
official `Smooth_AP_loss.py` (Andrew-Brown1/Smooth_AP, class `SmoothAP`), on class-sorted
batches of equal class counts; values and gradients w.r.t. the raw embeddings."""
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import SmoothAPLoss

from common import loss_and_grad, t2j, write


def official_sigmoid(tensor, temp):
    # The official temperature sigmoid: exponent -x / temp clamped to [-50, 50].
    exponent = torch.clamp(-tensor / temp, min=-50, max=50)
    return 1.0 / (1.0 + torch.exp(exponent))


def official_smooth_ap(preds, anneal, num_id):
    """Transcribed from SmoothAP.forward: preds [B, D] (normalised), num_id classes of
    B / num_id samples each, sorted by class. CPU instead of .cuda()."""
    b, d = preds.shape
    group = b // num_id
    mask = (1.0 - torch.eye(b, dtype=preds.dtype)).unsqueeze(0).repeat(b, 1, 1)
    sim_all = preds @ preds.t()
    sim_all_repeat = sim_all.unsqueeze(1).repeat(1, b, 1)
    sim_diff = sim_all_repeat - sim_all_repeat.permute(0, 2, 1)
    sim_sg = official_sigmoid(sim_diff, anneal) * mask
    sim_all_rk = sim_sg.sum(-1) + 1
    xs = preds.view(num_id, group, d)
    pos_mask = (1.0 - torch.eye(group, dtype=preds.dtype)).unsqueeze(0).unsqueeze(0).repeat(num_id, group, 1, 1)
    sim_pos = torch.bmm(xs, xs.permute(0, 2, 1))
    sim_pos_repeat = sim_pos.unsqueeze(2).repeat(1, 1, group, 1)
    sim_pos_diff = sim_pos_repeat - sim_pos_repeat.permute(0, 1, 3, 2)
    sim_pos_sg = official_sigmoid(sim_pos_diff, anneal) * pos_mask
    sim_pos_rk = sim_pos_sg.sum(-1) + 1
    ap = torch.zeros(1, dtype=preds.dtype)
    for ind in range(num_id):
        sl = slice(ind * group, (ind + 1) * group)
        pos_divide = torch.sum(sim_pos_rk[ind] / sim_all_rk[sl, sl])
        ap = ap + (pos_divide / group) / b
    return (1 - ap).squeeze()


cases = []
torch.manual_seed(0)
for classes, per, dim, tau in [(4, 4, 8, 0.01), (3, 5, 6, 0.01), (2, 6, 4, 0.1), (5, 5, 16, 0.01)]:
    x = torch.randn(classes * per, dim, dtype=torch.float64)
    labels = torch.arange(classes).repeat_interleave(per)
    off, off_g = loss_and_grad(lambda e: official_smooth_ap(F.normalize(e, dim=1), tau, classes), x)
    case = {"name": f"official {classes}x{per} tau {tau}", "x": t2j(x), "labels": labels.tolist(),
            "tau": tau, "loss": off, "grad": t2j(off_g), "tol": 1e-10}
    cases.append(case)
    # pytorch-metric-learning computes in float32 (its masks and AP buffer are float32), and
    # views the batch as (B / classes) groups of `classes`: equal to the official only when
    # the class count equals the samples per class.
    if classes == per:
        pml = SmoothAPLoss(temperature=tau)
        x32 = x.float()
        v, g = loss_and_grad(lambda e: pml(e, labels), x32)
        cases.append({"name": f"pml {classes}x{per} tau {tau}", "x": t2j(x32), "labels": labels.tolist(),
                      "tau": tau, "loss": v, "grad": t2j(g), "tol": 1e-5})
    else:
        pml = SmoothAPLoss(temperature=tau)
        v = float(pml(x.float(), labels))
        print(f"pml {classes}x{per}: {v:.6f} vs official {off:.6f} (pml groups by the class count)")
write(cases)
