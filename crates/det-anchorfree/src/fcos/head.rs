//! The FCOS detector (Tian et al. 2019, Sec. 3, Fig. 2; official
//! `fcos_core/modeling/rpn/fcos/fcos.py`, `FCOSHead` and `FCOSModule`): two towers of
//! `head_convs` x (3x3 conv, GroupNorm, ReLU) shared across levels, `K` class logits and 4
//! box distances on their towers, one centre-ness logit on the classification tower (original)
//! or the regression tower (improved), a learnable scalar `Scale` per level on the box branch,
//! then `exp` (original) or `ReLU` of stride-normalised distances (improved). Init: conv
//! weights N(0, 0.01), bias 0, class bias `-log((1 - pi) / pi)` with `pi = 0.01`.

use tch::nn::{self, Module, ModuleT};
use tch::{Device, Tensor};

use det_pyramid::{Backbone, ResNet};

use super::config::FcosConfig;
use super::error::{FcosError, Result};
use super::loss::{fcos_loss, LossParts};
use super::targets::{locations, prepare_targets, Targets};

/// The head's raw outputs with their locations.
#[derive(Debug)]
pub struct FcosOutputs {
    /// Per level, `[B, H_l * W_l, K]` class logits.
    pub cls: Vec<Tensor>,
    /// Per level, `[B, H_l * W_l, 4]` `(l, t, r, b)`: pixels, or pixels / stride with
    /// `norm_reg_targets` (what the loss compares with the targets).
    pub reg: Vec<Tensor>,
    /// Per level, `[B, H_l * W_l]` centre-ness logits.
    pub ctr: Vec<Tensor>,
    /// Per level, `[H_l * W_l, 2]` location centres in input pixels.
    pub locations: Vec<Tensor>,
    /// Per level, its stride in input pixels.
    pub strides: Vec<i64>,
    /// The input's `(h, w)`.
    pub image: (i64, i64),
}

impl FcosOutputs {
    /// Locations per level.
    pub fn points_per_level(&self) -> Vec<i64> {
        self.locations.iter().map(|l| l.size()[0]).collect()
    }

    /// Distances in input pixels at level `l` (undoes the stride normalisation).
    pub fn reg_pixels(&self, l: usize, norm_reg_targets: bool) -> Tensor {
        if norm_reg_targets {
            &self.reg[l] * self.strides[l] as f64
        } else {
            self.reg[l].shallow_clone()
        }
    }
}

fn head_conv(p: &nn::Path, cin: i64, cout: i64, bias: f64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: 1,
        ws_init: nn::Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        },
        bs_init: nn::Init::Const(bias),
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, 3, cfg)
}

fn tower(p: &nn::Path, n: usize, d: i64, groups: i64) -> nn::SequentialT {
    // Official `nn.Sequential` indices: conv 3i, GroupNorm 3i + 1, ReLU 3i + 2.
    let mut s = nn::seq_t();
    for i in 0..n {
        s = s
            .add(head_conv(&(p / (3 * i)), d, d, 0.0))
            .add(nn::group_norm(
                &(p / (3 * i + 1)),
                groups,
                d,
                Default::default(),
            ))
            .add_fn(|x| x.relu());
    }
    s
}

/// The FCOS detector on a pyramid backbone.
pub struct Fcos {
    cfg: FcosConfig,
    backbone: Box<dyn Backbone>,
    cls_tower: nn::SequentialT,
    bbox_tower: nn::SequentialT,
    cls_logits: nn::Conv2D,
    bbox_pred: nn::Conv2D,
    centerness: nn::Conv2D,
    scales: Vec<Tensor>,
}

impl std::fmt::Debug for Fcos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fcos").field("cfg", &self.cfg).finish()
    }
}

impl Fcos {
    /// The head under `p / "fcos_head"` (official names) on `backbone` (built by the caller
    /// under its own path). The backbone's levels must match `cfg`'s ranges.
    pub fn new(p: &nn::Path, backbone: Box<dyn Backbone>, cfg: &FcosConfig) -> Result<Self> {
        let levels = backbone.num_levels();
        let d = backbone.out_channels();
        cfg.validate(levels, d)?;
        let h = p / "fcos_head";
        let cls_tower = tower(&(&h / "cls_tower"), cfg.head_convs, d, cfg.gn_groups);
        let bbox_tower = tower(&(&h / "bbox_tower"), cfg.head_convs, d, cfg.gn_groups);
        let prior_bias = -((1.0 - cfg.prior) / cfg.prior).ln();
        let cls_logits = head_conv(&(&h / "cls_logits"), d, cfg.num_classes, prior_bias);
        let bbox_pred = head_conv(&(&h / "bbox_pred"), d, 4, 0.0);
        let centerness = head_conv(&(&h / "centerness"), d, 1, 0.0);
        let scales = (0..levels)
            .map(|l| (&h / "scales" / l).var("scale", &[1], nn::Init::Const(1.0)))
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            backbone,
            cls_tower,
            bbox_tower,
            cls_logits,
            bbox_pred,
            centerness,
            scales,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FcosConfig {
        &self.cfg
    }

    /// The backbone.
    pub fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }

    /// The device of the head's weights.
    pub fn device(&self) -> Device {
        self.cls_logits.ws.device()
    }

    fn normalize(&self, images: &Tensor) -> Result<Tensor> {
        ResNet::check_input(images)?;
        if !self.cfg.normalize {
            return Ok(images.shallow_clone());
        }
        let dev = images.device();
        let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).to_device(dev);
        let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).to_device(dev);
        Ok((images - mean.view([1, 3, 1, 1])) / std.view([1, 3, 1, 1]))
    }

    /// Head outputs and locations of `[B, 3, H, W]` images in `[0, 1]`.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<FcosOutputs> {
        let x = self.normalize(images)?;
        let pyr = self.backbone.features(&x, train)?;
        if pyr.maps.len() != self.scales.len() {
            return Err(FcosError::config(
                "backbone levels",
                format!("{} maps (one per regression range)", self.scales.len()),
                pyr.maps.len(),
            ));
        }
        let s = images.size();
        let (b, k) = (s[0], self.cfg.num_classes);
        let mut out = FcosOutputs {
            cls: Vec::new(),
            reg: Vec::new(),
            ctr: Vec::new(),
            locations: Vec::new(),
            strides: pyr.strides.clone(),
            image: (s[2], s[3]),
        };
        for (l, m) in pyr.maps.iter().enumerate() {
            let ms = m.size();
            let ct = self.cls_tower.forward_t(m, train);
            let bt = self.bbox_tower.forward_t(m, train);
            let flat = |t: Tensor, c: i64| t.permute([0, 2, 3, 1]).reshape([b, -1, c]);
            out.cls.push(flat(self.cls_logits.forward(&ct), k));
            let c = if self.cfg.centerness_on_reg {
                self.centerness.forward(&bt)
            } else {
                self.centerness.forward(&ct)
            };
            out.ctr.push(flat(c, 1).squeeze_dim(-1));
            let r = self.bbox_pred.forward(&bt) * &self.scales[l];
            let r = if self.cfg.norm_reg_targets {
                r.relu()
            } else {
                r.exp()
            };
            out.reg.push(flat(r, 4));
            out.locations
                .push(locations(ms[2], ms[3], pyr.strides[l], images.device()));
        }
        Ok(out)
    }

    /// The three FCOS losses of `out` against the ground truth `t`.
    pub fn loss(&self, out: &FcosOutputs, t: &Targets) -> Result<LossParts> {
        let b = out.cls.first().map_or(0, |c| c.size()[0]);
        let s = t.boxes.size();
        if s.len() != 3 || s[0] != b {
            return Err(FcosError::input(
                "target boxes",
                format!("[{b}, M, 4] boxes with [{b}, M] classes"),
                s,
            ));
        }
        let loc = Tensor::cat(&out.locations, 0);
        let targets = tch::no_grad(|| {
            prepare_targets(
                &self.cfg,
                &loc,
                &out.strides,
                &out.points_per_level(),
                t,
                out.image,
            )
        })?;
        let logits = Tensor::cat(&out.cls, 1);
        let reg = Tensor::cat(&out.reg, 1);
        let ctr = Tensor::cat(&out.ctr, 1);
        Ok(fcos_loss(&self.cfg, &logits, &reg, &ctr, &targets))
    }
}
