//! [`MaskedAutoencoder`] (He et al. 2022, Sec. 3, Fig. 1): a ViT encoder on the visible patches
//! only, a light decoder on the encoded patches plus mask tokens, and a pixel loss on the
//! removed patches. Laid out as the official `models_mae.py` so that its state_dict loads.

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};
use vit_core::{pos_embed, Block, VisionTransformer};

use crate::config::{check_ratio, MaeConfig};
use crate::error::{MaeError, Result};
use crate::masking::{self, check_noise, mask_by_noise};
use crate::patches::{norm_pix, patchify};

/// What the encoder returns.
#[derive(Debug)]
pub struct EncoderOutput {
    /// `[N, 1 + keep, D]` after `norm` (class token first); `[N, 1 + L, D]` with
    /// `encoder_mask_tokens`.
    pub latent: Tensor,
    /// `[N, L]`, 1 = removed.
    pub mask: Tensor,
    /// `[N, L]` int64: where each patch went in the shuffled order.
    pub ids_restore: Tensor,
}

/// What a full forward returns (the official `loss, pred, mask`).
#[derive(Debug)]
pub struct MaeOutput {
    /// Mean per-patch MSE over the removed patches, a scalar.
    pub loss: Tensor,
    /// `[N, L, p * p * C]` predictions for every patch (normalised pixels under norm-pix).
    pub pred: Tensor,
    /// `[N, L]`, 1 = removed.
    pub mask: Tensor,
    /// `[N, L]` int64: where each patch went in the shuffled order.
    pub ids_restore: Tensor,
}

/// The masked autoencoder (Fig. 1): a ViT encoder on the visible patches, a light decoder
/// on the encoded patches plus mask tokens, with the official state_dict names.
#[derive(Debug)]
pub struct MaskedAutoencoder {
    cfg: MaeConfig,
    encoder: VisionTransformer,
    encoder_mask_token: Option<Tensor>,
    decoder_embed: nn::Linear,
    mask_token: Tensor,
    decoder_pos_embed: Tensor,
    decoder_blocks: Vec<Block>,
    decoder_norm: nn::LayerNorm,
    decoder_pred: nn::Linear,
}

fn linear(vs: nn::Path, i: i64, o: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        bs_init: Some(Init::Const(0.0)),
        ..Default::default()
    };
    nn::linear(vs, i, o, cfg)
}

/// Whether an input of kind `input` can meet weights of kind `weights`: the same kind, or a
/// half-precision side (bf16 / f16 autocast casts per op).
fn kinds_agree(input: Kind, weights: Kind) -> bool {
    let half = |k: Kind| matches!(k, Kind::Half | Kind::BFloat16);
    input == weights || half(input) || half(weights)
}

/// `xavier_uniform_` on a tensor viewed as `[fan_out, fan_in]`.
fn xavier_uniform(t: &mut Tensor) {
    let size = t.size();
    let fan_out = size[0] as f64;
    let fan_in = size[1..].iter().product::<i64>() as f64;
    let bound = (6.0 / (fan_in + fan_out)).sqrt();
    let _ = t.uniform_(-bound, bound);
}

impl MaskedAutoencoder {
    /// Builds the model under `vs` with the official names and initialisation
    /// (`initialize_weights`: xavier-uniform Linear weights and patch projection, zero biases,
    /// unit LayerNorms, tokens N(0, 0.02), fixed sin-cos positions in float64).
    pub fn new(vs: &nn::Path, cfg: &MaeConfig) -> Result<Self> {
        cfg.validate()?;
        let e = &cfg.encoder;
        let encoder = VisionTransformer::new(vs, e)?;
        let dd = cfg.decoder_embed_dim;
        let tok = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let encoder_mask_token = cfg
            .encoder_mask_tokens
            .then(|| vs.var("encoder_mask_token", &[1, 1, e.embed_dim], tok));
        let decoder_embed = linear(vs / "decoder_embed", e.embed_dim, dd);
        let mask_token = vs.var("mask_token", &[1, 1, dd], tok);
        let (gh, gw) = e.grid_size();
        let mut decoder_pos_embed = vs.zeros_no_train("decoder_pos_embed", &[1, gh * gw + 1, dd]);
        let fixed = pos_embed::sincos_2d_tensor(dd, gh, gw, 1)?;
        tch::no_grad(|| decoder_pos_embed.f_copy_(&fixed))?;
        let dec = cfg.decoder_vit();
        let decoder_blocks = (0..cfg.decoder_depth)
            .map(|i| Block::new(vs / "decoder_blocks" / i, &dec, i))
            .collect();
        let decoder_norm = nn::layer_norm(
            vs / "decoder_norm",
            vec![dd],
            nn::LayerNormConfig {
                eps: e.norm_eps,
                ..Default::default()
            },
        );
        let decoder_pred = linear(vs / "decoder_pred", dd, cfg.patch_dim());
        let model = Self {
            cfg: cfg.clone(),
            encoder,
            encoder_mask_token,
            decoder_embed,
            mask_token,
            decoder_pos_embed,
            decoder_blocks,
            decoder_norm,
            decoder_pred,
        };
        model.initialize_weights(vs);
        Ok(model)
    }

    /// The official `initialize_weights` over the tensors vit-core created with timm's init.
    fn initialize_weights(&self, vs: &nn::Path) {
        let _guard = tch::no_grad_guard();
        let get = |p: &nn::Path, name: &str| p.get(name);
        let mut linears: Vec<nn::Path> = vec![vs / "decoder_embed", vs / "decoder_pred"];
        let blocks = [
            ("blocks", self.cfg.encoder.depth),
            ("decoder_blocks", self.cfg.decoder_depth),
        ];
        for (prefix, depth) in blocks {
            for i in 0..depth {
                let b = vs / prefix / i;
                linears.extend([
                    &b / "attn" / "qkv",
                    &b / "attn" / "proj",
                    &b / "mlp" / "fc1",
                    &b / "mlp" / "fc2",
                ]);
            }
        }
        for p in &linears {
            if let Some(mut w) = get(p, "weight") {
                xavier_uniform(&mut w);
            }
            if let Some(mut b) = get(p, "bias") {
                let _ = b.zero_();
            }
        }
        let proj = vs / "patch_embed" / "proj";
        if let Some(mut w) = get(&proj, "weight") {
            // Like nn.Linear on the flattened kernel; the bias keeps Conv2d's default init.
            xavier_uniform(&mut w);
            let fan_in = w.size()[1..].iter().product::<i64>() as f64;
            if let Some(mut b) = get(&proj, "bias") {
                let bound = 1.0 / fan_in.sqrt();
                let _ = b.uniform_(-bound, bound);
            }
        }
        for name in ["cls_token", "mask_token", "encoder_mask_token"] {
            if let Some(mut t) = vs.get(name) {
                let _ = t.normal_(0.0, 0.02);
            }
        }
    }

    /// The configuration this model was built with.
    pub fn config(&self) -> &MaeConfig {
        &self.cfg
    }

    /// The encoder (a vit-core ViT without head): its `blocks`, `norm`, `patch_embed`.
    pub fn encoder(&self) -> &VisionTransformer {
        &self.encoder
    }

    /// The decoder's fixed 2-D sin-cos position embedding `[1, 1 + L, decoder width]`.
    pub fn decoder_pos_embed(&self) -> &Tensor {
        &self.decoder_pos_embed
    }

    /// Checks `[N, C, H, W]` at the configured size (the decoder's positions are fixed).
    fn check_images(&self, imgs: &Tensor) -> Result<(i64, i64)> {
        let e = &self.cfg.encoder;
        let size = imgs.size();
        let ok = size.len() == 4
            && size[1] == e.in_chans
            && (size[2], size[3]) == e.img_size
            && size[0] > 0
            && imgs.is_floating_point();
        if !ok {
            return Err(MaeError::input(
                "MAE images",
                format!(
                    "[N, {}, {}, {}] floating point (got {:?})",
                    e.in_chans,
                    e.img_size.0,
                    e.img_size.1,
                    imgs.kind()
                ),
                size,
            ));
        }
        Ok((size[0], e.num_patches()))
    }

    /// Patch embedding, masking, class token, blocks, `norm` (official `forward_encoder`).
    /// `noise` `[N, L]` fixes the mask (parity, figures); otherwise it is drawn for
    /// `cfg.masking`.
    pub fn forward_encoder(
        &self,
        imgs: &Tensor,
        mask_ratio: f64,
        noise: Option<&Tensor>,
        train: bool,
    ) -> Result<EncoderOutput> {
        let (n, l) = self.check_images(imgs)?;
        let keep = check_ratio(l, mask_ratio)?;
        let (x, grid) = self.encoder.embed_patches(imgs)?;
        let noise = match noise {
            Some(t) => {
                check_noise(t, n, l)?;
                t.to_device(x.device())
            }
            None => masking::noise(self.cfg.masking, n, grid, mask_ratio, x.device())?,
        };
        let m = mask_by_noise(&x, &noise, keep)?;
        let patches = match &self.encoder_mask_token {
            None => m.visible,
            Some(token) => {
                // Table 1c: every patch goes in, the removed ones as [M] + their position.
                let pos = self.encoder.pos_embed_for(grid)?.narrow(1, 1, l);
                let filler = (token + pos).to_kind(x.kind()).expand_as(&x);
                filler.where_self(&m.mask.unsqueeze(-1).gt(0.5), &x)
            }
        };
        let prefix = self.encoder.prefix_tokens(n)?.to_kind(patches.kind());
        let tokens = Tensor::cat(&[prefix, patches], 1);
        Ok(EncoderOutput {
            latent: self.encoder.forward_tokens(&tokens, train)?,
            mask: m.mask,
            ids_restore: m.ids_restore,
        })
    }

    /// `decoder_embed`, mask tokens, unshuffle, fixed positions, blocks, `decoder_norm`,
    /// `decoder_pred`, class token dropped (official `forward_decoder`): `[N, L, p * p * C]`.
    /// `latent` is the encoder's `[N, 1 + keep, D]` (D = the encoder width, 1 <= keep <= L, a
    /// float kind on the model's device) and `ids_restore` an int64 `[N, L]` on that device
    /// with the latent's batch and L = the patch count; anything else is a
    /// [`MaeError::Input`] naming what arrived (an index outside [0, L) is a torch error).
    pub fn forward_decoder(
        &self,
        latent: &Tensor,
        ids_restore: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let (n, t) = self.check_latent(latent, ids_restore)?;
        let x = latent.apply(&self.decoder_embed);
        let (l, dd) = (self.cfg.num_patches(), self.cfg.decoder_embed_dim);
        let x = if t == l + 1 {
            // The encoder already saw every patch in place (Table 1c variant).
            x
        } else {
            let mask_tokens = self.mask_token.expand([n, l + 1 - t, dd], false);
            let rest = Tensor::cat(&[x.narrow(1, 1, t - 1), mask_tokens], 1);
            let index = ids_restore.unsqueeze(-1).expand([n, l, dd], false);
            let rest = rest.f_gather(1, &index, false)?;
            Tensor::cat(&[x.narrow(1, 0, 1), rest], 1)
        };
        let mut x = x + &self.decoder_pos_embed;
        for block in &self.decoder_blocks {
            x = block.forward_t(&x, train)?;
        }
        Ok(x.apply(&self.decoder_norm)
            .apply(&self.decoder_pred)
            .narrow(1, 1, l))
    }

    /// Checks [`MaskedAutoencoder::forward_decoder`]'s inputs; returns the batch and the
    /// latent's length `1 + keep`.
    fn check_latent(&self, latent: &Tensor, ids_restore: &Tensor) -> Result<(i64, i64)> {
        let l = self.cfg.num_patches();
        let d = self.cfg.encoder.embed_dim;
        let device = self.device();
        let weights = self.mask_token.kind();
        let size = latent.size();
        let ok = size.len() == 3
            && size[1] >= 2
            && size[1] <= l + 1
            && size[2] == d
            && latent.is_floating_point()
            && kinds_agree(latent.kind(), weights)
            && latent.device() == device;
        if !ok {
            return Err(MaeError::input(
                "decoder latent",
                format!(
                    "[N, 1 + keep, {d}] with 1 <= keep <= {l}, of kind {weights:?} (or an \
                     autocast half kind) on {device:?} (got {:?} on {:?})",
                    latent.kind(),
                    latent.device()
                ),
                size,
            ));
        }
        let n = size[0];
        let ids = ids_restore.size();
        if ids != [n, l] || ids_restore.kind() != Kind::Int64 || ids_restore.device() != device {
            return Err(MaeError::input(
                "decoder ids_restore",
                format!(
                    "[{n}, {l}] int64 on {device:?}: the latent's batch, one index per patch \
                     (got {:?} on {:?})",
                    ids_restore.kind(),
                    ids_restore.device()
                ),
                ids,
            ));
        }
        Ok((n, size[1]))
    }

    /// The device of the model's weights.
    fn device(&self) -> Device {
        self.mask_token.device()
    }

    /// The target patches: pixels, or per-patch normalised pixels under `norm_pix_loss`.
    pub fn target(&self, imgs: &Tensor) -> Result<Tensor> {
        let target = patchify(imgs, self.cfg.encoder.patch_size)?;
        if self.cfg.norm_pix_loss {
            norm_pix(&target)
        } else {
            Ok(target)
        }
    }

    /// Mean over removed patches of the per-patch MSE (official `forward_loss`).
    pub fn forward_loss(&self, imgs: &Tensor, pred: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.check_images(imgs)?;
        let target = self.target(imgs)?;
        let (n, l) = (target.size()[0], target.size()[1]);
        let device = imgs.device();
        let on_device = pred.device() == device && mask.device() == device;
        if pred.size() != target.size() || mask.size() != [n, l] || !on_device {
            return Err(MaeError::input(
                "prediction and mask",
                format!(
                    "pred {:?} and mask [{n}, {l}] on the images' device {device:?} (got mask {:?} \
                     on {:?}, pred on {:?})",
                    target.size(),
                    mask.size(),
                    mask.device(),
                    pred.device()
                ),
                pred.size(),
            ));
        }
        let per_patch = (pred - target).square().mean_dim(-1, false, None::<Kind>);
        Ok((per_patch * mask).sum(None::<Kind>) / mask.sum(None::<Kind>))
    }

    /// Encoder, decoder and loss with `cfg.mask_ratio` and `cfg.masking`.
    pub fn forward_t(&self, imgs: &Tensor, train: bool) -> Result<MaeOutput> {
        self.forward_masked(imgs, self.cfg.mask_ratio, None, train)
    }

    /// Encoder, decoder and loss at `mask_ratio`, with the given noise if any.
    pub fn forward_masked(
        &self,
        imgs: &Tensor,
        mask_ratio: f64,
        noise: Option<&Tensor>,
        train: bool,
    ) -> Result<MaeOutput> {
        let enc = self.forward_encoder(imgs, mask_ratio, noise, train)?;
        let pred = self.forward_decoder(&enc.latent, &enc.ids_restore, train)?;
        let loss = self.forward_loss(imgs, &pred, &enc.mask)?;
        Ok(MaeOutput {
            loss,
            pred,
            mask: enc.mask,
            ids_restore: enc.ids_restore,
        })
    }
}
