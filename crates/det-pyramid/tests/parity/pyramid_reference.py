"""Reference outputs of torchvision for the det-pyramid parity tests.

Usage: python pyramid_reference.py OUT_DIR

Writes OUT_DIR/<case>.safetensors (the module's state_dict plus `__`-named inputs and outputs)
and OUT_DIR/cases.json describing each case. Float32, CPU, seeded.
  resnet18 / resnet50: torchvision's trunk (eval mode, random BatchNorm statistics), C2-C5.
  fpn_maxpool / fpn_p6p7_c5 / fpn_p6p7_p5: FeaturePyramidNetwork with LastLevelMaxPool /
    LastLevelP6P7 (from C5, and from P5) on odd-sized maps.
  anchors: AnchorGenerator for RetinaNet's sizes and ratios on an image batch and its maps.
  focal: torchvision.ops.sigmoid_focal_loss (none / sum / mean).
"""
import json
import os
import sys
from collections import OrderedDict

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import sigmoid_focal_loss
from torchvision.ops.feature_pyramid_network import (
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)
from torchvision.models.detection.image_list import ImageList

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def randomise(model):
    """Random weights and BatchNorm statistics, so a wrong wiring cannot hide."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn_like(b))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand_like(b))


def save(out_dir, case, state, extra):
    tensors = {k: v.contiguous() for k, v in state.items()}
    tensors.update({k: v.contiguous() for k, v in extra.items()})
    save_file(tensors, os.path.join(out_dir, f"{case}.safetensors"))


def trunk(out_dir, meta, name, size, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None).eval()
    randomise(model)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        c2 = model.layer1(h)
        c3 = model.layer2(c2)
        c4 = model.layer3(c3)
        c5 = model.layer4(c4)
    save(out_dir, name, model.state_dict(),
         {"__input__": x, "__c2__": c2, "__c3__": c3, "__c4__": c4, "__c5__": c5})
    meta[name] = {"depth": name}


def fpn(out_dir, meta, case, extra_blocks, in_channels, out_channels, from_p5, seed):
    torch.manual_seed(seed)
    model = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=extra_blocks).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    sizes = [(33, 31), (17, 16), (9, 8), (5, 4)][: len(in_channels)]
    xs = OrderedDict((f"c{i}", torch.randn(2, c, h, w)) for i, (c, (h, w)) in enumerate(zip(in_channels, sizes)))
    with torch.no_grad():
        out = model(xs)
    extra = {f"__in{i}__": v for i, v in enumerate(xs.values())}
    extra.update({f"__out{i}__": v for i, v in enumerate(out.values())})
    save(out_dir, case, model.state_dict(), extra)
    meta[case] = {"in_channels": in_channels, "out_channels": out_channels,
                  "top": "maxpool" if isinstance(extra_blocks, LastLevelMaxPool) else "p6p7",
                  "from_p5": from_p5, "outputs": len(out)}


def anchors(out_dir, meta):
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in [32, 64, 128, 256, 512])
    ratios = ((0.5, 1.0, 2.0),) * len(sizes)
    gen = AnchorGenerator(sizes, ratios)
    image = torch.zeros(2, 3, 512, 480)
    maps = [torch.zeros(2, 8, 512 // s, -(-480 // s)) for s in [8, 16, 32, 64, 128]]
    out = gen(ImageList(image, [(512, 480)] * 2), maps)
    save(out_dir, "anchors", {}, {"__anchors__": out[0],
                                  **{f"__map{i}__": torch.tensor(m.shape[-2:]) for i, m in enumerate(maps)}})
    meta["anchors"] = {"sizes": [list(map(float, s)) for s in sizes], "ratios": [list(r) for r in ratios],
                       "image": [512, 480]}


def focal(out_dir, meta):
    torch.manual_seed(7)
    x = torch.randn(64, 5) * 3
    t = (torch.rand(64, 5) < 0.2).float()
    out = {"__inputs__": x, "__targets__": t}
    for red in ["none", "sum", "mean"]:
        out[f"__{red}__"] = sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction=red)
    out["__none_a-1_g1.5__"] = sigmoid_focal_loss(x, t, alpha=-1, gamma=1.5, reduction="none")
    save(out_dir, "focal", {}, out)
    meta["focal"] = {}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    meta = {}
    trunk(out_dir, meta, "resnet18", (64, 96), 1)
    trunk(out_dir, meta, "resnet50", (64, 64), 2)
    fpn(out_dir, meta, "fpn_maxpool", LastLevelMaxPool(), [16, 24, 32, 40], 8, False, 3)
    fpn(out_dir, meta, "fpn_p6p7_c5", LastLevelP6P7(40, 8), [16, 24, 40], 8, False, 4)
    fpn(out_dir, meta, "fpn_p6p7_p5", LastLevelP6P7(8, 8), [16, 24, 40], 8, True, 5)
    anchors(out_dir, meta)
    focal(out_dir, meta)
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
