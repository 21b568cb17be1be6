//! [`VisionTransformer`] (Dosovitskiy et al. 2020, Eq. 1-4), laid out as timm's
//! `VisionTransformer` so that its state_dict names load unchanged.

use tch::nn::{self, Init};
use tch::Tensor;

use crate::config::{GlobalPool, PosEmbedKind, ViTConfig};
use crate::error::{Result, ViTError};
use crate::layers::{check_tokens, kinds_agree, layer_norm, linear, AttnImpl, Block};
use crate::pos_embed;
use crate::tome::{initial_size, ToMe, TomeState};

/// Options of one forward pass (see [`VisionTransformer::forward_with`]).
#[derive(Debug, Clone, Default)]
pub struct ForwardOpts {
    /// Training mode: dropout and drop-path on.
    pub train: bool,
    /// Which attention kernel the blocks use.
    pub attn: AttnImpl,
    /// Token merging (inference option).
    pub tome: Option<ToMe>,
    /// Keep each block's attention map `[B, heads, T, T]` (forces the explicit path).
    pub keep_attention: bool,
    /// Keep each block's output tokens `[B, T, D]` (before the final norm).
    pub keep_blocks: bool,
}

/// What [`VisionTransformer::forward_with`] returns.
#[derive(Debug)]
pub struct ForwardOutput {
    /// The final tokens after `norm`, `[B, T, D]` (T shrinks under ToMe).
    pub tokens: Tensor,
    /// Per block, when asked for.
    pub attention: Vec<Tensor>,
    /// Per block, when asked for: its output tokens `[B, T, D]` before the final norm.
    pub blocks: Vec<Tensor>,
    /// Under ToMe: how many patches each final token stands for, `[B, T, 1]`.
    pub sizes: Option<Tensor>,
    /// Patch grid of this input.
    pub grid: (i64, i64),
}

/// The Vision Transformer (Eq. 1-4): patch embedding, prefix tokens, position embedding, L
/// pre-norm blocks, final norm, pooling and head, with timm's parameter names.
#[derive(Debug)]
pub struct VisionTransformer {
    cfg: ViTConfig,
    patch_embed: nn::Conv2D,
    cls_token: Option<Tensor>,
    reg_token: Option<Tensor>,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: Option<nn::LayerNorm>,
    fc_norm: Option<nn::LayerNorm>,
    head: Option<nn::Linear>,
}

impl VisionTransformer {
    /// Builds the model under `vs` with timm's parameter names and initialisation.
    pub fn new(vs: &nn::Path, cfg: &ViTConfig) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.embed_dim;
        let p = cfg.patch_size;
        let patch_embed = nn::conv2d(
            vs / "patch_embed" / "proj",
            cfg.in_chans,
            d,
            p,
            nn::ConvConfig {
                stride: p,
                ..Default::default()
            },
        );
        let tiny = Init::Randn {
            mean: 0.0,
            stdev: 1e-6,
        };
        let cls_token = cfg
            .class_token
            .then(|| vs.var("cls_token", &[1, 1, d], tiny));
        let reg_token =
            (cfg.reg_tokens > 0).then(|| vs.var("reg_token", &[1, cfg.reg_tokens, d], tiny));
        let pe_shape = [1, cfg.pos_embed_len(), d];
        let pos_embed = match cfg.pos_embed {
            PosEmbedKind::Learned => vs.var(
                "pos_embed",
                &pe_shape,
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            PosEmbedKind::SinCos => {
                let mut pe = vs.zeros_no_train("pos_embed", &pe_shape);
                let (gh, gw) = cfg.grid_size();
                let prefix = cfg.pos_embed_len() - cfg.num_patches();
                let fixed = pos_embed::sincos_2d_tensor(d, gh, gw, prefix)?;
                tch::no_grad(|| pe.copy_(&fixed));
                pe
            }
        };
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(vs / "blocks" / i, cfg, i))
            .collect();
        let use_fc_norm = cfg.use_fc_norm();
        let norm = (!use_fc_norm).then(|| layer_norm(vs / "norm", d, cfg.norm_eps));
        let fc_norm = use_fc_norm.then(|| layer_norm(vs / "fc_norm", d, cfg.norm_eps));
        let head = (cfg.num_classes > 0).then(|| linear(vs / "head", d, cfg.num_classes, true));
        Ok(Self {
            cfg: cfg.clone(),
            patch_embed,
            cls_token,
            reg_token,
            pos_embed,
            blocks,
            norm,
            fc_norm,
            head,
        })
    }

    /// The configuration this model was built with.
    pub fn config(&self) -> &ViTConfig {
        &self.cfg
    }

    /// The patch grid for an input `[B, C, H, W]`, or an error naming what is wrong with it.
    pub fn grid_for(&self, x: &Tensor) -> Result<(i64, i64)> {
        let size = x.size();
        let c = &self.cfg;
        let bad = |why: &str| ViTError::Input {
            expected: format!(
                "[batch, {}, H, W] with H and W positive multiples of the patch size {}{why}",
                c.in_chans, c.patch_size
            ),
            got: size.clone(),
        };
        if size.len() != 4 {
            return Err(bad(""));
        }
        if size[1] != c.in_chans {
            return Err(bad(&format!(" (got {} channels)", size[1])));
        }
        let (h, w) = (size[2], size[3]);
        if h <= 0 || w <= 0 || h % c.patch_size != 0 || w % c.patch_size != 0 {
            return Err(bad(&format!(" (got {h}x{w})")));
        }
        let weights = self.patch_embed.ws.kind();
        if !x.is_floating_point() || !kinds_agree(x.kind(), weights) {
            return Err(bad(&format!(
                " as floating point of the weights' kind {weights:?} (got {:?})",
                x.kind()
            )));
        }
        if x.device() != self.pos_embed.device() {
            return Err(bad(&format!(
                " on the model's device {:?} (got {:?})",
                self.pos_embed.device(),
                x.device()
            )));
        }
        Ok((h / c.patch_size, w / c.patch_size))
    }

    /// The position embedding for a grid: the stored one, or resampled to `grid` (timm's
    /// `dynamic_img_size`).
    pub fn pos_embed_for(&self, grid: (i64, i64)) -> Result<Tensor> {
        let prefix = self.cfg.pos_embed_len() - self.cfg.num_patches();
        pos_embed::resample(
            &self.pos_embed,
            self.cfg.grid_size(),
            grid,
            prefix,
            self.cfg.pos_resample,
        )
    }

    /// Patch embedding plus the patches' position embedding (resampled when the grid differs):
    /// `[B, h*w, D]`, no prefix tokens. MAE masks these before the encoder.
    pub fn embed_patches(&self, x: &Tensor) -> Result<(Tensor, (i64, i64))> {
        let grid = self.grid_for(x)?;
        let tokens = x.apply(&self.patch_embed).flatten(2, 3).transpose(1, 2);
        let pos = self.pos_embed_for(grid)?;
        let p = pos.size()[1] - grid.0 * grid.1;
        Ok((tokens + pos.narrow(1, p, grid.0 * grid.1), grid))
    }

    /// The class and register tokens, each with its position embedding unless
    /// `no_embed_class`: `[B, prefix, D]` (MAE's `cls_token + pos_embed[:, :1]`). A negative
    /// `batch` is a [`ViTError::Config`].
    pub fn prefix_tokens(&self, batch: i64) -> Result<Tensor> {
        if batch < 0 {
            return Err(ViTError::Config(format!(
                "prefix_tokens: expected a batch size >= 0, got {batch}"
            )));
        }
        let parts: Vec<Tensor> = [&self.cls_token, &self.reg_token]
            .into_iter()
            .flatten()
            .map(|t| t.shallow_clone())
            .collect();
        let d = self.cfg.embed_dim;
        let prefix = if parts.is_empty() {
            Tensor::zeros([1, 0, d], (self.pos_embed.kind(), self.pos_embed.device()))
        } else {
            Tensor::cat(&parts, 1)
        };
        let prefix = if self.cfg.no_embed_class {
            prefix
        } else {
            prefix + self.pos_embed.narrow(1, 0, self.cfg.num_prefix_tokens())
        };
        let p = prefix.size()[1];
        Ok(prefix.expand([batch, p, d], false))
    }

    /// Prefix tokens, patch tokens and dropout: `[B, prefix + h*w, D]`. Adding the position
    /// embedding before or after the concatenation gives the same numbers (timm adds after).
    fn embed(&self, x: &Tensor, train: bool) -> Result<(Tensor, (i64, i64))> {
        let (patches, grid) = self.embed_patches(x)?;
        let prefix = self
            .prefix_tokens(patches.size()[0])?
            .to_kind(patches.kind());
        let x = Tensor::cat(&[prefix, patches], 1);
        Ok((x.dropout(self.cfg.drop_rate, train), grid))
    }

    /// Runs the blocks and the final norm on a token sequence `[B, T, D]` that the caller
    /// built (MAE's encoder on the visible tokens): D = `embed_dim`, T >= 1, a float kind, on
    /// the model's device, else a [`ViTError::Input`] naming what arrived.
    pub fn forward_tokens(&self, tokens: &Tensor, train: bool) -> Result<Tensor> {
        let d = self.cfg.embed_dim;
        check_tokens(tokens, d, &self.patch_embed.ws, "forward_tokens")?;
        let mut x = tokens.shallow_clone();
        for block in &self.blocks {
            x = block.forward(&x, train, AttnImpl::Fused, false, None)?.x;
        }
        Ok(match &self.norm {
            Some(norm) => x.apply(norm),
            None => x,
        })
    }

    /// The general forward: every option in one pass.
    pub fn forward_with(&self, x: &Tensor, opts: &ForwardOpts) -> Result<ForwardOutput> {
        let (mut x, grid) = self.embed(x, opts.train)?;
        let prefix = self.cfg.num_prefix_tokens();
        let mut tome = opts.tome.map(|tome| TomeState {
            tome,
            size: initial_size(&x),
            prefix,
        });
        let (mut attention, mut blocks) = (Vec::new(), Vec::new());
        for block in &self.blocks {
            let out = block.forward(
                &x,
                opts.train,
                opts.attn,
                opts.keep_attention,
                tome.as_mut(),
            )?;
            x = out.x;
            attention.extend(out.map);
            if opts.keep_blocks {
                blocks.push(x.shallow_clone());
            }
        }
        let tokens = match &self.norm {
            Some(norm) => x.apply(norm),
            None => x,
        };
        Ok(ForwardOutput {
            tokens,
            attention,
            blocks,
            sizes: tome.map(|t| t.size),
            grid,
        })
    }

    /// `[B, T, D]` tokens after the final norm.
    pub fn forward_features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self
            .forward_with(
                x,
                &ForwardOpts {
                    train,
                    ..Default::default()
                },
            )?
            .tokens)
    }

    /// Pooling, `fc_norm`, dropout and the classifier: `[B, num_classes]`, or the pooled features
    /// when `num_classes = 0` (the whole sequence with `GlobalPool::None`). `tokens` is `[B, T,
    /// D]` as [`VisionTransformer::forward_features`] returns it (with at least one patch token
    /// after the prefix under average pooling), else a [`ViTError::Input`].
    pub fn forward_head(&self, tokens: &Tensor, train: bool) -> Result<Tensor> {
        let prefix = self.cfg.num_prefix_tokens();
        check_tokens(
            tokens,
            self.cfg.embed_dim,
            &self.patch_embed.ws,
            "forward_head",
        )?;
        let t = tokens.size()[1];
        let least = match self.cfg.global_pool {
            GlobalPool::Avg => prefix + 1,
            GlobalPool::Token | GlobalPool::None => 1,
        };
        if t < least {
            return Err(ViTError::Input {
                expected: format!(
                    "forward_head: tokens [B, T >= {least}, {}] ({prefix} prefix tokens, {:?} pooling)",
                    self.cfg.embed_dim, self.cfg.global_pool
                ),
                got: tokens.size(),
            });
        }
        let pooled = match self.cfg.global_pool {
            GlobalPool::Token => tokens.select(1, 0),
            GlobalPool::Avg => tokens
                .narrow(1, prefix, t - prefix)
                .mean_dim(1, false, None),
            GlobalPool::None => tokens.shallow_clone(),
        };
        let pooled = match &self.fc_norm {
            Some(n) => pooled.apply(n),
            None => pooled,
        };
        let pooled = pooled.dropout(self.cfg.drop_rate, train);
        Ok(match &self.head {
            Some(h) => pooled.apply(h),
            None => pooled,
        })
    }

    /// Logits `[B, num_classes]` through the fused attention path.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let tokens = self.forward_features(x, train)?;
        self.forward_head(&tokens, train)
    }

    /// Inference logits and each block's attention map `[B, heads, T, T]` (explicit path; the
    /// logits equal the fused path's to float rounding).
    pub fn forward_with_attention(&self, x: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let out = self.forward_with(
            x,
            &ForwardOpts {
                attn: AttnImpl::Explicit,
                keep_attention: true,
                ..Default::default()
            },
        )?;
        Ok((self.forward_head(&out.tokens, false)?, out.attention))
    }

    /// Inference logits with token merging.
    pub fn forward_tome(&self, x: &Tensor, tome: ToMe) -> Result<Tensor> {
        let out = self.forward_with(
            x,
            &ForwardOpts {
                tome: Some(tome),
                ..Default::default()
            },
        )?;
        self.forward_head(&out.tokens, false)
    }

    /// Per-block outputs as feature maps `[B, D, h, w]` (prefix tokens dropped; with `norm`,
    /// the final norm applied to each), for dense heads. `indices` selects blocks; negative
    /// indices count from the end.
    pub fn forward_intermediates(
        &self,
        x: &Tensor,
        indices: &[i64],
        norm: bool,
    ) -> Result<Vec<Tensor>> {
        let depth = self.cfg.depth;
        let mut wanted = Vec::with_capacity(indices.len());
        for &i in indices {
            let j = if i < 0 { depth + i } else { i };
            if !(0..depth).contains(&j) {
                return Err(ViTError::Config(format!(
                    "block index {i} out of range for depth {depth}"
                )));
            }
            wanted.push(j as usize);
        }
        let out = self.forward_with(
            x,
            &ForwardOpts {
                keep_blocks: true,
                ..Default::default()
            },
        )?;
        let prefix = self.cfg.num_prefix_tokens();
        let (gh, gw) = out.grid;
        Ok(wanted
            .into_iter()
            .map(|j| {
                let t = &out.blocks[j];
                let t = match (&self.norm, norm) {
                    (Some(n), true) => t.apply(n),
                    _ => t.shallow_clone(),
                };
                let (b, n, d) = (t.size()[0], t.size()[1], t.size()[2]);
                t.narrow(1, prefix, n - prefix)
                    .transpose(1, 2)
                    .reshape([b, d, gh, gw])
            })
            .collect())
    }

    /// The number of elements of every tensor the model holds (the fixed sin-cos embedding
    /// included, as in the state_dict).
    pub fn num_params(vs: &nn::VarStore) -> i64 {
        vs.variables().values().map(|t| t.numel() as i64).sum()
    }
}
