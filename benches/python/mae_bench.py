"""The PyTorch-eager half of the side-by-side MAE timing (`cargo xtask bench` runs it beside the
Rust `mae_bench` binary with the same arguments and prints the ratio).

Same work as the Rust side: the official MAE forward (facebookresearch/mae `models_mae.py`:
patch embedding, per-sample random masking by argsort of noise, encoder on the visible patches,
decoder with mask tokens, loss on the removed patches) with timm's `Block` / `PatchEmbed` when
timm is installed and the same layout in plain PyTorch otherwise (the GPU machines have no timm);
random weights, a random batch; one step = forward + loss + backward + AdamW (0.9, 0.95), weight
decay 0.05 on weights only (fused on CUDA, foreach on CPU). bf16 = torch.autocast("cuda",
torch.bfloat16). Times are wall clock around each step with the device synchronised.
`--compile` wraps the model in torch.compile. Prints one JSON line.
"""
import argparse
import json
import time
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_common import make_sync, median, time_steps

try:
    from timm.models.vision_transformer import Block as TimmBlock, PatchEmbed as TimmPatchEmbed
    import timm
except ImportError:  # the GPU machines have torch but not timm
    timm = None

# name -> (img, patch, in_chans, width, depth, heads, decoder width, depth, heads); as the Rust
# presets (`MaeConfig::by_name`).
PRESETS = {
    "mae_vit_base_patch16": (224, 16, 3, 768, 12, 12, 512, 8, 16),
    "mae_vit_large_patch16": (224, 16, 3, 1024, 24, 16, 512, 8, 16),
    "mae_vit_huge_patch14": (224, 14, 3, 1280, 32, 16, 512, 8, 16),
    "mae_vit_mini_patch4_28": (28, 4, 1, 64, 4, 4, 32, 2, 4),
    "mae_vit_mini_patch4_32": (32, 4, 3, 64, 4, 4, 32, 2, 4),
}


class PlainBlock(nn.Module):
    """timm's ViT block (pre-norm, fused SDPA, GELU MLP) with timm's parameter names."""

    def __init__(self, d, heads, mlp_ratio=4.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(d, 3 * d)
        self.attn.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, int(d * mlp_ratio))
        self.mlp.fc2 = nn.Linear(int(d * mlp_ratio), d)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = x + self.attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class PlainPatchEmbed(nn.Module):
    def __init__(self, img, p, c, d):
        super().__init__()
        self.num_patches = (img // p) ** 2
        self.proj = nn.Conv2d(c, d, p, p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


def sincos(d, grid):
    """util/pos_embed.py get_2d_sincos_pos_embed with the class-token row, float64 -> float32."""
    omega = 1.0 / 10000 ** (torch.arange(d // 4, dtype=torch.float64) / (d / 4))
    gh, gw = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    def one(pos):
        out = pos.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([out.sin(), out.cos()], 1)
    emb = torch.cat([one(gw), one(gh)], 1)
    return torch.cat([torch.zeros(1, d, dtype=torch.float64), emb], 0).float().unsqueeze(0)


class MAE(nn.Module):
    def __init__(self, img, p, c, d, depth, heads, dd, ddepth, dheads, mask_ratio):
        super().__init__()
        block = (lambda dim, h: TimmBlock(dim, h, 4.0, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))) \
            if timm is not None else (lambda dim, h: PlainBlock(dim, h))
        self.patch_embed = TimmPatchEmbed(img, p, c, d) if timm is not None else PlainPatchEmbed(img, p, c, d)
        n = self.patch_embed.num_patches
        self.p, self.c, self.mask_ratio = p, c, mask_ratio
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(sincos(d, int(n ** 0.5)), requires_grad=False)
        self.blocks = nn.ModuleList([block(d, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dd) * 0.02)
        self.decoder_pos_embed = nn.Parameter(sincos(dd, int(n ** 0.5)), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([block(dd, dheads) for _ in range(ddepth)])
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, p * p * c)

    def patchify(self, imgs):
        p, c = self.p, self.c
        h = w = imgs.shape[2] // p
        x = imgs.reshape(imgs.shape[0], c, h, p, w, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(imgs.shape[0], h * w, p * p * c)

    def forward(self, imgs):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        N, L, D = x.shape
        keep = int(L * (1 - self.mask_ratio))
        noise = torch.rand(N, L, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(N, -1, -1)
        x = torch.cat([cls, x], 1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(self.norm(x))
        mask_tokens = self.mask_token.repeat(N, L + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], 1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], 1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:, :]
        loss = ((pred - self.patchify(imgs)) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mae_vit_mini_patch4_32")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--phases", action="store_true", help="also time forward / backward / optimiser, each synchronised")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    img, patch, c, *rest = PRESETS[a.model]
    model = MAE(img, patch, c, *rest, a.mask_ratio).to(dev).train()
    decay = [q for n, q in model.named_parameters() if q.requires_grad and q.ndim > 1 and "token" not in n]
    no_decay = [q for n, q in model.named_parameters() if q.requires_grad and not (q.ndim > 1 and "token" not in n)]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1.5e-4, betas=(0.9, 0.95), fused=(a.device == "cuda"))
    fwd = torch.compile(model) if a.compile else model
    x = torch.randn(a.batch, c, img, img, device=dev)
    bf16 = a.dtype == "bf16" and a.device == "cuda"

    sync = make_sync(a.device)
    phases = {"forward": [], "backward": [], "optimizer": []}

    def step():
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = fwd(x)
        if a.phases:
            sync()
            t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.phases:
            sync()
            t2 = time.perf_counter()
        opt.step()
        if a.phases:
            sync()
            t3 = time.perf_counter()
            for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
                phases[k].append(v)

    times = time_steps(step, a.warmup, a.iters, sync)
    med = median(times)
    phases_s = {k: median(v) for k, v in phases.items() if v}
    reference = ("timm " + timm.__version__) if timm is not None else "plain PyTorch (timm's layout, no timm installed)"
    print(json.dumps({
        "impl": "pytorch" + ("-compile" if a.compile else ""), "reference": reference, "model": a.model,
        "batch": a.batch, "mask_ratio": a.mask_ratio, "mode": "train", "device": a.device, "bf16": bf16,
        "threads": torch.get_num_threads(), "times_s": times, "median_s": med, "images_per_s": a.batch / med,
        **({"phases_s": phases_s} if a.phases else {}),
    }))


if __name__ == "__main__":
    main()
