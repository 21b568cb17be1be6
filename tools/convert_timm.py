"""Convert a timm ViT or a `.pth` state_dict to safetensors for vit-core.

  python tools/convert_timm.py --model vit_base_patch16_224 [--pretrained] --out vit_b16.safetensors
  python tools/convert_timm.py --pth checkpoint.pth [--key model] --out weights.safetensors

With --model, timm builds the model (with its pretrained weights when --pretrained is given and
they are in timm's cache or downloadable) and a vit-core config is written beside the weights
(`<out>.json`, load it as `ViTConfig`). With --pth, the state_dict is read on the CPU
(`weights_only=True`); a checkpoint dict holding it under `model`, `state_dict` or `--key` is
unwrapped, a leading `module.` (DataParallel) is stripped, and non-tensor entries are dropped.
Names are kept as they are: vit-core uses timm's. Load in Rust with
`VisionTransformer::load_safetensors`, which reports missing and unexpected tensors.
"""
import argparse
import json
import sys

import torch
from safetensors.torch import save_file


def unwrap(obj, key):
    for k in ([key] if key else []) + ["model", "state_dict", "module"]:
        if isinstance(obj, dict) and k in obj and isinstance(obj[k], dict):
            return obj[k]
    return obj


def vit_core_config(model):
    """The vit-core ViTConfig fields of a timm VisionTransformer."""
    pe = model.patch_embed
    blk = model.blocks[0] if len(model.blocks) else None
    cfg = {
        "img_size": list(pe.img_size),
        "patch_size": pe.patch_size[0],
        "in_chans": pe.proj.in_channels,
        "num_classes": model.num_classes,
        "embed_dim": model.embed_dim,
        "depth": len(model.blocks),
        "num_heads": blk.attn.num_heads if blk else 1,
        "mlp_ratio": blk.mlp.fc1.out_features / model.embed_dim if blk else 4.0,
        "qkv_bias": blk is not None and blk.attn.qkv.bias is not None,
        "class_token": model.cls_token is not None,
        "reg_tokens": model.num_reg_tokens,
        "no_embed_class": model.no_embed_class,
        "global_pool": {"token": "token", "avg": "avg", "": "none"}[model.global_pool],
        "fc_norm": not isinstance(model.fc_norm, torch.nn.Identity),
        "init_values": (float(blk.ls1.gamma.detach().mean()) if blk is not None and hasattr(blk.ls1, "gamma") else None),
    }
    if cfg["global_pool"] not in ("token", "avg", "none"):
        sys.exit(f"global_pool {model.global_pool!r} has no vit-core equivalent")
    return cfg


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a timm model name, e.g. vit_base_patch16_224")
    src.add_argument("--pth", help="a .pth/.pt file holding a state_dict or a checkpoint dict")
    p.add_argument("--pretrained", action="store_true", help="with --model: timm's pretrained weights")
    p.add_argument("--key", help="with --pth: the checkpoint key holding the state_dict")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    if a.model:
        import timm

        model = timm.create_model(a.model, pretrained=a.pretrained)
        state = model.state_dict()
        with open(a.out + ".json", "w") as f:
            json.dump(vit_core_config(model), f, indent=1)
    else:
        state = unwrap(torch.load(a.pth, map_location="cpu", weights_only=True), a.key)
        if not isinstance(state, dict):
            sys.exit(f"{a.pth}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
    tensors = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        k = k[len("module."):] if k.startswith("module.") else k
        tensors[k] = v.detach().to("cpu").contiguous()
    if not tensors:
        sys.exit("no tensors found")
    save_file(tensors, a.out)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {a.out}: {len(tensors)} tensors, {n:,} elements" + (f"; config {a.out}.json" if a.model else ""))


if __name__ == "__main__":
    main()
