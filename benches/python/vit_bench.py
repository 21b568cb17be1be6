"""The PyTorch-eager half of the side-by-side ViT timing (`cargo xtask bench` runs it beside the
Rust `vit_bench` binary with the same arguments and prints the ratio).

Same work as the Rust side: timm's model (or, where timm is not installed, the same layout in
plain PyTorch) with random weights, a random batch, `infer` = a
forward under torch.inference_mode, `train` = forward + cross-entropy + backward + AdamW step
(fused on CUDA, foreach on CPU). bf16 = torch.autocast("cuda", torch.bfloat16). Times are wall
clock around each iteration with the device synchronised. `--compile` wraps the model in
torch.compile (the GPU issue asks for the distance to it). `--tome R` (infer, timm models)
merges R tokens per block as Token Merging does (Bolya et al. 2022, facebookresearch/ToMe:
bipartite soft matching on the keys averaged over heads, size-weighted merge between attention
and MLP, proportional attention); like the Rust side, the class token is set aside before the
matching rather than masked out of the scores. Prints one JSON line.
"""
import argparse
import json

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_common import make_sync, median, time_steps

try:
    import timm
except ImportError:  # the GPU machines have torch but not timm
    timm = None

# (width, depth, heads) of timm's presets, for the timm-free fallback.
SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16), "huge": (1280, 32, 16)}


class Block(nn.Module):
    """timm's ViT block (pre-norm, fused SDPA, GELU MLP), for machines without timm."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PlainViT(nn.Module):
    def __init__(self, name):
        super().__init__()
        size, patch, img = name.split("_")[1], int(name.split("_")[2][5:]), int(name.split("_")[3])
        d, depth, heads = SIZES[size]
        self.img_size = (img, img)
        self.proj = nn.Conv2d(3, d, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, 1000)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def bipartite_merge(x, size, metric, r):
    """One ToMe merge of the patch tokens `x` [B, T, C] (sizes [B, T, 1], metric [B, T, c]):
    the r A tokens (even) most similar to a B token (odd) are averaged into it, weighted by size."""
    t = x.shape[1]
    r = min(r, t // 2)
    if r <= 0:
        return x, size
    with torch.no_grad():
        m = metric / metric.norm(dim=-1, keepdim=True)
        scores = m[:, ::2] @ m[:, 1::2].transpose(-1, -2)
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
        unm_idx, src_idx = edge_idx[:, r:], edge_idx[:, :r]
        dst_idx = node_idx[..., None].gather(1, src_idx)

    def merge(v):
        src, dst = v[:, ::2], v[:, 1::2]
        n, t1, c = src.shape
        unm = src.gather(1, unm_idx.expand(n, t1 - r, c))
        src = src.gather(1, src_idx.expand(n, r, c))
        dst = dst.scatter_add(1, dst_idx.expand(n, r, c), src)
        return torch.cat([unm, dst], 1)

    merged, s_new = merge(x * size), merge(size)
    return merged / s_new, s_new


def tome_forward(model, x, r):
    """timm ViT forward with ToMe in every block (r tokens merged per block)."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    prefix = model.num_prefix_tokens
    size = torch.ones(x.shape[0], x.shape[1], 1, dtype=x.dtype, device=x.device)
    for blk in model.blocks:
        attn = blk.attn
        b, n, c = x.shape
        h = attn.num_heads
        qkv = attn.qkv(blk.norm1(x)).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        bias = size.log().view(b, 1, 1, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        x = x + blk.ls1(attn.proj(out.transpose(1, 2).reshape(b, n, c)))
        metric = k.mean(1)
        xp, xt = x[:, :prefix], x[:, prefix:]
        merged, s_new = bipartite_merge(xt, size[:, prefix:], metric[:, prefix:], r)
        x = torch.cat([xp, merged.to(x.dtype)], 1)
        size = torch.cat([size[:, :prefix], s_new], 1)
        x = x + blk.ls2(blk.mlp(blk.norm2(x)))
    return model.forward_head(model.norm(x))


def create(name):
    if timm is not None:
        m = timm.create_model(name, pretrained=False)
        return m, tuple(m.patch_embed.img_size), "timm " + timm.__version__
    m = PlainViT(name)
    return m, m.img_size, "plain PyTorch (timm's layout, no timm installed)"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="vit_small_patch16_224")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--mode", choices=["infer", "train"], default="infer")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--tome", type=int, default=0, help="ToMe: tokens merged per block (infer, timm models)")
    a = p.parse_args()
    if a.tome and (a.mode != "infer" or timm is None or a.compile):
        p.error("--tome needs --mode infer, timm installed and no --compile")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model, (h, w), reference = create(a.model)
    model = model.to(dev)
    model.train(a.mode == "train")
    if a.compile:
        model = torch.compile(model)
    x = torch.randn(a.batch, 3, h, w, device=dev)
    y = torch.randint(0, 1000, (a.batch,), device=dev)
    bf16 = a.dtype == "bf16"
    opt = None
    if a.mode == "train":
        decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "token" not in n and "pos_embed" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "token" not in n and "pos_embed" not in n)]
        groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=1e-3, fused=(a.device == "cuda"))

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and a.device == "cuda")

    def step():
        if opt is None:
            with torch.inference_mode(), autocast():
                tome_forward(model, x, a.tome) if a.tome else model(x)
        else:
            with autocast():
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    sync = make_sync(a.device)

    times = time_steps(step, a.warmup, a.iters, sync)
    med = median(times)
    print(json.dumps({
        "impl": "pytorch" + ("-compile" if a.compile else ""), "reference": reference, "model": a.model, "batch": a.batch,
        "mode": a.mode, "device": a.device, "bf16": bf16, "threads": torch.get_num_threads(), "tome_r": a.tome,
        "times_s": times, "median_s": med, "images_per_s": a.batch / med,
    }))


if __name__ == "__main__":
    main()
