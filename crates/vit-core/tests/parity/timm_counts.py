"""Parameter counts and matmul MACs of timm's ViT presets: vit-core's reference/timm_counts.json.

Usage: python timm_counts.py [OUT.json]   (default: print to stdout)

Models are built on the meta device (no memory, no weights). MACs are
torch.utils.flop_counter.FlopCounterMode's FLOPs / 2 for one 224x224 image: convolution, linear
layers and the attention matmuls (timm's fused scaled_dot_product_attention is counted).
"""
import json
import sys

import torch
import timm
from torch.utils.flop_counter import FlopCounterMode

from timm.models.vision_transformer import VisionTransformer

# (width, depth, heads): timm's vit_{tiny,small,base,large,huge}_* definitions, MLP ratio 4.
SIZES = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
PATCHES = [14, 16, 32]


def main():
    out = {"timm": timm.__version__, "torch": torch.__version__, "models": {}}
    for size, (dim, depth, heads) in SIZES.items():
        for patch in PATCHES:
            name = f"vit_{size}_patch{patch}_224"
            with torch.device("meta"):
                model = VisionTransformer(
                    img_size=224, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                    mlp_ratio=4.0, num_classes=1000,
                ).eval()
                params = sum(p.numel() for p in model.state_dict().values())
                x = torch.empty(1, 3, 224, 224)
                with FlopCounterMode(display=False) as fc:
                    model(x)
            out["models"][name] = {"params": params, "macs": fc.get_total_flops() // 2}
    text = json.dumps(out, indent=1, sort_keys=True)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
