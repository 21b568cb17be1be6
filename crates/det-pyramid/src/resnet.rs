//! ResNet-18/34/50 trunks (He et al. 2016, arXiv 1512.03385) with torchvision's parameter
//! names (`torchvision/models/resnet.py`: `conv1`, `bn1`, `layer{1..4}.{i}.conv{1,2,3}`,
//! `downsample.{0,1}`), so a torchvision state dict written to safetensors loads with a report of
//! missing / unexpected names. The stride sits on the 3x3 conv of a bottleneck (ResNet v1.5, as
//! torchvision). Returns C2-C5 (strides 4, 8, 16, 32).
//!
//! Detection options, as detectron2's `build_resnet_backbone`: frozen BatchNorm
//! (`FrozenBatchNorm2d`: the affine map from stored statistics, never updated) and freezing the
//! first stages (`FREEZE_AT`: 1 = the stem, 2 = the stem and `layer1`, ...).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use crate::error::{PyramidError, Result};
use crate::weights::{load_named, path_prefix, read_tensors, LoadOptions, LoadReport};

/// The trunk depths torchvision names `resnet18`, `resnet34`, `resnet50`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Depth {
    /// Basic blocks `[2, 2, 2, 2]`.
    R18,
    /// Basic blocks `[3, 4, 6, 3]`.
    R34,
    /// Bottleneck blocks `[3, 4, 6, 3]`.
    R50,
}

impl Depth {
    /// Blocks per stage (`layer1` .. `layer4`).
    pub fn blocks(self) -> [usize; 4] {
        match self {
            Depth::R18 => [2, 2, 2, 2],
            Depth::R34 | Depth::R50 => [3, 4, 6, 3],
        }
    }

    /// Whether the blocks are bottlenecks (1x1, 3x3, 1x1 with expansion 4).
    pub fn bottleneck(self) -> bool {
        self == Depth::R50
    }

    /// Output channels / `planes` of a block (1 for basic blocks, 4 for bottlenecks).
    pub fn expansion(self) -> i64 {
        if self.bottleneck() {
            4
        } else {
            1
        }
    }

    /// torchvision's name of the trunk.
    pub fn name(self) -> &'static str {
        match self {
            Depth::R18 => "resnet18",
            Depth::R34 => "resnet34",
            Depth::R50 => "resnet50",
        }
    }
}

/// A ResNet trunk's configuration. `Default` is torchvision's `resnet50()` (trainable
/// BatchNorm, nothing frozen); [`ResNetConfig::detectron2`] is the detection setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// R18, R34 or R50.
    pub depth: Depth,
    /// Channels of the stem and of `layer1`'s `planes` (64 in the paper); a smaller width
    /// (16, 32) gives the reduced trunks used for CPU training.
    pub width: i64,
    /// BatchNorm replaced by `FrozenBatchNorm2d` (eps 1e-5) everywhere.
    pub frozen_bn: bool,
    /// The first stages frozen (no gradient, frozen BatchNorm): 0 none, 1 the stem, 2 the stem
    /// and `layer1`, ... up to 5 (everything). detectron2's `FREEZE_AT`.
    pub frozen_stages: usize,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self::new(Depth::R50)
    }
}

impl ResNetConfig {
    /// torchvision's trunk of `depth`: width 64, BatchNorm trainable, nothing frozen.
    pub fn new(depth: Depth) -> Self {
        Self {
            depth,
            width: 64,
            frozen_bn: false,
            frozen_stages: 0,
        }
    }

    /// detectron2's detection trunk (`configs/Base-RetinaNet.yaml`): frozen BatchNorm, stem
    /// and `res2` frozen (`FREEZE_AT: 2`).
    pub fn detectron2(depth: Depth) -> Self {
        Self {
            frozen_bn: true,
            frozen_stages: 2,
            ..Self::new(depth)
        }
    }

    /// A reduced-width trunk trained from scratch (CPU experiments).
    pub fn small(depth: Depth, width: i64) -> Self {
        Self {
            width,
            ..Self::new(depth)
        }
    }

    /// Output channels of C2, C3, C4, C5.
    pub fn channels(&self) -> [i64; 4] {
        let e = self.depth.expansion();
        [1, 2, 4, 8].map(|m| self.width * m * e)
    }

    fn check(&self) -> Result<()> {
        if self.width < 1 {
            return Err(PyramidError::config(
                "ResNetConfig.width",
                "at least 1",
                self.width,
            ));
        }
        if self.frozen_stages > 5 {
            return Err(PyramidError::config(
                "ResNetConfig.frozen_stages",
                "0 ..= 5 (stem, layer1 .. layer4)",
                self.frozen_stages,
            ));
        }
        Ok(())
    }
}

/// `FrozenBatchNorm2d` (torchvision `ops/misc.py`): `y = (x - mean) / sqrt(var + eps) * w + b`
/// with all four tensors stored, none trained.
#[derive(Debug)]
pub struct FrozenBatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl FrozenBatchNorm {
    /// Identity statistics under `p` with torchvision's names.
    pub fn new(p: &nn::Path, channels: i64) -> Self {
        Self {
            weight: p.ones_no_train("weight", &[channels]),
            bias: p.zeros_no_train("bias", &[channels]),
            running_mean: p.zeros_no_train("running_mean", &[channels]),
            running_var: p.ones_no_train("running_var", &[channels]),
        }
    }
}

impl Module for FrozenBatchNorm {
    /// The same affine map as torchvision's two element-wise ops, in one pass: libtorch's
    /// inference batch norm folds the statistics into a scale and shift per channel first.
    fn forward(&self, x: &Tensor) -> Tensor {
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            false,
            0.0,
            1e-5,
            false,
        )
    }
}

#[derive(Debug)]
enum Norm {
    Batch(nn::BatchNorm),
    Frozen(FrozenBatchNorm),
}

impl Norm {
    fn new(p: &nn::Path, c: i64, frozen: bool) -> Self {
        if frozen {
            Norm::Frozen(FrozenBatchNorm::new(p, c))
        } else {
            let cfg = nn::BatchNormConfig {
                eps: 1e-5,
                momentum: 0.1,
                ..Default::default()
            };
            Norm::Batch(nn::batch_norm2d(p, c, cfg))
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Norm::Batch(bn) => bn.forward_t(x, train),
            Norm::Frozen(bn) => bn.forward(x),
        }
    }

    /// A fresh norm of the same kind for `c` channels under `p`.
    fn like(&self, p: &nn::Path, c: i64) -> Self {
        Norm::new(p, c, matches!(self, Norm::Frozen(_)))
    }
}

/// BatchNorms for one run of a stage with its own statistics and affine parameters
/// (TridentNet's per-branch BN: the convs shared, the norms not). Made by
/// [`ResNet::branch_norms`], used by [`ResNet::stage_with`].
#[derive(Debug)]
pub struct StageNorms {
    stage: usize,
    blocks: Vec<(Vec<Norm>, Option<Norm>)>,
}

/// A bias-free conv whose weight can be applied with another dilation (TridentNet).
#[derive(Debug)]
pub(crate) struct Conv {
    pub(crate) weight: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv {
    fn new(p: &nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> Self {
        // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
        let init = nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        };
        Self {
            weight: p.var("weight", &[cout, cin, k, k], init),
            stride,
            padding,
        }
    }

    /// The conv at `dilation` (padding scaled with it, so a 3x3 keeps its output size).
    fn forward_dilated(&self, x: &Tensor, dilation: i64) -> Tensor {
        let pad = self.padding * dilation;
        x.conv2d(
            &self.weight,
            None::<Tensor>,
            [self.stride, self.stride],
            [pad, pad],
            [dilation, dilation],
            1,
        )
    }
}

#[derive(Debug)]
struct Block {
    convs: Vec<(Conv, Norm)>,
    downsample: Option<(Conv, Norm)>,
}

impl Block {
    fn new(p: &nn::Path, depth: Depth, cin: i64, planes: i64, stride: i64, frozen: bool) -> Self {
        let cout = planes * depth.expansion();
        let shapes: Vec<(i64, i64, i64, i64, i64)> = if depth.bottleneck() {
            vec![
                (cin, planes, 1, 1, 0),
                (planes, planes, 3, stride, 1),
                (planes, cout, 1, 1, 0),
            ]
        } else {
            vec![(cin, planes, 3, stride, 1), (planes, planes, 3, 1, 1)]
        };
        let convs = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (a, b, k, s, pad))| {
                (
                    Conv::new(&(p / format!("conv{}", i + 1)), a, b, k, s, pad),
                    Norm::new(&(p / format!("bn{}", i + 1)), b, frozen),
                )
            })
            .collect();
        let downsample = (stride != 1 || cin != cout).then(|| {
            let d = p / "downsample";
            (
                Conv::new(&(&d / 0), cin, cout, 1, stride, 0),
                Norm::new(&(&d / 1), cout, frozen),
            )
        });
        Self { convs, downsample }
    }

    /// Norms like this block's under `p` (torchvision's names inside the block).
    fn norms_like(&self, p: &nn::Path) -> (Vec<Norm>, Option<Norm>) {
        let convs = self
            .convs
            .iter()
            .enumerate()
            .map(|(i, (c, n))| n.like(&(p / format!("bn{}", i + 1)), c.weight.size()[0]))
            .collect();
        let down = self
            .downsample
            .as_ref()
            .map(|(c, n)| n.like(&(p / "downsample" / 1), c.weight.size()[0]));
        (convs, down)
    }

    /// The block with its 3x3 convs at `dilation` (1 = the plain block), with its own norms
    /// or `norms` in their place.
    fn forward_t(
        &self,
        x: &Tensor,
        train: bool,
        dilation: i64,
        norms: Option<&(Vec<Norm>, Option<Norm>)>,
    ) -> Tensor {
        let last = self.convs.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (conv, own)) in self.convs.iter().enumerate() {
            let bn = norms.and_then(|n| n.0.get(i)).unwrap_or(own);
            let d = if conv.weight.size()[2] == 3 {
                dilation
            } else {
                1
            };
            h = bn.forward_t(&conv.forward_dilated(&h, d), train);
            if i != last {
                // In place, as torchvision's ReLU(inplace=True): the norm's output is a fresh
                // tensor that no backward needs, and a 2 x 64 x 256 x 256 map is 33 MB.
                let _ = h.relu_();
            }
        }
        let identity = match &self.downsample {
            Some((conv, own)) => {
                let bn = norms.and_then(|n| n.1.as_ref()).unwrap_or(own);
                bn.forward_t(&conv.forward_dilated(x, 1), train)
            }
            None => x.shallow_clone(),
        };
        // torchvision's `out += identity; relu(out)`: h is the last norm's fresh output.
        let _ = h.g_add_(&identity);
        let _ = h.relu_();
        h
    }
}

/// C2-C5 of a trunk (strides 4, 8, 16, 32).
#[derive(Debug)]
pub struct Features {
    /// `layer1`'s output, stride 4.
    pub c2: Tensor,
    /// `layer2`'s output, stride 8.
    pub c3: Tensor,
    /// `layer3`'s output, stride 16.
    pub c4: Tensor,
    /// `layer4`'s output, stride 32.
    pub c5: Tensor,
}

impl Features {
    /// C2 .. C5 in order.
    pub fn all(&self) -> [&Tensor; 4] {
        [&self.c2, &self.c3, &self.c4, &self.c5]
    }
}

/// The largest stride of a trunk (C5).
pub const MAX_STRIDE: i64 = 32;

/// A ResNet trunk: `conv1`, `bn1`, ReLU, 3x3/2 max-pool, `layer1` .. `layer4`.
#[derive(Debug)]
pub struct ResNet {
    cfg: ResNetConfig,
    prefix: String,
    conv1: Conv,
    bn1: Norm,
    layers: Vec<Vec<Block>>,
}

impl ResNet {
    /// Builds the trunk under `p` (torchvision's names below it), with torchvision's init
    /// (kaiming normal fan-out convs, BatchNorm 1 / 0). Frozen stages stop requiring grad.
    pub fn new(p: &nn::Path, cfg: &ResNetConfig) -> Result<Self> {
        cfg.check()?;
        let frozen = |stage: usize| cfg.frozen_bn || stage < cfg.frozen_stages;
        let w = cfg.width;
        let conv1 = Conv::new(&(p / "conv1"), 3, w, 7, 2, 3);
        let bn1 = Norm::new(&(p / "bn1"), w, frozen(0));
        let mut cin = w;
        let mut layers = Vec::new();
        for (s, &n) in cfg.depth.blocks().iter().enumerate() {
            let planes = w << s;
            let lp = p / format!("layer{}", s + 1);
            let blocks: Vec<Block> = (0..n)
                .map(|i| {
                    let stride = if i == 0 && s > 0 { 2 } else { 1 };
                    let b = Block::new(&(&lp / i), cfg.depth, cin, planes, stride, frozen(s + 1));
                    cin = planes * cfg.depth.expansion();
                    b
                })
                .collect();
            layers.push(blocks);
        }
        let model = Self {
            cfg: cfg.clone(),
            prefix: path_prefix(p),
            conv1,
            bn1,
            layers,
        };
        for t in model.stage_weights(cfg.frozen_stages) {
            let _ = t.set_requires_grad(false);
        }
        Ok(model)
    }

    /// The configuration.
    pub fn config(&self) -> &ResNetConfig {
        &self.cfg
    }

    /// Output channels of C2 .. C5.
    pub fn channels(&self) -> [i64; 4] {
        self.cfg.channels()
    }

    fn stage_weights(&self, stages: usize) -> Vec<&Tensor> {
        let mut out = Vec::new();
        if stages >= 1 {
            out.push(&self.conv1.weight);
        }
        for blocks in self.layers.iter().take(stages.saturating_sub(1)) {
            for b in blocks {
                out.extend(b.convs.iter().map(|(c, _)| &c.weight));
                out.extend(b.downsample.iter().map(|(c, _)| &c.weight));
            }
        }
        out
    }

    /// Checks an image batch: `[B, 3, H, W]` floating point with H, W at least the largest
    /// stride (32).
    pub fn check_input(x: &Tensor) -> Result<()> {
        let s = x.size();
        let float = matches!(
            x.kind(),
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        );
        if s.len() != 4 || s[1] != 3 || !float {
            return Err(PyramidError::input(
                "images",
                format!(
                    "a floating-point [B, 3, H, W] batch (got kind {:?})",
                    x.kind()
                ),
                s,
            ));
        }
        if s[2] < MAX_STRIDE || s[3] < MAX_STRIDE {
            return Err(PyramidError::input(
                "images",
                format!(
                    "an image of at least {MAX_STRIDE}x{MAX_STRIDE} (the trunk's largest stride)"
                ),
                s,
            ));
        }
        Ok(())
    }

    /// The stem: conv1, bn1, ReLU, max-pool (stride 4).
    pub fn stem(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = self.bn1.forward_t(&self.conv1.forward_dilated(x, 1), train);
        let _ = h.relu_();
        h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
    }

    /// `layer{stage}` (1 ..= 4) with its 3x3 convs at `dilation` (1 = the plain stage; 2, 3 =
    /// TridentNet's branches, the same weight tensors).
    pub fn stage(&self, stage: usize, x: &Tensor, train: bool, dilation: i64) -> Result<Tensor> {
        self.stage_with(stage, x, train, dilation, None)
    }

    fn blocks(&self, stage: usize) -> Result<&[Block]> {
        stage
            .checked_sub(1)
            .and_then(|i| self.layers.get(i))
            .map(Vec::as_slice)
            .ok_or_else(|| PyramidError::config("ResNet stage", "1 ..= 4", stage))
    }

    /// [`ResNet::stage`] with the BatchNorms of `norms` (made for this stage by
    /// [`ResNet::branch_norms`]) in place of the trunk's own: the same conv weights,
    /// other normalisation.
    pub fn stage_with(
        &self,
        stage: usize,
        x: &Tensor,
        train: bool,
        dilation: i64,
        norms: Option<&StageNorms>,
    ) -> Result<Tensor> {
        let blocks = self.blocks(stage)?;
        if let Some(n) = norms {
            if n.stage != stage || n.blocks.len() != blocks.len() {
                return Err(PyramidError::config(
                    "stage norms",
                    format!("norms of layer{stage} ({} blocks)", blocks.len()),
                    format!("norms of layer{} ({} blocks)", n.stage, n.blocks.len()),
                ));
            }
        }
        let mut h = x.shallow_clone();
        for (i, b) in blocks.iter().enumerate() {
            h = b.forward_t(&h, train, dilation, norms.map(|n| &n.blocks[i]));
        }
        Ok(h)
    }

    /// A second set of BatchNorms for `layer{stage}` under `p` (`p / "0" / "bn1"`, ...: the
    /// block index, then torchvision's names), of the same kind (frozen or not) as the
    /// trunk's, initialised as BatchNorm is (weight 1, bias 0, statistics 0 / 1).
    pub fn branch_norms(&self, p: &nn::Path, stage: usize) -> Result<StageNorms> {
        let blocks = self
            .blocks(stage)?
            .iter()
            .enumerate()
            .map(|(i, b)| b.norms_like(&(p / i)))
            .collect();
        Ok(StageNorms { stage, blocks })
    }

    /// C2 .. C5 of an image batch `[B, 3, H, W]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Features> {
        Self::check_input(x)?;
        let c2 = self.stage(1, &self.stem(x, train), train, 1)?;
        let c3 = self.stage(2, &c2, train, 1)?;
        let c4 = self.stage(3, &c3, train, 1)?;
        let c5 = self.stage(4, &c4, train, 1)?;
        Ok(Features { c2, c3, c4, c5 })
    }

    /// Loads torchvision-named weights (a `resnet{18,34,50}` state dict as safetensors; its
    /// `fc.` is reported unexpected, `num_batches_tracked` ignored). A file made for another
    /// trunk (depth or width) is a [`PyramidError::WrongTrunk`] naming both.
    pub fn load_safetensors(
        &self,
        vs: &nn::VarStore,
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<LoadReport> {
        let path = path.as_ref();
        let file = read_tensors(path)?;
        if let Some(found) = describe_trunk(&file, &opts.file_prefix) {
            let expected = format!("{} (width {})", self.cfg.depth.name(), self.cfg.width);
            if found != expected {
                return Err(PyramidError::WrongTrunk {
                    path: path.into(),
                    expected,
                    found,
                });
            }
        }
        load_named(vs, &self.prefix, path, &file, opts)
    }
}

/// The trunk a state dict describes, as `resnet50 (width 64)`, from its block names and the
/// stem's width; `None` when it holds no ResNet trunk at all.
fn describe_trunk(
    file: &std::collections::HashMap<String, Tensor>,
    prefix: &str,
) -> Option<String> {
    let width = file.get(&format!("{prefix}conv1.weight"))?.size()[0];
    let mut blocks = [0usize; 4];
    let mut bottleneck = false;
    for k in file.keys() {
        let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix("layer")) else {
            continue;
        };
        let mut parts = rest.split('.');
        let (Some(l), Some(i)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(l), Ok(i)) = (l.parse::<usize>(), i.parse::<usize>()) {
            if (1..=4).contains(&l) {
                blocks[l - 1] = blocks[l - 1].max(i + 1);
            }
        }
        bottleneck |= parts.next() == Some("conv3");
    }
    let name = match (blocks, bottleneck) {
        ([2, 2, 2, 2], false) => "resnet18".to_string(),
        ([3, 4, 6, 3], false) => "resnet34".to_string(),
        ([3, 4, 6, 3], true) => "resnet50".to_string(),
        ([3, 4, 23, 3], true) => "resnet101".to_string(),
        ([3, 8, 36, 3], true) => "resnet152".to_string(),
        (b, true) => format!("a bottleneck ResNet with blocks {b:?}"),
        (b, false) => format!("a basic-block ResNet with blocks {b:?}"),
    };
    Some(format!("{name} (width {width})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn save_vs(vs: &nn::VarStore, path: &Path) {
        let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        Tensor::write_safetensors(&named, path).unwrap();
    }

    #[test]
    fn shapes_channels_and_bad_inputs() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ResNetConfig::small(Depth::R50, 8);
        let m = ResNet::new(&vs.root(), &cfg).unwrap();
        assert_eq!(m.channels(), [32, 64, 128, 256]);
        let f = m
            .forward_t(
                &Tensor::randn([2, 3, 64, 96], (Kind::Float, Device::Cpu)),
                true,
            )
            .unwrap();
        let sizes: Vec<Vec<i64>> = f.all().iter().map(|t| t.size()).collect();
        assert_eq!(
            sizes,
            vec![
                vec![2, 32, 16, 24],
                vec![2, 64, 8, 12],
                vec![2, 128, 4, 6],
                vec![2, 256, 2, 3]
            ]
        );
        let small = m.forward_t(
            &Tensor::zeros([1, 3, 31, 64], (Kind::Float, Device::Cpu)),
            false,
        );
        let msg = small.unwrap_err().to_string();
        assert!(
            msg.contains("at least 32x32") && msg.contains("31"),
            "{msg}"
        );
        let gray = m.forward_t(
            &Tensor::zeros([1, 1, 64, 64], (Kind::Float, Device::Cpu)),
            false,
        );
        assert!(gray.unwrap_err().to_string().contains("[B, 3, H, W]"));
        let ints = m.forward_t(
            &Tensor::zeros([1, 3, 64, 64], (Kind::Uint8, Device::Cpu)),
            false,
        );
        assert!(ints.is_err());
        assert!(m.stage(0, &f.c2, false, 1).is_err() && m.stage(5, &f.c2, false, 1).is_err());
        let bad = ResNetConfig {
            frozen_stages: 6,
            ..cfg
        };
        assert!(ResNet::new(&(vs.root() / "x"), &bad).is_err());
    }

    #[test]
    fn a_checkpoint_for_another_trunk_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r50.safetensors");
        let vs50 = nn::VarStore::new(Device::Cpu);
        ResNet::new(&vs50.root(), &ResNetConfig::small(Depth::R50, 8)).unwrap();
        save_vs(&vs50, &path);
        let vs18 = nn::VarStore::new(Device::Cpu);
        let r18 = ResNet::new(&vs18.root(), &ResNetConfig::small(Depth::R18, 8)).unwrap();
        let err = r18
            .load_safetensors(&vs18, &path, &LoadOptions::default())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PyramidError::WrongTrunk { .. }), "{msg}");
        assert!(
            msg.contains("resnet50 (width 8)") && msg.contains("resnet18 (width 8)"),
            "{msg}"
        );
        // Another width of the same depth is another trunk too.
        let vs16 = nn::VarStore::new(Device::Cpu);
        let r50w16 = ResNet::new(&vs16.root(), &ResNetConfig::small(Depth::R50, 16)).unwrap();
        let msg = r50w16
            .load_safetensors(&vs16, &path, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("width 16") && msg.contains("width 8"), "{msg}");
        // The same trunk round-trips, with nothing missing, under a prefix too.
        let vsb = nn::VarStore::new(Device::Cpu);
        let again = ResNet::new(
            &(vsb.root() / "backbone"),
            &ResNetConfig::small(Depth::R50, 8),
        )
        .unwrap();
        let report = again
            .load_safetensors(
                &vsb,
                &path,
                &LoadOptions {
                    strict: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(
            report.missing.is_empty() && report.unexpected.is_empty(),
            "{report}"
        );
        let a = vs50.variables()["layer3.1.conv2.weight"].shallow_clone();
        let b = vsb.variables()["backbone.layer3.1.conv2.weight"].shallow_clone();
        assert_eq!(a, b);
    }

    #[test]
    fn frozen_stages_get_no_gradient() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ResNetConfig {
            frozen_stages: 2,
            ..ResNetConfig::small(Depth::R18, 8)
        };
        let m = ResNet::new(&vs.root(), &cfg).unwrap();
        let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        m.forward_t(&x, true)
            .unwrap()
            .c5
            .sum(Kind::Float)
            .backward();
        let vars = vs.variables();
        assert!(!vars["conv1.weight"].requires_grad());
        assert!(!vars["layer1.1.conv2.weight"].requires_grad());
        assert!(!vars["layer1.0.bn1.weight"].requires_grad());
        assert!(vars["layer2.0.conv1.weight"].grad().defined());
        assert!(vars["layer2.0.bn1.weight"].grad().defined());
        assert!(!vars["layer1.1.conv2.weight"].grad().defined());
    }
}
