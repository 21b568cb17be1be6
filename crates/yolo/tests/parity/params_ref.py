"""Independent PyTorch definitions of the YOLO v1 networks, written from the sources, for
their parameter counts and output shapes.

- paper: Redmon et al. 2016, Fig. 3, and darknet's 2016 cfg/yolo.cfg: 24 convolutions
  (biases, no batch norm, leaky 0.1), FC 4096, dropout 0.5, FC 7*7*30 = 1470.
- fast: darknet cfg/yolov1-tiny.cfg: 3x3 convolutions 16, 32, 64, 128, 256, 512 each with a
  2x2 max-pool, then 1024 and 256, then one connected layer to 1470.

The paper network is built on the meta device (shapes without memory or compute). Writes
params_ref.json into the folder given as the first argument.
"""
import json
import sys

import torch
from torch import nn


def conv(cin, cout, k, s=1):
    return [nn.Conv2d(cin, cout, k, s, k // 2, bias=True), nn.LeakyReLU(0.1)]


def paper():
    L = []
    L += conv(3, 64, 7, 2) + [nn.MaxPool2d(2, 2)]
    L += conv(64, 192, 3) + [nn.MaxPool2d(2, 2)]
    L += conv(192, 128, 1) + conv(128, 256, 3) + conv(256, 256, 1) + conv(256, 512, 3)
    L += [nn.MaxPool2d(2, 2)]
    for _ in range(4):
        L += conv(512, 256, 1) + conv(256, 512, 3)
    L += conv(512, 512, 1) + conv(512, 1024, 3) + [nn.MaxPool2d(2, 2)]
    for _ in range(2):
        L += conv(1024, 512, 1) + conv(512, 1024, 3)
    L += conv(1024, 1024, 3) + conv(1024, 1024, 3, 2) + conv(1024, 1024, 3) + conv(1024, 1024, 3)
    L += [nn.Flatten(), nn.Linear(7 * 7 * 1024, 4096), nn.LeakyReLU(0.1), nn.Dropout(0.5),
          nn.Linear(4096, 7 * 7 * 30)]
    return nn.Sequential(*L)


def fast():
    L = []
    cin = 3
    for f in [16, 32, 64, 128, 256, 512]:
        L += conv(cin, f, 3) + [nn.MaxPool2d(2, 2)]
        cin = f
    L += conv(512, 1024, 3) + conv(1024, 256, 3)
    L += [nn.Flatten(), nn.Linear(7 * 7 * 256, 7 * 7 * 30)]
    return nn.Sequential(*L)


def main():
    out = {}
    for name, make in [("paper", paper), ("fast", fast)]:
        with torch.device("meta"):
            m = make().eval()
            y = m(torch.empty(1, 3, 448, 448))
        out[name] = {
            "parameters": sum(p.numel() for p in m.parameters()),
            "convs": sum(isinstance(l, nn.Conv2d) for l in m),
            "output": list(y.shape),
        }
    with open(f"{sys.argv[1]}/params_ref.json", "w") as f:
        json.dump(out, f)
    print(out)


if __name__ == "__main__":
    main()
