"""Reference outputs for oad-transformer's parity tests (`tests/parity.rs`).

A transcription of the official OadTR (wangxiang1230/OadTR: `transformer_models/ViT.py`
`VisionTransformer_v3`, `Transformer.py`, `Attention.py`, `decoder.py`, `attn.py`
`FullAttention`/`AttentionLayer`, `PositionalEncoding.py` `LearnedPositionalEncoding`), its loss
(`util/loss.py` `SetCriterion.loss_labels`) and its evaluation (`utils.py`
`frame_level_map_n_cap`), written out here because the official repository is not a package.
Writes into the folder given as argv[1]:

- model.safetensors: a small OadTR's weights (official names, random task token and queries),
  a batch of windows `x` and the eval-mode outputs `current` / `future`;
- loss.safetensors: logits and soft targets with ambiguous rows, and the official loss;
- eval.safetensors + eval.json: scores and labels with and without ties, and the official mAP /
  cAP per class, sklearn's average_precision_score on the tie-free case;
- counts.json: `sum(p.numel() for p in model.parameters())` of the official model at the
  THUMOS'14 settings (TSN-ANet 3072-d and Kinetics 4096-d), as `main.py` logs it.
"""
import json
import sys
from math import sqrt
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.metrics import average_precision_score

out = sys.argv[1]
torch.manual_seed(0)
torch.set_num_threads(2)


# ----------------------------------------------------------------- the official model, transcribed
class SelfAttention(nn.Module):
    def __init__(self, dim, heads=8, qkv_bias=False, dropout_rate=0.0):
        super().__init__()
        self.num_heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(dropout_rate)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout_rate)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class PreNormDrop(nn.Module):
    def __init__(self, dim, dropout_rate, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(p=dropout_rate)
        self.fn = fn

    def forward(self, x):
        return self.dropout(self.fn(self.norm(x)))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim, dropout_rate):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(p=dropout_rate),
                                 nn.Linear(hidden_dim, dim), nn.Dropout(p=dropout_rate))

    def forward(self, x):
        return self.net(x)


class TransformerModel(nn.Module):
    def __init__(self, dim, depth, heads, mlp_dim, dropout_rate=0.1, attn_dropout_rate=0.1):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers.extend([
                Residual(PreNormDrop(dim, dropout_rate, SelfAttention(dim, heads=heads, dropout_rate=attn_dropout_rate))),
                Residual(PreNorm(dim, FeedForward(dim, mlp_dim, dropout_rate))),
            ])
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class FullAttention(nn.Module):
    def __init__(self, mask_flag=True, attention_dropout=0.1):
        super().__init__()
        self.mask_flag = mask_flag
        self.dropout = nn.Dropout(attention_dropout)

    def forward(self, queries, keys, values):
        B, L, H, E = queries.shape
        scores = torch.einsum("blhe,bshe->bhls", queries, keys)
        if self.mask_flag:
            mask = torch.triu(torch.ones([B, 1, L, L], dtype=torch.bool), diagonal=1)
            scores.masked_fill_(mask, -np.inf)
        A = self.dropout(torch.softmax(scores / sqrt(E), dim=-1))
        return torch.einsum("bhls,bshd->blhd", A, values).contiguous()


class AttentionLayer(nn.Module):
    def __init__(self, attention, d_model, n_heads):
        super().__init__()
        d = d_model // n_heads
        self.inner_attention = attention
        self.query_projection = nn.Linear(d_model, d * n_heads)
        self.key_projection = nn.Linear(d_model, d * n_heads)
        self.value_projection = nn.Linear(d_model, d * n_heads)
        self.out_projection = nn.Linear(d * n_heads, d_model)
        self.n_heads = n_heads

    def forward(self, queries, keys, values):
        B, L, _ = queries.shape
        _, S, _ = keys.shape
        H = self.n_heads
        q = self.query_projection(queries).view(B, L, H, -1)
        k = self.key_projection(keys).view(B, S, H, -1)
        v = self.value_projection(values).view(B, S, H, -1)
        return self.out_projection(self.inner_attention(q, k, v).view(B, L, -1))


class DecoderLayer(nn.Module):
    def __init__(self, self_attention, cross_attention, d_model, d_ff, dropout):
        super().__init__()
        self.self_attention = self_attention
        self.cross_attention = cross_attention
        self.conv1 = nn.Conv1d(in_channels=d_model, out_channels=d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(in_channels=d_ff, out_channels=d_model, kernel_size=1)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = F.gelu

    def forward(self, x, cross):
        x = self.norm1(x + self.dropout(self.self_attention(x, x, x)))
        x = x + self.dropout(self.cross_attention(x, cross, cross))
        y = x = self.norm2(x)
        y = self.dropout(self.activation(self.conv1(y.transpose(-1, 1))))
        y = self.dropout(self.conv2(y).transpose(-1, 1))
        return self.norm3(x + y)


class Decoder(nn.Module):
    def __init__(self, layers, norm_layer):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm_layer

    def forward(self, x, cross):
        for layer in self.layers:
            x = layer(x, cross)
        return self.norm(x)


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, max_position_embeddings, embedding_dim, seq_length):
        super().__init__()
        self.pe = nn.Embedding(max_position_embeddings, embedding_dim)
        self.seq_length = seq_length
        self.register_buffer("position_ids", torch.arange(max_position_embeddings).expand((1, -1)))

    def forward(self, x):
        return x + self.pe(self.position_ids[:, : self.seq_length])


class VisionTransformer_v3(nn.Module):
    def __init__(self, args, img_dim, patch_dim, out_dim, embedding_dim, num_heads, num_layers, hidden_dim,
                 dropout_rate, attn_dropout_rate, num_channels):
        super().__init__()
        self.num_patches = int(img_dim // patch_dim)
        self.seq_length = self.num_patches + 1
        self.flatten_dim = patch_dim * patch_dim * num_channels
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embedding_dim))
        self.linear_encoding = nn.Linear(self.flatten_dim, embedding_dim)
        self.position_encoding = LearnedPositionalEncoding(self.seq_length, embedding_dim, self.seq_length)
        self.pe_dropout = nn.Dropout(p=dropout_rate)
        self.encoder = TransformerModel(embedding_dim, num_layers, num_heads, hidden_dim, dropout_rate, attn_dropout_rate)
        self.pre_head_ln = nn.LayerNorm(embedding_dim)
        d_model = args.decoder_embedding_dim
        self.mlp_head = nn.Linear(embedding_dim + d_model, out_dim)
        dropout = args.decoder_attn_dropout_rate
        self.decoder = Decoder(
            [DecoderLayer(AttentionLayer(FullAttention(True, attention_dropout=dropout), d_model, args.decoder_num_heads),
                          AttentionLayer(FullAttention(False, attention_dropout=dropout), d_model, args.decoder_num_heads),
                          d_model, args.decoder_embedding_dim_out, dropout=dropout)
             for _ in range(args.decoder_layers)],
            norm_layer=torch.nn.LayerNorm(d_model))
        self.decoder_cls_token = nn.Parameter(torch.zeros(1, args.query_num, d_model))
        # Created by the official model, never used in its forward pass.
        self.decoder_position_encoding = LearnedPositionalEncoding(args.query_num, embedding_dim, args.query_num)
        self.classifier = nn.Linear(d_model, out_dim)
        self.after_dropout = nn.Dropout(p=dropout_rate)

    def forward(self, sequence_input_rgb, sequence_input_flow):
        x = torch.cat((sequence_input_rgb, sequence_input_flow), 2)
        x = self.linear_encoding(x)
        cls_tokens = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((x, cls_tokens), dim=1)
        x = self.pe_dropout(self.position_encoding(x))
        x = self.pre_head_ln(self.encoder(x))
        decoder_cls_token = self.decoder_cls_token.expand(x.shape[0], -1, -1)
        dec = self.after_dropout(self.decoder(decoder_cls_token, x))
        dec_for_token = dec.mean(dim=1)
        dec_cls_out = self.classifier(dec)
        x = torch.cat((x[:, -1], dec_for_token), dim=1)
        return self.mlp_head(x), dec_cls_out


def build(feature_dim, enc_steps, classes, d, heads, layers, hidden, queries, dec_layers, dec_heads, d_ff):
    args = SimpleNamespace(decoder_embedding_dim=d, decoder_attn_dropout_rate=0.1, decoder_num_heads=dec_heads,
                           decoder_layers=dec_layers, decoder_embedding_dim_out=d_ff, query_num=queries)
    return VisionTransformer_v3(args, img_dim=enc_steps, patch_dim=1, out_dim=classes, embedding_dim=d,
                                num_heads=heads, num_layers=layers, hidden_dim=hidden, dropout_rate=0.1,
                                attn_dropout_rate=0.1, num_channels=feature_dim)


# ----------------------------------------------------------------- model parity
SMALL = dict(feature_dim=12, enc_steps=16, classes=6, d=32, heads=4, layers=2, hidden=48, queries=4,
             dec_layers=2, dec_heads=2, d_ff=40)
model = build(**SMALL).eval()
with torch.no_grad():
    model.cls_token.normal_()
    model.decoder_cls_token.normal_()
x = torch.randn(3, SMALL["enc_steps"], SMALL["feature_dim"])
with torch.no_grad():
    current, future = model(x[:, :, :8], x[:, :, 8:])
state = {k: v.contiguous() for k, v in model.state_dict().items()
         if not k.endswith("position_ids") and not k.startswith("decoder_position_encoding")}
state.update({"x": x, "current": current, "future": future})
save_file(state, f"{out}/model.safetensors")


# ----------------------------------------------------------------- loss parity (util/loss.py)
def loss_labels(input, target, ignore_index=21):
    logsoftmax = nn.LogSoftmax(dim=1)
    notice_index = [i for i in range(target.shape[-1]) if i != ignore_index]
    output = torch.sum(-target[:, notice_index] * logsoftmax(input[:, notice_index]), 1)
    if output.sum() == 0:
        return torch.tensor(0.)
    return torch.mean(output[target[:, ignore_index] != 1])


logits = torch.randn(10, 22)
labels = torch.randint(0, 22, (10,))
labels[[1, 4]] = 21
targets = F.one_hot(labels, 22).float()
dec_logits = torch.randn(10, 4, 22)
dec_labels = torch.randint(0, 22, (10, 4))
dec_labels[0, :] = 21
dec_targets = F.one_hot(dec_labels, 22).float()
enc_loss = loss_labels(logits, targets)
dec_loss = loss_labels(dec_logits.view(-1, 22), dec_targets.view(-1, 22))
save_file({"logits": logits, "targets": targets, "dec_logits": dec_logits, "dec_targets": dec_targets,
           "enc_loss": enc_loss.reshape(1), "dec_loss": dec_loss.reshape(1),
           "total": (1.0 * enc_loss + 0.5 * dec_loss).reshape(1)}, f"{out}/loss.safetensors")


# ----------------------------------------------------------------- evaluation parity (utils.py)
def frame_level_map_n_cap(results, kind="quicksort"):
    all_probs = results['probs']
    all_labels = results['labels']
    n_classes = all_labels.shape[0]
    all_cls_ap, all_cls_acp = list(), list()
    for i in range(1, n_classes):
        this_cls_prob = all_probs[i, :]
        this_cls_gt = all_labels[i, :]
        w = np.sum(this_cls_gt == 0) / np.sum(this_cls_gt == 1)
        indices = np.argsort(-this_cls_prob, kind=kind)
        tp, psum, cpsum = 0, 0., 0.
        for k, idx in enumerate(indices):
            if this_cls_gt[idx] == 1:
                tp += 1
                wtp = w * tp
                fp = (k + 1) - tp
                psum += tp / (tp + fp)
                cpsum += wtp / (wtp + fp)
        all_cls_ap.append(psum / np.sum(this_cls_gt))
        all_cls_acp.append(cpsum / np.sum(this_cls_gt))
    ap = [float(a) for a in all_cls_ap]
    cap = [float(a) for a in all_cls_acp]
    return sum(ap) / len(ap), ap, sum(cap) / len(cap), cap


rng = np.random.default_rng(0)
n, k = 500, 21
lab = rng.integers(0, k, n)
lab[:k] = np.arange(k)  # every class has a positive
onehot = np.eye(k, dtype=np.float32)[lab]
# Tie-free: distinct softmax scores.
logit = rng.normal(size=(n, k)).astype(np.float32) + 2.0 * onehot
probs = torch.softmax(torch.from_numpy(logit), 1).numpy()
# Ties: scores on a coarse grid (many equal values across positives and negatives).
tied = np.round(probs * 20) / 20
# Ties inside one label only: positives score one of 0.3 / 0.5 / 0.7, negatives one of 0.2 / 0.4 /
# 0.6, so the ranks interleave but no positive ties with a negative (any tie order gives one AP).
pure = np.where(onehot == 1, rng.choice([0.3, 0.5, 0.7], (n, k)), rng.choice([0.2, 0.4, 0.6], (n, k))).astype(np.float32)
res = {}
for name, p in [("tie_free", probs), ("ties", tied), ("pure_ties", pure)]:
    r = {"probs": p.T, "labels": onehot.T}
    stable = frame_level_map_n_cap(r, kind="stable")
    res[name] = {"map_stable": stable[0], "ap_stable": stable[1], "cap_stable": stable[2], "cal_ap_stable": stable[3]}
    if name != "ties":
        official = frame_level_map_n_cap(r)
        res[name].update({"map": official[0], "ap": official[1], "cap": official[2], "cal_ap": official[3]})
res["tie_free"]["sklearn_ap"] = [float(average_precision_score(onehot[:, c], probs[:, c])) for c in range(1, k)]
save_file({"tie_free": torch.from_numpy(probs.copy()), "ties": torch.from_numpy(tied.astype(np.float32)),
           "pure_ties": torch.from_numpy(pure), "labels": torch.from_numpy(lab.astype(np.int64))},
          f"{out}/eval.safetensors")
json.dump(res, open(f"{out}/eval.json", "w"))


# ----------------------------------------------------------------- parameter counts (main.py)
counts = {}
for name, feat in [("thumos_tsn", 3072), ("thumos_kinetics", 4096)]:
    m = build(feature_dim=feat, enc_steps=64, classes=22, d=1024, heads=8, layers=3, hidden=1024, queries=8,
              dec_layers=5, dec_heads=4, d_ff=1024)
    counts[name] = int(sum(p.numel() for p in m.parameters() if p.requires_grad))
    del m
json.dump(counts, open(f"{out}/counts.json", "w"))
print("oad_reference: wrote", out)
