"""The PyTorch-eager half of the side-by-side CenterNet timing (`cargo xtask bench` runs it beside
the Rust `anchorfree_bench` binary with the same arguments and prints the ratio).

Same work as the Rust side: the official `msra_resnet.py` layout (torchvision's ResNet-18 trunk
at width 64, or the same BasicBlock trunk at another width; three ConvTranspose2d 4x4 stride 2
with BatchNorm + ReLU; heads Conv3x3 + ReLU + Conv1x1, heatmap bias -2.19), random weights, a
random batch. `train` = forward + `_neg_loss` + 0.1 `RegL1Loss` (size) + `RegL1Loss` (offset) +
backward + Adam lr 5e-4 (foreach on CPU, fused on CUDA), targets made once by the official numpy
code; `infer` = forward + sigmoid + `_nms` + `_topk` + gathers (K = 100) under inference_mode;
`targets` = the official `ctdet.py` per-object numpy block (gaussian_radius, draw_umich_gaussian)
for each image, collated into batch tensors as the default DataLoader collate does. bf16 = torch.autocast("cuda", torch.bfloat16). Prints one JSON line.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from bench_common import make_sync, median, time_steps


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.down = None
        if stride != 1 or cin != planes:
            self.down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


def trunk(width):
    if width == 64:
        r = torchvision.models.resnet18(weights=None)
        return nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)
    layers, cin = [], width
    for s in range(4):
        planes = width << s
        layers.append(nn.Sequential(BasicBlock(cin, planes, 1 if s == 0 else 2), BasicBlock(planes, planes, 1)))
        cin = planes
    return nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1), *layers)


class CenterNet(nn.Module):
    """msra_resnet.PoseResNet with heads hm / wh / reg."""

    def __init__(self, classes, width):
        super().__init__()
        self.body = trunk(width)
        layers, cin = [], 8 * width
        for c in (4 * width, 2 * width, width):
            d = nn.ConvTranspose2d(cin, c, 4, 2, 1, 0, bias=False)
            nn.init.normal_(d.weight, std=0.001)
            layers += [d, nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            cin = c
        self.deconv_layers = nn.Sequential(*layers)

        def head(out, bias):
            h = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=True), nn.ReLU(inplace=True),
                              nn.Conv2d(width, out, 1))
            if bias is None:
                nn.init.normal_(h[2].weight, std=0.001)
                nn.init.constant_(h[2].bias, 0)
            else:
                h[2].bias.data.fill_(bias)
            return h
        self.hm, self.wh, self.reg = head(classes, -2.19), head(2, None), head(2, None)

    def forward(self, x):
        x = self.deconv_layers(self.body(x))
        return self.hm(x), self.wh(x), self.reg(x)


# ---- official numpy target code (src/lib/utils/image.py, datasets/sample/ctdet.py) ------
def gaussian_radius(det_size, min_overlap=0.7):  # the corrected roots (CornerNet issue 37)
    height, width = det_size
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 - np.sqrt(b2 ** 2 - 16 * c2)) / 8
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def gaussian2D(shape, sigma=1):
    m, n = [(ss - 1.) / 2. for ss in shape]
    y, x = np.ogrid[-m:m + 1, -n:n + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def draw_umich_gaussian(heatmap, center, radius, k=1):
    diameter = 2 * radius + 1
    gaussian = gaussian2D((diameter, diameter), sigma=diameter / 6)
    x, y = int(center[0]), int(center[1])
    height, width = heatmap.shape[0:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    masked_heatmap = heatmap[y - top:y + bottom, x - left:x + right]
    masked_gaussian = gaussian[radius - top:radius + bottom, radius - left:radius + right]
    if min(masked_gaussian.shape) > 0 and min(masked_heatmap.shape) > 0:
        np.maximum(masked_heatmap, masked_gaussian * k, out=masked_heatmap)


def ctdet_targets(boxes, classes, num_classes, out_h, out_w, stride=4, max_objs=128):
    hm = np.zeros((num_classes, out_h, out_w), dtype=np.float32)
    wh = np.zeros((max_objs, 2), dtype=np.float32)
    reg = np.zeros((max_objs, 2), dtype=np.float32)
    ind = np.zeros((max_objs), dtype=np.int64)
    reg_mask = np.zeros((max_objs), dtype=np.uint8)
    for k in range(min(len(boxes), max_objs)):
        bbox = np.array(boxes[k], dtype=np.float32) / stride
        bbox[[0, 2]] = np.clip(bbox[[0, 2]], 0, out_w - 1)
        bbox[[1, 3]] = np.clip(bbox[[1, 3]], 0, out_h - 1)
        h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
        if h > 0 and w > 0:
            radius = max(0, int(gaussian_radius((math.ceil(h), math.ceil(w)))))
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], dtype=np.float32)
            ct_int = ct.astype(np.int32)
            draw_umich_gaussian(hm[classes[k]], ct_int, radius)
            wh[k] = 1. * w, 1. * h
            ind[k] = ct_int[1] * out_w + ct_int[0]
            reg[k] = ct - ct_int
            reg_mask[k] = 1
    return hm, wh, reg, ind, reg_mask


# ---- official losses and decode (models/losses.py, models/decode.py) ----------------------
def _sigmoid(x):
    return torch.clamp(x.sigmoid(), min=1e-4, max=1 - 1e-4)


def _gather(feat, ind):
    feat = feat.permute(0, 2, 3, 1).contiguous().view(feat.size(0), -1, feat.size(1))
    return feat.gather(1, ind.unsqueeze(2).expand(ind.size(0), ind.size(1), feat.size(2)))


def _neg_loss(pred, gt):
    pos_inds = gt.eq(1).float()
    neg_inds = gt.lt(1).float()
    neg_weights = torch.pow(1 - gt, 4)
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, 2) * pos_inds).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights * neg_inds).sum()
    num_pos = pos_inds.sum()
    return -neg_loss if num_pos == 0 else -(pos_loss + neg_loss) / num_pos


def reg_l1(output, mask, ind, target):
    pred = _gather(output, ind)
    mask = mask.unsqueeze(2).expand_as(pred).float()
    return F.l1_loss(pred * mask, target * mask, reduction="sum") / (mask.sum() + 1e-4)


def decode(heat, wh, reg, K=100):
    b, c, h, w = heat.shape
    heat = heat * (F.max_pool2d(heat, 3, 1, 1) == heat).float()
    s, i = torch.topk(heat.view(b, c, -1), K)
    score, j = torch.topk(s.view(b, -1), K)
    cls = j // K
    inds = i.view(b, -1).gather(1, j)
    ys, xs = (inds // w).float(), (inds % w).float()
    o, sz = _gather(reg, inds), _gather(wh, inds)
    xs, ys = xs + o[..., 0], ys + o[..., 1]
    return torch.stack([xs - sz[..., 0] / 2, ys - sz[..., 1] / 2, xs + sz[..., 0] / 2, ys + sz[..., 1] / 2], 2) * 4, score, cls


def fixed_boxes(size):
    out = []
    for i in range(20):
        f = np.float32(i / 20.0)
        x, y = np.float32((f * 7.3) % 0.8), np.float32((f * 3.1 + 0.05) % 0.8)
        w, h = np.float32(0.03 + 0.15 * ((f * 5.0) % 1.0)), np.float32(0.03 + 0.12 * ((f * 9.0) % 1.0))
        out.append([v * size for v in (x, y, x + w, y + h)])
    return np.array(out, dtype=np.float32)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--mode", choices=["train", "infer", "targets"], default="train")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--classes", type=int, default=80)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--phases", action="store_true",
                   help="train: also time forward / loss / backward / optimiser, each synchronised")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    bf16 = a.dtype == "bf16"
    boxes = fixed_boxes(a.size)
    classes = [(7 * i) % a.classes for i in range(20)]
    out = a.size // 4

    def batch_targets():
        return [ctdet_targets(boxes, classes, a.classes, out, out) for _ in range(a.batch)]

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and a.device == "cuda")

    if a.mode == "targets":
        def step():
            # The data loader's default collate: the batch tensors the training step takes.
            t = batch_targets()
            return [torch.from_numpy(np.stack([v[i] for v in t])) for i in range(5)]
        sync = lambda: None
    else:
        model = CenterNet(a.classes, a.width).to(dev)
        model.train(a.mode == "train")
        x = torch.rand(a.batch, 3, a.size, a.size, device=dev)
        sync = make_sync(a.device)
        if a.mode == "infer":
            def step():
                with torch.inference_mode(), autocast():
                    hm, wh, reg = model(x)
                    decode(_sigmoid(hm.float()), wh.float(), reg.float())
        else:
            t = batch_targets()
            hm_t = torch.tensor(np.stack([v[0] for v in t]), device=dev)
            wh_t = torch.tensor(np.stack([v[1] for v in t]), device=dev)
            reg_t = torch.tensor(np.stack([v[2] for v in t]), device=dev)
            ind_t = torch.tensor(np.stack([v[3] for v in t]), device=dev)
            mask_t = torch.tensor(np.stack([v[4] for v in t]), device=dev)
            opt = torch.optim.Adam(model.parameters(), lr=5e-4, fused=(a.device == "cuda"))

            def mark(i, t):
                if a.phases and timed[0]:
                    sync()
                    now = time.perf_counter()
                    phases[names[i]].append(now - t)
                    return now
                return t

            def step():
                t = time.perf_counter()
                with autocast():
                    hm, wh, reg = model(x)
                t = mark(0, t)
                loss = (_neg_loss(_sigmoid(hm.float()), hm_t) + 0.1 * reg_l1(wh.float(), mask_t, ind_t, wh_t)
                        + reg_l1(reg.float(), mask_t, ind_t, reg_t))
                t = mark(1, t)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                t = mark(2, t)
                opt.step()
                mark(3, t)
    names = ["forward", "loss", "backward", "optimizer"]
    phases = {k: [] for k in names}
    timed = [False]  # warm-up steps are not recorded, as the Rust half
    time_steps(step, a.warmup, 0, sync)
    timed[0] = True
    times = time_steps(step, 0, a.iters, sync)
    med = median(times)
    print(json.dumps({
        "impl": "pytorch", "reference": "msra_resnet layout, official numpy targets, torch " + torch.__version__,
        "model": a.model, "batch": a.batch, "mode": a.mode, "size": a.size, "width": a.width,
        "classes": a.classes, "device": a.device, "bf16": bf16, "threads": torch.get_num_threads(),
        "times_s": times, "median_s": med, "images_per_s": a.batch / med,
        **({"phases_s": {k: median(v) for k, v in phases.items()}} if a.phases and a.mode == "train" else {}),
    }))


if __name__ == "__main__":
    main()
