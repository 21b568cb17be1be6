//! The CenterNet network on a det-pyramid ResNet trunk: C5, three up-sampling deconvolutions
//! to stride 4, and the heatmap / size / offset heads; its loss and its [`Detector`] impl.
//!
//! Source: CenterNet `src/lib/models/networks/resnet_dcn.py` and `msra_resnet.py`
//! (`PoseResNet`): deconvolutions 4x4 stride 2 (no bias) each with BatchNorm and ReLU,
//! initialised N(0, 0.001); heads `Conv3x3(-> head_conv) + ReLU + Conv1x1(head_conv -> out)`,
//! heatmap bias -2.19 (prior 0.1), size / offset final layer N(0, 0.001) with zero bias. The
//! paper's ResNet-18 result (28.1 AP, `resdcn_18`) puts a 3x3 deformable convolution + BN +
//! ReLU before each deconvolution, initialises the deconvolutions bilinearly
//! (`fill_up_weights`) and uses 256, 128, 64 channels; the plain `res_18` (`msra_resnet.py`)
//! has the deconvolutions alone, N(0, 0.001), with 256, 256, 256. This crate builds
//! `res_18`'s structure and initialisation with `resdcn_18`'s widths (libtorch has no DCN);
//! [`CenterNetConfig::deconv_channels`] takes `res_18`'s.
//! Parameter names follow the official code: `conv1`, `layer1..4`, `deconv_layers.{0,1,3,4,6,7}`,
//! `hm.{0,2}`, `wh.{0,2}`, `reg.{0,2}`.

use det_core::data::ImageDetections;
use det_pyramid::{Detector, ResNet, ResNetConfig};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use super::decode::{decode, merge_flipped, DecodeConfig};
use super::error::{CenterNetError, Result};
use super::loss::{centernet_loss, clamped_sigmoid, CenterNetLoss, LossConfig};
use super::radius::RadiusRule;
use super::targets::{CenterNetTargets, TargetConfig};

/// The network and its target / loss / decode settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CenterNetConfig {
    /// The trunk (`ResNetConfig::new(Depth::R18)` in the paper).
    #[serde(skip)]
    pub trunk: ResNetConfig,
    /// Heatmap channels.
    pub num_classes: i64,
    /// Channels of the three deconvolutions (256, 128, 64 as `resdcn_18`; `res_18` has 256,
    /// 256, 256).
    pub deconv_channels: [i64; 3],
    /// Hidden channels of each head (64).
    pub head_conv: i64,
    /// Subtract the official COCO mean and divide by its std (RGB order).
    pub normalize: bool,
    /// Gaussian radius rule of the targets.
    pub radius: RadiusRule,
    /// Object slots per image.
    pub max_objects: usize,
    /// Focal exponents and loss weights.
    pub loss: LossConfig,
    /// Peaks, top-K, stride.
    pub decode: DecodeConfig,
    /// Average the heatmap and sizes with a mirrored pass at inference.
    pub flip_test: bool,
}

impl CenterNetConfig {
    /// The ResNet-18 network (`res_18` without DCN, `resdcn_18`'s widths, head_conv 64) for
    /// `num_classes`.
    pub fn resnet18(num_classes: i64) -> Self {
        Self::with_trunk(ResNetConfig::new(det_pyramid::Depth::R18), num_classes)
    }

    /// A reduced ResNet-18 of trunk `width` (64 = the paper): deconvolutions and heads scale
    /// with it (`4w, 2w, w` and `w`).
    pub fn small(num_classes: i64, width: i64) -> Self {
        Self::with_trunk(
            ResNetConfig::small(det_pyramid::Depth::R18, width),
            num_classes,
        )
    }

    fn with_trunk(trunk: ResNetConfig, num_classes: i64) -> Self {
        let w = trunk.width;
        Self {
            trunk,
            num_classes,
            deconv_channels: [4 * w, 2 * w, w],
            head_conv: w,
            normalize: true,
            radius: RadiusRule::Corrected,
            max_objects: 128,
            loss: LossConfig::default(),
            decode: DecodeConfig::default(),
            flip_test: false,
        }
    }

    /// The target settings this network trains on.
    pub fn targets(&self) -> TargetConfig {
        TargetConfig {
            num_classes: self.num_classes,
            stride: self.decode.stride,
            max_objects: self.max_objects,
            min_overlap: 0.7,
            radius: self.radius,
        }
    }
}

/// Raw head outputs at stride 4.
#[derive(Debug)]
pub struct CenterNetOutput {
    /// `[B, C, H/4, W/4]` heatmap logits.
    pub hm: Tensor,
    /// `[B, 2, H/4, W/4]` sizes (output pixels).
    pub wh: Tensor,
    /// `[B, 2, H/4, W/4]` sub-pixel offsets.
    pub reg: Tensor,
}

#[derive(Debug)]
struct Head {
    conv: nn::Conv2D,
    out: nn::Conv2D,
}

impl Head {
    fn new(p: &nn::Path, cin: i64, hidden: i64, cout: i64, bias: f64, small_init: bool) -> Self {
        let conv = nn::conv2d(
            p / "0",
            cin,
            hidden,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        );
        let mut oc = nn::ConvConfig {
            bs_init: nn::Init::Const(bias),
            ..Default::default()
        };
        if small_init {
            oc.ws_init = nn::Init::Randn {
                mean: 0.0,
                stdev: 0.001,
            };
        }
        let out = nn::conv2d(p / "2", hidden, cout, 1, oc);
        Self { conv, out }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        // ReLU in place, as the official head's ReLU(inplace=True).
        let mut h = self.conv.forward(x);
        let _ = h.relu_();
        self.out.forward(&h)
    }
}

/// CenterNet: trunk, deconvolutions, heads.
#[derive(Debug)]
pub struct CenterNet {
    cfg: CenterNetConfig,
    trunk: ResNet,
    deconv: Vec<(nn::ConvTranspose2D, nn::BatchNorm)>,
    hm: Head,
    wh: Head,
    reg: Head,
}

/// The heatmap bias: `-log((1 - 0.1) / 0.1)`, as the official `-2.19`.
pub const HEATMAP_BIAS: f64 = -2.19;

impl CenterNet {
    /// Builds the network under `p` with the official initialisation.
    pub fn new(p: &nn::Path, cfg: &CenterNetConfig) -> Result<Self> {
        if cfg.num_classes < 1 {
            return Err(CenterNetError::config(
                "num_classes",
                ">= 1",
                cfg.num_classes,
            ));
        }
        if cfg.head_conv < 1 || cfg.deconv_channels.iter().any(|&c| c < 1) {
            return Err(CenterNetError::config(
                "head / deconvolution channels",
                "all >= 1",
                format!("{:?} / {}", cfg.deconv_channels, cfg.head_conv),
            ));
        }
        if cfg.decode.stride != 4 {
            return Err(CenterNetError::config(
                "output stride",
                "4 (three x2 deconvolutions on C5)",
                cfg.decode.stride,
            ));
        }
        let trunk = ResNet::new(p, &cfg.trunk)?;
        let mut cin = trunk.channels()[3];
        let dp = p / "deconv_layers";
        let mut deconv = Vec::new();
        for (i, &c) in cfg.deconv_channels.iter().enumerate() {
            let d = nn::conv_transpose2d(
                &dp / (3 * i),
                cin,
                c,
                4,
                nn::ConvTransposeConfig {
                    stride: 2,
                    padding: 1,
                    bias: false,
                    ws_init: nn::Init::Randn {
                        mean: 0.0,
                        stdev: 0.001,
                    },
                    ..Default::default()
                },
            );
            let bn = nn::batch_norm2d(&dp / (3 * i + 1), c, Default::default());
            deconv.push((d, bn));
            cin = c;
        }
        let h = cfg.head_conv;
        Ok(Self {
            hm: Head::new(&(p / "hm"), cin, h, cfg.num_classes, HEATMAP_BIAS, false),
            wh: Head::new(&(p / "wh"), cin, h, 2, 0.0, true),
            reg: Head::new(&(p / "reg"), cin, h, 2, 0.0, true),
            cfg: cfg.clone(),
            trunk,
            deconv,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CenterNetConfig {
        &self.cfg
    }

    fn normalize(&self, images: &Tensor) -> Tensor {
        if !self.cfg.normalize {
            return images.shallow_clone();
        }
        let dev = images.device();
        // The official COCO statistics are BGR (cv2 images); reversed here for RGB input.
        let mean = Tensor::from_slice(&[0.470f32, 0.447, 0.408]).to_device(dev);
        let std = Tensor::from_slice(&[0.278f32, 0.274, 0.289]).to_device(dev);
        (images - mean.view([1, 3, 1, 1]).to_kind(images.kind()))
            / std.view([1, 3, 1, 1]).to_kind(images.kind())
    }

    /// Head outputs of a `[B, 3, H, W]` batch in `[0, 1]`; H and W must be multiples of 32.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<CenterNetOutput> {
        ResNet::check_input(images)?;
        let s = images.size();
        if s[2] % 32 != 0 || s[3] % 32 != 0 {
            return Err(CenterNetError::input(
                "images",
                "H and W multiples of 32 (C5 at stride 32, three x2 deconvolutions to stride 4)",
                s,
            ));
        }
        let mut x = self.trunk.forward_t(&self.normalize(images), train)?.c5;
        for (d, bn) in &self.deconv {
            x = bn.forward_t(&d.forward(&x), train);
            let _ = x.relu_();
        }
        Ok(CenterNetOutput {
            hm: self.hm.forward(&x),
            wh: self.wh.forward(&x),
            reg: self.reg.forward(&x),
        })
    }

    /// The training loss of `out` against `t`.
    pub fn loss(&self, out: &CenterNetOutput, t: &CenterNetTargets) -> Result<CenterNetLoss> {
        if out.hm.size() != t.hm.size() {
            return Err(CenterNetError::input(
                "heatmap target",
                format!("the network's heatmap shape {:?}", out.hm.size()),
                t.hm.size(),
            ));
        }
        centernet_loss(&out.hm, &out.wh, &out.reg, t, &self.cfg.loss)
    }

    /// Heatmap probabilities (clamped sigmoid), sizes and offsets at inference, with the
    /// flip test when configured (no gradient).
    pub fn infer_maps(&self, images: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        tch::no_grad(|| {
            if self.cfg.flip_test {
                let x = Tensor::cat(&[images, &images.flip([3])], 0);
                let o = self.forward_t(&x, false)?;
                let b = images.size()[0];
                let hm = clamped_sigmoid(&o.hm);
                Ok((
                    merge_flipped(&hm.narrow(0, 0, b), &hm.narrow(0, b, b)),
                    merge_flipped(&o.wh.narrow(0, 0, b), &o.wh.narrow(0, b, b)),
                    o.reg.narrow(0, 0, b),
                ))
            } else {
                let o = self.forward_t(images, false)?;
                Ok((clamped_sigmoid(&o.hm), o.wh, o.reg))
            }
        })
    }

    /// Detections of a `[B, 3, H, W]` batch in input pixels (up to K per image).
    pub fn predict(&self, images: &Tensor) -> Result<Vec<ImageDetections>> {
        let (hm, wh, reg) = self.infer_maps(images)?;
        decode(
            &hm.to_kind(Kind::Float),
            &wh.to_kind(Kind::Float),
            Some(&reg.to_kind(Kind::Float)),
            &self.cfg.decode,
        )
    }
}

impl Detector for CenterNet {
    fn detect(&self, images: &Tensor) -> det_pyramid::Result<Vec<ImageDetections>> {
        Ok(self.predict(images)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind};

    #[test]
    fn shapes_prior_names_and_a_few_steps_learn() {
        tch::manual_seed(0);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let cfg = CenterNetConfig::small(3, 8);
        let net = CenterNet::new(&vs.root(), &cfg).unwrap();
        let names: Vec<String> = vs.variables().into_keys().collect();
        for n in [
            "conv1.weight",
            "layer4.1.conv2.weight",
            "deconv_layers.0.weight",
            "deconv_layers.7.running_mean",
            "hm.2.bias",
            "wh.0.weight",
            "reg.2.weight",
        ] {
            assert!(names.iter().any(|k| k == n), "{n} missing");
        }
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let o = net.forward_t(&x, true).unwrap();
        assert_eq!(o.hm.size(), [2, 3, 8, 8]);
        assert_eq!(o.wh.size(), [2, 2, 8, 8]);
        let p = o.hm.sigmoid().mean(Kind::Float).double_value(&[]);
        assert!((p - 0.1).abs() < 0.03, "{p}");
        assert!(net
            .forward_t(
                &Tensor::rand([1, 3, 80, 64], (Kind::Float, Device::Cpu)),
                false
            )
            .is_err());
        // One box per image; a few Adam steps lower the loss.
        let boxes =
            Tensor::from_slice(&[4.0f32, 4.0, 20.0, 18.0, 10.0, 2.0, 30.0, 15.0]).view([2, 1, 4]);
        let classes = Tensor::from_slice(&[0i64, 2]).view([2, 1]);
        let t =
            CenterNetTargets::from_padded(&boxes, &classes, (32, 32), &cfg.targets(), Device::Cpu)
                .unwrap();
        let mut opt = nn::Adam::default().build(&vs, 1e-3).unwrap();
        let first = net
            .loss(&net.forward_t(&x, true).unwrap(), &t)
            .unwrap()
            .total
            .double_value(&[]);
        let mut last = first;
        for _ in 0..10 {
            let l = net.loss(&net.forward_t(&x, true).unwrap(), &t).unwrap();
            opt.backward_step(&l.total);
            last = l.total.double_value(&[]);
        }
        assert!(last.is_finite() && last < first, "{first} -> {last}");
        vs.freeze();
        let d = net.predict(&x).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].boxes.size(), [100, 4]);
        let mut fcfg = cfg.clone();
        fcfg.flip_test = true;
        let vs2 = nn::VarStore::new(Device::Cpu);
        let net2 = CenterNet::new(&vs2.root(), &fcfg).unwrap();
        let d = net2.detect(&x).unwrap();
        assert_eq!(d[1].scores.size(), [100]);
    }
}
