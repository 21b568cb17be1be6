"""The PyTorch-eager half of the side-by-side det-pyramid timing (the Rust half is
`benches/src/bin/det_pyramid_bench.rs`, run with the same arguments).

Same work as the Rust side, with torchvision:
  fpn:   ResNet (torchvision resnet50/resnet18, `--width` scales its channels as the Rust
         `ResNetConfig::small`) + FeaturePyramidNetwork over C2-C5 with LastLevelMaxPool,
         4 x width channels, a forward under torch.inference_mode.
  train: torchvision's RetinaNet head and losses on ResNet + FPN P3-P7 (LastLevelP6P7 from P5,
         as `retinanet_resnet50_fpn`), 91 classes, no resizing (the transform's min/max size is
         the input size), five fixed boxes per image, backward, SGD 0.01 / 0.9 / 1e-4.
BatchNorm trainable (no pre-trained weights). `--dtype bf16` wraps the step in
torch.autocast("cuda", torch.bfloat16) and needs `--device cuda`. Prints one JSON line.
"""
import argparse
import json
from collections import OrderedDict

import torch
import torchvision
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops.feature_pyramid_network import (
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from bench_common import make_sync, median, time_steps


def trunk(model, width):
    kw = {} if width == 64 else {"width_per_group": width}
    if width != 64:
        # torchvision has no stem-width option: patch the base width as ResNetConfig::small.
        import torchvision.models.resnet as R

        class Narrow(R.ResNet):
            def __init__(self, block, layers):
                self_inplanes = width
                nn.Module.__init__(self)
                self._norm_layer = nn.BatchNorm2d
                self.inplanes = width
                self.dilation = 1
                self.groups = 1
                self.base_width = 64
                self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
                self.bn1 = nn.BatchNorm2d(width)
                self.relu = nn.ReLU(inplace=True)
                self.maxpool = nn.MaxPool2d(3, 2, 1)
                self.layer1 = self._make_layer(block, width, layers[0])
                self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
                self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
                self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)

        block, layers = (R.Bottleneck, [3, 4, 6, 3]) if model == "r50" else (R.BasicBlock, [2, 2, 2, 2])
        return Narrow(block, layers)
    return getattr(torchvision.models, {"r50": "resnet50", "r18": "resnet18"}[model])(weights=None, **kw)


class Body(nn.Module):
    def __init__(self, net, first):
        super().__init__()
        self.net, self.first = net, first

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        out = OrderedDict()
        for i, layer in enumerate([n.layer1, n.layer2, n.layer3, n.layer4]):
            x = layer(x)
            if i + 2 >= self.first:
                out[str(i)] = x
        return out


class Backbone(nn.Module):
    def __init__(self, model, width, first, extra):
        super().__init__()
        net = trunk(model, width)
        e = 4 if model == "r50" else 1
        chans = [width * m * e for m in [1, 2, 4, 8]][first - 2:]
        self.body = Body(net, first)
        self.fpn = FeaturePyramidNetwork(chans, 4 * width, extra_blocks=extra)
        self.out_channels = 4 * width

    def forward(self, x):
        return self.fpn(self.body(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="r50")
    p.add_argument("--mode", choices=["fpn", "train"], default="fpn")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.dtype == "bf16" and a.device != "cuda":
        p.error(f"--dtype bf16: expected --device cuda (CUDA bf16 autocast), got {a.device}; "
                "run the CPU comparison with --dtype f32")
    bf16 = a.dtype == "bf16"
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = a.device
    x = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    sync = make_sync(dev)
    if a.mode == "fpn":
        m = Backbone(a.model, a.width, 2, LastLevelMaxPool()).to(dev).eval()

        def step():
            with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=bf16):
                m(x)
    else:
        d = 4 * a.width
        bb = Backbone(a.model, a.width, 3, LastLevelP6P7(d, d)).to(dev)
        sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in [32, 64, 128, 256, 512])
        anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
        model = RetinaNet(bb, 91, min_size=a.size, max_size=a.size, anchor_generator=anchors).to(dev).train()
        rel = torch.tensor([[0.1, 0.1, 0.3, 0.4], [0.5, 0.5, 0.9, 0.8], [0.2, 0.6, 0.3, 0.7],
                            [0.6, 0.1, 0.95, 0.3], [0.4, 0.4, 0.45, 0.47]], device=dev) * a.size
        labels = torch.tensor([1, 7, 3, 20, 55], device=dev)
        targets = [{"boxes": rel, "labels": labels} for _ in range(a.batch)]
        images = list(x)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

        def step():
            with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
                losses = model(images, targets)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    times = time_steps(step, a.warmup, a.iters, sync)
    med = median(times)
    print(json.dumps({"impl": "pytorch", "model": a.model, "batch": a.batch, "mode": a.mode,
                      "size": a.size, "device": dev, "bf16": a.dtype == "bf16",
                      "threads": torch.get_num_threads(), "times_s": times, "median_s": med,
                      "images_per_s": a.batch / med, "torch": torch.__version__,
                      "torchvision": torchvision.__version__}))


if __name__ == "__main__":
    main()
