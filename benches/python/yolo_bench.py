"""The PyTorch-eager half of the side-by-side YOLO timing (the Rust half is
`benches/src/bin/yolo_bench.rs`, run with the same arguments).

Same work as the Rust side:
  train: Fast YOLO (darknet yolov1-tiny.cfg: 3x3 convs 16 ... 512 with 2x2 max-pools, 1024,
         256, one linear layer to 7*7*30, leaky 0.1) or the paper network, the paper's loss
         (Redmon et al. 2016, Eq. 3, vectorised over the grid: responsible = first highest
         IoU, sqrt w / h, lambda_coord 5, lambda_noobj 0.5) on five fixed boxes per image placed
         on the grid inside the step, backward, SGD 1e-3 / 0.9 / 5e-4.
  infer: a forward under torch.inference_mode (`--dtype bf16`: CUDA bf16 autocast).
The flat output is read in darknet's layout ([S*S*C][S*S*B][S*S*B*4]) as the Rust model.
Prints one JSON line.
"""
import argparse
import json

import torch
from torch import nn

from bench_common import make_sync, median, time_steps


def conv(cin, cout, k, s=1):
    return [nn.Conv2d(cin, cout, k, s, k // 2), nn.LeakyReLU(0.1)]


def fast(size, S=7, B=2, C=20):
    L, cin = [], 3
    for f in [16, 32, 64, 128, 256, 512]:
        L += conv(cin, f, 3) + [nn.MaxPool2d(2, 2)]
        cin = f
    L += conv(512, 1024, 3) + conv(1024, 256, 3)
    fm = size // 64
    L += [nn.Flatten(), nn.Linear(fm * fm * 256, S * S * (B * 5 + C))]
    return nn.Sequential(*L)


def paper(size, S=7, B=2, C=20):
    L = conv(3, 64, 7, 2) + [nn.MaxPool2d(2, 2)] + conv(64, 192, 3) + [nn.MaxPool2d(2, 2)]
    L += conv(192, 128, 1) + conv(128, 256, 3) + conv(256, 256, 1) + conv(256, 512, 3)
    L += [nn.MaxPool2d(2, 2)]
    for _ in range(4):
        L += conv(512, 256, 1) + conv(256, 512, 3)
    L += conv(512, 512, 1) + conv(512, 1024, 3) + [nn.MaxPool2d(2, 2)]
    for _ in range(2):
        L += conv(1024, 512, 1) + conv(512, 1024, 3)
    L += conv(1024, 1024, 3) + conv(1024, 1024, 3, 2) + conv(1024, 1024, 3) + conv(1024, 1024, 3)
    fm = size // 64
    L += [nn.Flatten(), nn.Linear(fm * fm * 1024, 4096), nn.LeakyReLU(0.1), nn.Dropout(0.5),
          nn.Linear(4096, S * S * (B * 5 + C))]
    return nn.Sequential(*L)


def to_cells(raw, S, B, C):
    n, L = raw.shape[0], S * S
    cls = raw[:, : L * C].reshape(n, L, C)
    conf = raw[:, L * C: L * (C + B)].reshape(n, L, B, 1)
    coords = raw[:, L * (C + B):].reshape(n, L, B, 4)
    boxes = torch.cat([coords, conf], 3).reshape(n, L, B * 5)
    return torch.cat([boxes, cls], 2).reshape(n, S, S, B * 5 + C)


def grid_targets(boxes, classes, size, S, C):
    n, m = classes.shape
    cx = (boxes[..., 0] + boxes[..., 2]) / 2 / size
    cy = (boxes[..., 1] + boxes[..., 3]) / 2 / size
    w = (boxes[..., 2] - boxes[..., 0]) / size
    h = (boxes[..., 3] - boxes[..., 1]) / size
    col = (cx * S).floor().clamp(0, S - 1)
    row = (cy * S).floor().clamp(0, S - 1)
    cell = (row * S + col).long()
    idx = torch.arange(m, device=boxes.device).expand(n, m)
    first = torch.full((n, S * S), m, dtype=torch.long, device=boxes.device)
    first = first.scatter_reduce(1, cell, idx, "amin", include_self=True)
    obj = first < m
    g = first.clamp(max=m - 1)
    pick = lambda t: t.gather(1, g)
    objf = obj.float()
    xy = torch.stack([pick(cx * S - col), pick(cy * S - row)], 2) * objf[..., None]
    wh = torch.stack([pick(w), pick(h)], 2) * objf[..., None]
    onehot = nn.functional.one_hot(pick(classes), C).float() * objf[..., None]
    return (objf.reshape(n, S, S), xy.reshape(n, S, S, 2), wh.reshape(n, S, S, 2),
            onehot.reshape(n, S, S, C))


def center_iou(a, b):
    def overlap(i, j):
        left = torch.maximum(a[..., i] - a[..., j] / 2, b[..., i] - b[..., j] / 2)
        right = torch.minimum(a[..., i] + a[..., j] / 2, b[..., i] + b[..., j] / 2)
        return right - left
    ow, oh = overlap(0, 2), overlap(1, 3)
    inter = torch.where((ow >= 0) & (oh >= 0), ow * oh, torch.zeros_like(ow))
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    safe = union > 0
    return torch.where(safe, inter / torch.where(safe, union, torch.ones_like(union)), torch.zeros_like(inter))


def yolo_loss(pred, obj, xy, wh, onehot, B):
    n, S, _, _ = pred.shape
    bx = pred[..., : B * 5].reshape(n, S, S, B, 5)
    probs = pred[..., B * 5:]
    coords, conf = bx[..., :4], bx[..., 4]
    txy, twh = xy[:, :, :, None], wh[:, :, :, None]
    with torch.no_grad():
        d = coords.detach()
        out = torch.cat([d[..., :2] / S, d[..., 2:].square()], 4)
        truth = torch.cat([txy / S, twh], 4).expand_as(out)
        iou = center_iou(out, truth)
        resp = nn.functional.one_hot(iou.argmax(3), B).to(pred.dtype) * obj[..., None]
    dxy = (coords[..., :2] - txy).square().sum(4)
    dwh = (coords[..., 2:] - twh.sqrt()).square().sum(4)
    coord = ((dxy + dwh) * resp).sum() * 5.0
    objl = ((conf - 1).square() * resp).sum()
    noobj = (conf.square() * (1 - resp)).sum() * 0.5
    cls = ((probs - onehot).square() * obj[..., None]).sum()
    return (coord + objl + noobj + cls) / n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["fast", "paper"], default="fast")
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=448)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    bf16 = a.dtype == "bf16"
    if bf16 and (a.device != "cuda" or a.mode != "infer"):
        raise SystemExit("--dtype bf16: expected --device cuda and --mode infer")
    torch.manual_seed(0)
    S, B, C = 7, 2, 20
    model = (fast if a.model == "fast" else paper)(a.size, S, B, C).to(a.device)
    x = torch.rand(a.batch, 3, a.size, a.size, device=a.device)
    sync = make_sync(a.device)
    if a.mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=bf16):
                to_cells(model(x), S, B, C)
    else:
        model.train()
        s = float(a.size)
        one = torch.tensor([[0.1, 0.1, 0.3, 0.4], [0.5, 0.5, 0.9, 0.8], [0.2, 0.6, 0.3, 0.7],
                            [0.6, 0.1, 0.95, 0.3], [0.4, 0.4, 0.45, 0.47]]) * s
        boxes = one[None].repeat(a.batch, 1, 1).to(a.device)
        classes = torch.tensor([1, 7, 3, 19, 5])[None].repeat(a.batch, 1).to(a.device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

        def step():
            pred = to_cells(model(x), S, B, C)
            t = grid_targets(boxes, classes, a.size, S, C)
            loss = yolo_loss(pred, *t, B)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    times = time_steps(step, a.warmup, a.iters, sync)
    med = median(times)
    print(json.dumps({"impl": "pytorch", "model": a.model, "batch": a.batch, "mode": a.mode,
                      "size": a.size, "device": a.device, "bf16": bf16,
                      "threads": torch.get_num_threads(), "times_s": times, "median_s": med,
                      "images_per_s": a.batch / med}))


if __name__ == "__main__":
    main()
