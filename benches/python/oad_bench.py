"""The PyTorch-eager half of the side-by-side OadTR timing (the Rust `oad_bench` binary does the
same work with the same arguments).

The model is the official `VisionTransformer_v3` (wangxiang1230/OadTR `transformer_models/`),
written compactly with the same modules and order of operations: explicit softmax attention in
the encoder (`Attention.py`) and the decoder (`attn.py` `FullAttention`, causal self-attention),
Conv1d(1) feed-forward in the decoder. `train` = forward + the official soft-target loss (1.0
current + 0.5 anticipation, class 21 ignored) + backward + clip 1.0 + AdamW (foreach on CPU,
fused on CUDA). `stream` = one live frame done the way the Rust side does it: project one feature
into a ring buffer of projected frames, run the encoder and decoder on the window (the official
code has no live path; re-running the window would add the 64-row projection). Prints one JSON
line. `--dtype bf16` wraps the forward and the loss in CUDA bf16 autocast (refused on the CPU).
"""
import argparse
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_common import make_sync, median, time_steps

CONFIGS = {
    # feature, enc_steps, classes, d, heads, layers, hidden, queries, dec_layers, dec_heads, d_ff
    "thumos_tsn": (3072, 64, 22, 1024, 8, 3, 1024, 8, 5, 4, 1024),
    "thumos_kinetics": (4096, 64, 22, 1024, 8, 3, 1024, 8, 5, 4, 1024),
    "small": (30, 32, 8, 64, 4, 2, 128, 4, 2, 2, 128),
}


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, hidden, p=0.1):
        super().__init__()
        self.heads, self.p = heads, p
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(p), nn.Linear(hidden, d), nn.Dropout(p))

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.dropout(((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1), self.p, self.training)
        a = F.dropout(F.dropout(self.proj((a @ v).transpose(1, 2).reshape(b, n, c)), self.p, self.training), self.p, self.training)
        x = x + a
        return x + self.ffn(self.norm2(x))


class Attention(nn.Module):
    def __init__(self, d, heads, causal, p):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.heads, self.causal, self.p = heads, causal, p

    def forward(self, x, mem):
        b, l, _ = x.shape
        s, h = mem.shape[1], self.heads
        q, k, v = self.q(x).view(b, l, h, -1), self.k(mem).view(b, s, h, -1), self.v(mem).view(b, s, h, -1)
        scores = torch.einsum("blhe,bshe->bhls", q, k)
        if self.causal:
            scores.masked_fill_(torch.triu(torch.ones(l, l, dtype=torch.bool, device=x.device), 1), -math.inf)
        a = F.dropout(torch.softmax(scores / math.sqrt(q.shape[-1]), -1), self.p, self.training)
        return self.o(torch.einsum("bhls,bshd->blhd", a, v).contiguous().view(b, l, -1))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, d_ff, p=0.1):
        super().__init__()
        self.sa, self.ca = Attention(d, heads, True, p), Attention(d, heads, False, p)
        self.conv1, self.conv2 = nn.Conv1d(d, d_ff, 1), nn.Conv1d(d_ff, d, 1)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(p)

    def forward(self, x, mem):
        x = self.norm1(x + self.drop(self.sa(x, x)))
        x = self.norm2(x + self.drop(self.ca(x, mem)))
        y = self.drop(F.gelu(self.conv1(x.transpose(-1, 1))))
        y = self.drop(self.conv2(y).transpose(-1, 1))
        return self.norm3(x + y)


class OadTR(nn.Module):
    def __init__(self, feature, enc_steps, classes, d, heads, layers, hidden, queries, dec_layers, dec_heads, d_ff):
        super().__init__()
        self.linear_encoding = nn.Linear(feature, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pe = nn.Embedding(enc_steps + 1, d)
        self.encoder = nn.Sequential(*[EncoderLayer(d, heads, hidden) for _ in range(layers)])
        self.pre_head_ln = nn.LayerNorm(d)
        self.decoder = nn.ModuleList([DecoderLayer(d, dec_heads, d_ff) for _ in range(dec_layers)])
        self.dec_norm = nn.LayerNorm(d)
        self.decoder_cls_token = nn.Parameter(torch.zeros(1, queries, d))
        self.classifier = nn.Linear(d, classes)
        self.mlp_head = nn.Linear(2 * d, classes)

    def forward_tokens(self, x):
        x = torch.cat((x, self.cls_token.expand(x.shape[0], -1, -1)), 1) + self.pe.weight
        x = self.pre_head_ln(self.encoder(F.dropout(x, 0.1, self.training)))
        dec = self.decoder_cls_token.expand(x.shape[0], -1, -1)
        for layer in self.decoder:
            dec = layer(dec, x)
        dec = F.dropout(self.dec_norm(dec), 0.1, self.training)
        return self.mlp_head(torch.cat((x[:, -1], dec.mean(1)), 1)), self.classifier(dec)

    def forward(self, x):
        return self.forward_tokens(self.linear_encoding(x))


def soft_ce(logits, target, ignore=21):
    if ignore < 0:
        return torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
    keep = [i for i in range(target.shape[-1]) if i != ignore]
    out = torch.sum(-target[:, keep] * F.log_softmax(logits[:, keep], 1), 1)
    if out.sum() == 0:
        return out.sum() * 0
    return out[target[:, ignore] != 1].mean()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="thumos_tsn", choices=list(CONFIGS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--mode", choices=["train", "stream"], default="train")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    if a.dtype == "bf16" and a.device != "cuda":
        p.error(f"--dtype bf16: expected --device cuda (CUDA bf16 autocast), got {a.device}; "
                "run the CPU comparison with --dtype f32")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    cfg = CONFIGS[a.model]
    feature, enc_steps, classes, d, queries = cfg[0], cfg[1], cfg[2], cfg[3], cfg[7]
    ignore = 21 if classes == 22 else -1
    model = OadTR(*cfg).to(dev)
    bf16 = a.dtype == "bf16"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)

    if a.mode == "train":
        model.train()
        x = torch.randn(a.batch, enc_steps, feature, device=dev)
        cur = F.one_hot(torch.randint(0, classes, (a.batch,), device=dev), classes).float()
        fut = F.one_hot(torch.randint(0, classes, (a.batch, queries), device=dev), classes).float()
        decay = [q for n, q in model.named_parameters() if q.ndim > 1 and "token" not in n]
        no_decay = [q for n, q in model.named_parameters() if not (q.ndim > 1 and "token" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-4, fused=(a.device == "cuda"))

        def step():
            with autocast():
                current, future = model(x)
                loss = soft_ce(current.float(), cur, ignore) + 0.5 * soft_ce(future.float().reshape(-1, classes), fut.reshape(-1, classes), ignore)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    else:
        model.eval()
        feats = torch.randn(4096, feature, device=dev)
        with torch.inference_mode():
            ring = model.linear_encoding(torch.zeros(1, feature, device=dev)).repeat(2 * enc_steps, 1)
        state = {"slot": 0, "i": 0}

        def step():
            with torch.inference_mode(), autocast():
                row = model.linear_encoding(feats[state["i"] % 4096].view(1, feature))
                s = state["slot"]
                ring[s:s + 1].copy_(row)
                ring[s + enc_steps:s + enc_steps + 1].copy_(row)
                state["slot"] = (s + 1) % enc_steps
                state["i"] += 1
                model.forward_tokens(ring[state["slot"]:state["slot"] + enc_steps].unsqueeze(0))

    sync = make_sync(a.device)
    times = time_steps(step, a.warmup, a.iters, sync)
    print(json.dumps({
        "impl": "pytorch", "reference": "official OadTR VisionTransformer_v3, transcribed", "model": a.model,
        "batch": a.batch, "mode": a.mode, "device": a.device, "bf16": bf16, "threads": torch.get_num_threads(),
        "times_s": times, "median_s": median(times),
        "params": sum(q.numel() for q in model.parameters()),
    }))


if __name__ == "__main__":
    main()
