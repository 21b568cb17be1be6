"""Reference outputs of the official MAE forward for the mae parity tests.

Usage: python mae_reference.py OUT_DIR

`MaskedAutoencoderViT` below is a direct port of facebookresearch/mae `models_mae.py` (timm's
`Block` and `PatchEmbed`, `util/pos_embed.py`'s sin-cos embedding), with one change: the masking
noise is an argument, so that the Rust side can use the same mask. Weights are the official
initialisation followed by a random perturbation of every tensor (so that a wrong wiring cannot
hide behind zeros or ones). For each case this writes OUT_DIR/<case>.safetensors (state_dict plus
`__imgs__`, `__noise__`, `__loss__`, `__pred__`, `__mask__`, `__ids_restore__` and the freshly
initialised fixed embeddings `__init_pos_embed__`, `__init_decoder_pos_embed__`) and
OUT_DIR/cases.json. It also writes lrd_<size>.json: the official `param_groups_lrd` (weight decay
0.05, layer decay 0.75) over timm's ViT-B/16 and ViT-L/16 parameter names. Float32, CPU.
"""
import json
import os
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import timm
from safetensors.torch import save_file
from timm.models.vision_transformer import Block, PatchEmbed

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


# --- util/pos_embed.py ------------------------------------------------------------------------
def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0)
    grid = grid.reshape([2, 1, grid_size, grid_size])
    pos_embed = get_2d_sincos_pos_embed_from_grid(embed_dim, grid)
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
    return pos_embed


def get_2d_sincos_pos_embed_from_grid(embed_dim, grid):
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.
    omega = 1. / 10000**omega
    pos = pos.reshape(-1)
    out = np.einsum('m,d->md', pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


# --- models_mae.py ----------------------------------------------------------------------------
class MaskedAutoencoderViT(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24, num_heads=16,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.,
                 norm_layer=nn.LayerNorm, norm_pix_loss=False):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for i in range(depth)])
        self.norm = norm_layer(embed_dim)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
            for i in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans, bias=True)
        self.norm_pix_loss = norm_pix_loss
        self.initialize_weights()

    def initialize_weights(self):
        pos_embed = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], int(self.patch_embed.num_patches**.5), cls_token=True)
        self.pos_embed.data.copy_(torch.from_numpy(pos_embed).float().unsqueeze(0))
        decoder_pos_embed = get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], int(self.patch_embed.num_patches**.5), cls_token=True)
        self.decoder_pos_embed.data.copy_(torch.from_numpy(decoder_pos_embed).float().unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        torch.nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        torch.nn.init.normal_(self.cls_token, std=.02)
        torch.nn.init.normal_(self.mask_token, std=.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def patchify(self, imgs):
        p = self.patch_embed.patch_size[0]
        assert imgs.shape[2] == imgs.shape[3] and imgs.shape[2] % p == 0
        h = w = imgs.shape[2] // p
        x = imgs.reshape(shape=(imgs.shape[0], 3, h, p, w, p))
        x = torch.einsum('nchpwq->nhwpqc', x)
        return x.reshape(shape=(imgs.shape[0], h * w, p**2 * 3))

    def random_masking(self, x, mask_ratio, noise):
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, x, mask_ratio, noise):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        cls_tokens = cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x, mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.e-6)**.5
        loss = (pred - target) ** 2
        loss = loss.mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, mask_ratio, noise):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask, ids_restore


# --- util/lr_decay.py -------------------------------------------------------------------------
def param_groups_lrd(model, weight_decay=0.05, no_weight_decay_list=(), layer_decay=.75):
    num_layers = len(model.blocks) + 1
    layer_scales = list(layer_decay ** (num_layers - i) for i in range(num_layers + 1))
    out = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        this_decay = 0. if (p.ndim == 1 or n in no_weight_decay_list) else weight_decay
        out[n] = [p.ndim, layer_scales[get_layer_id_for_vit(n, num_layers)], this_decay]
    return out


def get_layer_id_for_vit(name, num_layers):
    if name in ['cls_token', 'pos_embed']:
        return 0
    elif name.startswith('patch_embed'):
        return 0
    elif name.startswith('blocks'):
        return int(name.split('.')[1]) + 1
    else:
        return num_layers


# (img, patch, width, depth, heads, decoder width, depth, heads, mask ratio, norm_pix, batch)
CASES = {
    "pix": (32, 4, 64, 2, 4, 32, 2, 4, 0.75, False, 3),
    "norm_pix": (32, 4, 64, 2, 4, 32, 2, 4, 0.75, True, 3),
    # 36 patches at 0.6: int(36 * 0.4) = int(14.4) = 14 kept.
    "norm_pix_ratio60": (24, 4, 48, 3, 3, 32, 1, 2, 0.6, True, 2),
}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    meta = {}
    for i, (case, (img, p, d, depth, heads, dd, ddepth, dheads, ratio, norm_pix, n)) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        model = MaskedAutoencoderViT(
            img_size=img, patch_size=p, in_chans=3, embed_dim=d, depth=depth, num_heads=heads,
            decoder_embed_dim=dd, decoder_depth=ddepth, decoder_num_heads=dheads, mlp_ratio=4.,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), norm_pix_loss=norm_pix).eval()
        init_pos = model.pos_embed.detach().clone()
        init_dec_pos = model.decoder_pos_embed.detach().clone()
        with torch.no_grad():
            for name, t in model.named_parameters():
                if t.requires_grad:
                    t.add_(torch.randn_like(t) * 0.05)
        imgs = torch.randn(n, 3, img, img)
        noise = torch.rand(n, (img // p) ** 2)
        with torch.no_grad():
            loss, pred, mask, ids_restore = model(imgs, ratio, noise)
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        tensors.update({
            "__imgs__": imgs, "__noise__": noise, "__loss__": loss.reshape(1), "__pred__": pred.contiguous(),
            "__mask__": mask, "__ids_restore__": ids_restore,
            "__init_pos_embed__": init_pos, "__init_decoder_pos_embed__": init_dec_pos,
        })
        save_file(tensors, os.path.join(out_dir, f"{case}.safetensors"))
        if case == "norm_pix":
            # The released checkpoints' layout: {'model': state_dict} pickles; the pre-trained
            # ones hold the encoder only, the visualisation ones the decoder too.
            sd = model.state_dict()
            enc = {k: v for k, v in sd.items() if not (k.startswith("decoder_") or k == "mask_token")}
            torch.save({"model": sd, "epoch": 799}, os.path.join(out_dir, "official_full.pth"))
            torch.save({"model": enc}, os.path.join(out_dir, "official_encoder.pth"))
        meta[case] = dict(img_size=img, patch_size=p, embed_dim=d, depth=depth, num_heads=heads,
                          decoder_embed_dim=dd, decoder_depth=ddepth, decoder_num_heads=dheads,
                          mask_ratio=ratio, norm_pix_loss=norm_pix)
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for size in ("base", "large"):
        with torch.device("meta"):
            vit = timm.create_model(f"vit_{size}_patch16_224", global_pool="avg", num_classes=1000)
        groups = param_groups_lrd(vit, 0.05, vit.no_weight_decay(), 0.75)
        with open(os.path.join(out_dir, f"lrd_{size}.json"), "w") as f:
            json.dump(groups, f)


if __name__ == "__main__":
    main(sys.argv[1])
