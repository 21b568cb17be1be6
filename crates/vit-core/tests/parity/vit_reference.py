"""Reference outputs of timm's VisionTransformer for the vit-core parity tests.

Usage: python vit_reference.py OUT_DIR

For each case, timm builds the model with random weights (seeded), and this writes
OUT_DIR/<case>.safetensors holding the state_dict plus `__input__` and `__logits__` (and, for
some cases, `__inter_<i>__` intermediates or `__tome_logits__`, the twin's ToMe forward), and OUT_DIR/cases.json describing each case in
vit-core's config terms. Float32, CPU.
"""
import json
import os
import sys

import torch
import timm
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

# The side-by-side twin's ToMe (benches/python/vit_bench.py): checked here against vit-core's, so
# the two halves of the ToMe bench do the same work.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "benches", "python"))
from vit_bench import tome_forward  # noqa: E402

torch.set_num_threads(max(1, os.cpu_count() or 1))

# name -> (timm kwargs, vit-core config overrides, input size, extras)
CASES = {
    "tiny_token": (dict(), dict(), 224, {}),
    "tiny_avg": (dict(global_pool="avg"), dict(global_pool="avg"), 224, {}),
    "tiny_reg4": (
        dict(reg_tokens=4, no_embed_class=True),
        dict(reg_tokens=4, no_embed_class=True),
        224,
        {},
    ),
    "tiny_ls_noqkvbias": (
        dict(init_values=1e-5, qkv_bias=False, class_token=False, global_pool="avg"),
        dict(init_values=1e-5, qkv_bias=False, class_token=False, global_pool="avg"),
        224,
        {},
    ),
    # Run-time resolution change: positions resampled inside the forward.
    "tiny_dynamic_160x288": (dict(dynamic_img_size=True), dict(), (160, 288), {}),
    # A 224 checkpoint loaded into a 288 model: pos_embed resampled at load time.
    "tiny_load_224_to_288": (dict(img_size=288), dict(img_size=[288, 288]), 288, {"from": 224}),
    # Per-block outputs as NCHW maps (no final norm).
    "tiny_intermediates": (dict(), dict(), 224, {"indices": [2, 5, 11]}),
    # Token merging, 8 tokens a block (197 -> 101), with proportional attention.
    "tiny_tome8": (dict(), dict(), 224, {"tome": 8}),
}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    meta = {}
    for i, (case, (kwargs, cfg, size, extra)) in enumerate(CASES.items()):
        torch.manual_seed(1000 + i)
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs).eval()
        # timm zero-initialises the head and biases; randomise everything so a wrong wiring
        # cannot hide behind zeros.
        with torch.no_grad():
            for name, p in model.named_parameters():
                is_norm_weight = p.ndim == 1 and name.endswith("weight")
                p.copy_(torch.randn_like(p) * 0.05 + (1.0 if is_norm_weight else 0.0))
        h, w = (size, size) if isinstance(size, int) else size
        x = torch.randn(2, 3, h, w)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if "from" in extra:
            # The file holds a 224 checkpoint; the reference model holds the resampled one.
            src = torch.randn(1, 1 + (extra["from"] // 16) ** 2, 192) * 0.05
            with torch.no_grad():
                model.pos_embed.copy_(
                    resample_abs_pos_embed(src, new_size=model.patch_embed.grid_size, num_prefix_tokens=1)
                )
            state["pos_embed"] = src.contiguous()
        with torch.no_grad():
            logits = model(x)
            tensors = dict(state)
            tensors["__input__"] = x.contiguous()
            tensors["__logits__"] = logits.contiguous()
            if "indices" in extra:
                inter = model.forward_intermediates(
                    x, indices=extra["indices"], norm=False, output_fmt="NCHW", intermediates_only=True
                )
                for j, t in zip(extra["indices"], inter):
                    tensors[f"__inter_{j}__"] = t.contiguous()
            if "tome" in extra:
                tensors["__tome_logits__"] = tome_forward(model, x, extra["tome"]).contiguous()
        save_file(tensors, os.path.join(out_dir, f"{case}.safetensors"))
        meta[case] = {"config": cfg, "extra": extra, "timm": timm.__version__, "torch": torch.__version__}
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
