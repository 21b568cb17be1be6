//! The networks: the paper's 24-conv + 2-FC model (Redmon et al. 2016, Fig. 3; darknet's
//! 2016 `cfg/yolo.cfg`), Fast YOLO (darknet `cfg/yolov1-tiny.cfg`), and a reduced ResNet-18
//! trunk from det-pyramid for CPU runs. Every variant returns `[N, S, S, B*5 + C]`: per cell,
//! `B` boxes `(x, y, sqrt w, sqrt h, confidence)` then `C` class probabilities (see
//! [`Layout`] for darknet's flat order of the same numbers).
//!
//! Darknet conventions kept: `pad=1` means `size / 2` zero padding, convolutions have a bias and
//! no batch norm, activations are leaky ReLU with slope 0.1, the last layer is linear.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use det_pyramid::{Depth, ResNet, ResNetConfig};

use crate::error::{Result, YoloError};

/// The feature extractor in front of the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// The paper network: 24 convolutions (Fig. 3), stride 64, 1024 channels.
    Paper,
    /// Fast YOLO as darknet's `yolov1-tiny.cfg`: 8 convolutions (16 ... 1024, 256 filters) and
    /// six max-pools, stride 64, 256 channels. The paper counts 9 layers: the cfg's 8
    /// convolutions and its connected layer.
    Fast,
    /// det-pyramid's ResNet-18 at `width` (C2 channels), cut after `layer3` (stride 16) or
    /// `layer4` (stride 32). Batch norm, unlike the paper.
    ResNet {
        /// Channels of C2 (64 = the full ResNet-18).
        width: i64,
        /// 16 or 32.
        stride: i64,
    },
}

/// How the predictions come out of the features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Head {
    /// The paper's: flatten, optionally a hidden fully connected layer (4096, leaky) with
    /// dropout, then a linear layer to `S * S * (B*5 + C)` outputs read in `layout` order.
    Fc {
        /// Hidden units (`None`: straight to the outputs, as Fast YOLO's cfg).
        hidden: Option<i64>,
        /// Dropout after the hidden layer (0.5 in the paper, Sec. 2.2).
        dropout: f64,
    },
    /// A fully convolutional head for small CPU runs: a 3x3 conv (leaky) then a 1x1 conv to
    /// `B*5 + C` channels; the feature map must be `S x S`.
    Conv {
        /// Channels of the 3x3 conv.
        hidden: i64,
    },
}

/// Order of the `S * S * (B*5 + C)` numbers of a fully connected head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Cell by cell (row-major), each cell `[B x (x, y, w, h, c)][C classes]`.
    Cells,
    /// darknet's `detection_layer`: `[S*S*C class probs][S*S*B confidences][S*S*B*4 coords]`,
    /// cells row-major (`i = row * S + col`).
    Darknet,
}

/// A YOLO model's shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct YoloConfig {
    /// Feature extractor.
    pub arch: Arch,
    /// Prediction head.
    pub head: Head,
    /// Flat order of a fully connected head's outputs.
    pub layout: Layout,
    /// Grid side `S` (7).
    pub grid: i64,
    /// Boxes per cell `B` (2).
    pub boxes: i64,
    /// Classes `C` (20).
    pub classes: i64,
    /// Square input side in pixels (448).
    pub input: i64,
}

impl YoloConfig {
    /// The paper model: 448 x 448, S = 7, B = 2, C = 20, FC 4096 with dropout 0.5.
    pub fn paper() -> Self {
        Self {
            arch: Arch::Paper,
            head: Head::Fc {
                hidden: Some(4096),
                dropout: 0.5,
            },
            layout: Layout::Darknet,
            grid: 7,
            boxes: 2,
            classes: 20,
            input: 448,
        }
    }

    /// Fast YOLO (darknet `yolov1-tiny.cfg`): 448, S = 7, B = 2, C = 20, one connected layer.
    pub fn fast() -> Self {
        Self {
            arch: Arch::Fast,
            head: Head::Fc {
                hidden: None,
                dropout: 0.0,
            },
            ..Self::paper()
        }
    }

    /// The CPU model: a ResNet-18 of `width` cut at stride 16 with the convolutional head, so
    /// `S = input / 16`.
    pub fn small(width: i64, input: i64, classes: i64) -> Self {
        Self {
            arch: Arch::ResNet { width, stride: 16 },
            head: Head::Conv { hidden: 4 * width },
            layout: Layout::Cells,
            grid: input / 16,
            boxes: 2,
            classes,
            input,
        }
    }

    /// Numbers per cell, `B*5 + C`.
    pub fn depth(&self) -> i64 {
        self.boxes * 5 + self.classes
    }

    /// Total stride of the feature extractor.
    pub fn stride(&self) -> i64 {
        match self.arch {
            Arch::Paper | Arch::Fast => 64,
            Arch::ResNet { stride, .. } => stride,
        }
    }

    /// Checks the settings against each other.
    pub fn check(&self) -> Result<()> {
        for (what, v) in [
            ("YoloConfig.grid", self.grid),
            ("YoloConfig.boxes", self.boxes),
            ("YoloConfig.classes", self.classes),
            ("YoloConfig.input", self.input),
        ] {
            if v < 1 {
                return Err(YoloError::config(what, "at least 1", v));
            }
        }
        if let Arch::ResNet { width, stride } = self.arch {
            if width < 1 || !(stride == 16 || stride == 32) {
                return Err(YoloError::config(
                    "Arch::ResNet",
                    "width >= 1 and stride 16 or 32",
                    format!("width {width}, stride {stride}"),
                ));
            }
        }
        let s = self.stride();
        if self.input % s != 0 {
            return Err(YoloError::config(
                "YoloConfig.input",
                format!("a multiple of the trunk's stride {s}"),
                self.input,
            ));
        }
        if self.input % self.grid != 0 {
            return Err(YoloError::config(
                "YoloConfig.input",
                format!("an image size the {}x{} grid divides", self.grid, self.grid),
                self.input,
            ));
        }
        match self.head {
            Head::Conv { hidden } => {
                if self.input / s != self.grid {
                    return Err(YoloError::config(
                        "YoloConfig.grid",
                        format!(
                            "input / stride = {} (a convolutional head predicts one cell per \
                             feature)",
                            self.input / s
                        ),
                        self.grid,
                    ));
                }
                if self.layout != Layout::Cells || hidden < 1 {
                    return Err(YoloError::config(
                        "Head::Conv",
                        "Layout::Cells and hidden >= 1",
                        format!("{:?}, hidden {hidden}", self.layout),
                    ));
                }
            }
            Head::Fc { hidden, dropout } => {
                if hidden.is_some_and(|h| h < 1) || !(0.0..1.0).contains(&dropout) {
                    return Err(YoloError::config(
                        "Head::Fc",
                        "hidden >= 1 and dropout in [0, 1)",
                        format!("hidden {hidden:?}, dropout {dropout}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One darknet layer of the conv stacks.
#[derive(Debug, Clone, Copy)]
enum L {
    /// `(size, filters, stride)`, leaky.
    C(i64, i64, i64),
    /// 2x2 max-pool, stride 2.
    M,
}

fn paper_layers() -> Vec<L> {
    use L::{C, M};
    let mut v = vec![
        C(7, 64, 2),
        M,
        C(3, 192, 1),
        M,
        C(1, 128, 1),
        C(3, 256, 1),
        C(1, 256, 1),
        C(3, 512, 1),
        M,
    ];
    for _ in 0..4 {
        v.extend([C(1, 256, 1), C(3, 512, 1)]);
    }
    v.extend([C(1, 512, 1), C(3, 1024, 1), M]);
    for _ in 0..2 {
        v.extend([C(1, 512, 1), C(3, 1024, 1)]);
    }
    v.extend([C(3, 1024, 1), C(3, 1024, 2), C(3, 1024, 1), C(3, 1024, 1)]);
    v
}

fn fast_layers() -> Vec<L> {
    use L::{C, M};
    let mut v = Vec::new();
    for f in [16, 32, 64, 128, 256, 512] {
        v.extend([C(3, f, 1), M]);
    }
    v.extend([C(3, 1024, 1), C(3, 256, 1)]);
    v
}

/// Number of convolutions of a darknet stack (24 for the paper network, 8 for Fast YOLO).
pub fn conv_count(arch: Arch) -> usize {
    let layers = match arch {
        Arch::Paper => paper_layers(),
        Arch::Fast => fast_layers(),
        Arch::ResNet { .. } => return 0,
    };
    layers.iter().filter(|l| matches!(l, L::C(..))).count()
}

/// Leaky ReLU with darknet's slope 0.1. tch's `leaky_relu` fixes PyTorch's default 0.01 (its C
/// wrapper passes no slope), but `leaky_relu_backward(g, x, slope)` is `x > 0 ? g : slope * g`,
/// so with `g = x` it is `leaky_relu(x, slope)`: one kernel forward. Its derivative in `g` is
/// `leaky_relu_backward(grad, x, slope)`, the leaky ReLU's own backward kernel; `x` is passed
/// detached so that autograd does not also build the zero gradient of the mask argument. Forward
/// and backward are then exactly `torch.nn.LeakyReLU(0.1)`'s kernels (`prelu` with a constant
/// weight, used before, also reduced a weight gradient: 2.5x slower on the CPU).
fn leaky(x: &Tensor) -> Tensor {
    // tch's receiver is the mask argument (`self`), the first argument `grad_output`.
    x.detach().leaky_relu_backward(x, 0.1, false)
}

enum Trunk {
    Darknet(Vec<(Option<nn::Conv2D>, i64)>),
    ResNet(Box<ResNet>, i64),
}

enum HeadLayers {
    Fc {
        hidden: Option<nn::Linear>,
        dropout: f64,
        out: nn::Linear,
    },
    Conv {
        mid: Box<nn::Conv2D>,
        out: Box<nn::Conv2D>,
    },
}

/// A YOLO v1 network.
pub struct Yolo {
    cfg: YoloConfig,
    trunk: Trunk,
    head: HeadLayers,
}

impl std::fmt::Debug for Yolo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Yolo").field("cfg", &self.cfg).finish()
    }
}

impl Yolo {
    /// Builds the network under `p` (`conv{i}` / `trunk`, then `fc1`, `fc2` or `head_mid`,
    /// `head_out`).
    pub fn new(p: &nn::Path, cfg: &YoloConfig) -> Result<Self> {
        cfg.check()?;
        let (trunk, channels) = match cfg.arch {
            Arch::Paper | Arch::Fast => {
                let layers = if cfg.arch == Arch::Paper {
                    paper_layers()
                } else {
                    fast_layers()
                };
                let mut cin = 3;
                let mut v = Vec::new();
                let mut i = 0;
                for l in layers {
                    match l {
                        L::C(k, f, s) => {
                            let c = nn::conv2d(
                                &(p / format!("conv{i}")),
                                cin,
                                f,
                                k,
                                nn::ConvConfig {
                                    stride: s,
                                    padding: k / 2,
                                    ..Default::default()
                                },
                            );
                            v.push((Some(c), s));
                            cin = f;
                            i += 1;
                        }
                        L::M => v.push((None, 2)),
                    }
                }
                (Trunk::Darknet(v), cin)
            }
            Arch::ResNet { width, stride } => {
                let rc = ResNetConfig::small(Depth::R18, width);
                let ch = rc.channels()[if stride == 16 { 2 } else { 3 }];
                (
                    Trunk::ResNet(Box::new(ResNet::new(&(p / "trunk"), &rc)?), stride),
                    ch,
                )
            }
        };
        let fm = cfg.input / cfg.stride();
        let outputs = cfg.grid * cfg.grid * cfg.depth();
        let head = match cfg.head {
            Head::Fc { hidden, dropout } => {
                let mut fin = fm * fm * channels;
                let hidden = hidden.map(|h| {
                    let l = nn::linear(p / "fc1", fin, h, Default::default());
                    fin = h;
                    l
                });
                let out = nn::linear(p / "fc2", fin, outputs, Default::default());
                HeadLayers::Fc {
                    hidden,
                    dropout,
                    out,
                }
            }
            Head::Conv { hidden } => {
                let mid = nn::conv2d(
                    p / "head_mid",
                    channels,
                    hidden,
                    3,
                    nn::ConvConfig {
                        padding: 1,
                        ..Default::default()
                    },
                );
                let out = nn::conv2d(
                    p / "head_out",
                    hidden,
                    cfg.depth(),
                    1,
                    nn::ConvConfig {
                        ws_init: nn::Init::Randn {
                            mean: 0.0,
                            stdev: 0.01,
                        },
                        ..Default::default()
                    },
                );
                HeadLayers::Conv {
                    mid: Box::new(mid),
                    out: Box::new(out),
                }
            }
        };
        Ok(Self {
            cfg: *cfg,
            trunk,
            head,
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &YoloConfig {
        &self.cfg
    }

    /// Checks an image batch: `[N, 3, input, input]` floating point.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let s = x.size();
        let n = self.cfg.input;
        let float = matches!(
            x.kind(),
            tch::Kind::Float | tch::Kind::Double | tch::Kind::Half | tch::Kind::BFloat16
        );
        if s.len() != 4 || s[1] != 3 || s[2] != n || s[3] != n || !float {
            return Err(YoloError::input(
                "images",
                format!(
                    "a floating-point [N, 3, {n}, {n}] batch (kind {:?})",
                    x.kind()
                ),
                s,
            ));
        }
        Ok(())
    }

    /// Features of a checked batch.
    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match &self.trunk {
            Trunk::Darknet(layers) => {
                let mut h = x.shallow_clone();
                for (c, s) in layers {
                    h = match c {
                        Some(c) => leaky(&c.forward(&h)),
                        None => h.max_pool2d([2, 2], [*s, *s], [0, 0], [1, 1], false),
                    };
                }
                Ok(h)
            }
            Trunk::ResNet(r, stride) => {
                let mut h = r.stem(x, train);
                let last = if *stride == 16 { 3 } else { 4 };
                for stage in 1..=last {
                    h = r.stage(stage, &h, train, 1)?;
                }
                Ok(h)
            }
        }
    }

    /// The flat head output `[N, S*S*(B*5 + C)]` in the configured [`Layout`] (a
    /// convolutional head gives [`Layout::Cells`]).
    pub fn forward_raw(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(x)?;
        let f = self.features(x, train)?;
        let n = f.size()[0];
        Ok(match &self.head {
            HeadLayers::Fc {
                hidden,
                dropout,
                out,
            } => {
                let mut h = f.flatten(1, -1);
                if let Some(l) = hidden {
                    h = leaky(&l.forward(&h));
                    if *dropout > 0.0 {
                        h = h.dropout(*dropout, train);
                    }
                }
                out.forward(&h)
            }
            HeadLayers::Conv { mid, out } => out
                .forward(&leaky(&mid.forward(&f)))
                .permute([0, 2, 3, 1])
                .reshape([n, -1]),
        })
    }

    /// Predictions `[N, S, S, B*5 + C]` of `[N, 3, input, input]` images in `[0, 1]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let raw = self.forward_raw(x, train)?;
        to_cells(
            &raw,
            self.cfg.layout,
            self.cfg.grid,
            self.cfg.boxes,
            self.cfg.classes,
        )
    }
}

/// Reads a flat `[N, S*S*(B*5 + C)]` output in `layout` as `[N, S, S, B*5 + C]`.
pub fn to_cells(raw: &Tensor, layout: Layout, s: i64, b: i64, c: i64) -> Result<Tensor> {
    let d = b * 5 + c;
    let sz = raw.size();
    if sz.len() != 2 || sz[1] != s * s * d {
        return Err(YoloError::input(
            "raw predictions",
            format!("[N, S*S*(B*5 + C)] = [N, {}]", s * s * d),
            sz,
        ));
    }
    let n = sz[0];
    Ok(match layout {
        Layout::Cells => raw.reshape([n, s, s, d]),
        Layout::Darknet => {
            let l = s * s;
            let cls = raw.narrow(1, 0, l * c).reshape([n, l, c]);
            let conf = raw.narrow(1, l * c, l * b).reshape([n, l, b, 1]);
            let coords = raw.narrow(1, l * (c + b), l * b * 4).reshape([n, l, b, 4]);
            let boxes = Tensor::cat(&[coords, conf], 3).reshape([n, l, b * 5]);
            Tensor::cat(&[boxes, cls], 2).reshape([n, s, s, d])
        }
    })
}

/// The inverse of [`to_cells`]: `[N, S, S, B*5 + C]` back to a flat `layout` vector.
pub fn from_cells(cells: &Tensor, layout: Layout, b: i64, c: i64) -> Result<Tensor> {
    let sz = cells.size();
    if sz.len() != 4 || sz[1] != sz[2] || sz[3] != b * 5 + c {
        return Err(YoloError::input(
            "cell predictions",
            format!("[N, S, S, B*5 + C] with B*5 + C = {}", b * 5 + c),
            sz,
        ));
    }
    let (n, s) = (sz[0], sz[1]);
    let l = s * s;
    Ok(match layout {
        Layout::Cells => cells.reshape([n, -1]),
        Layout::Darknet => {
            let flat = cells.reshape([n, l, b * 5 + c]);
            let boxes = flat.narrow(2, 0, b * 5).reshape([n, l, b, 5]);
            let cls = flat.narrow(2, b * 5, c).reshape([n, -1]);
            let conf = boxes.select(3, 4).reshape([n, -1]);
            let coords = boxes.narrow(3, 0, 4).reshape([n, -1]);
            Tensor::cat(&[cls, conf, coords], 1)
        }
    })
}

/// Trainable parameters of a variable store.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn count(cfg: &YoloConfig) -> i64 {
        let vs = nn::VarStore::new(Device::Cpu);
        Yolo::new(&vs.root(), cfg).unwrap();
        parameter_count(&vs)
    }

    #[test]
    fn leaky_slope_is_a_tenth_in_value_and_gradient() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 3.0])
            .view([1, 4])
            .set_requires_grad(true);
        let y = leaky(&x);
        assert_eq!(
            Vec::<f32>::try_from(y.view([-1])).unwrap(),
            vec![-0.2, -0.05, 0.0, 3.0]
        );
        // d/dx sum(w * leaky(x)) = w * (x > 0 ? 1 : 0.1), as torch's LeakyReLU(0.1) (0 at 0).
        let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([1, 4]);
        (&y * &w).sum(Kind::Float).backward();
        assert_eq!(
            Vec::<f32>::try_from(x.grad().view([-1])).unwrap(),
            vec![0.1, 0.2, 0.3, 4.0]
        );
        // The prelu formulation it replaces gives the same, value and gradient.
        let x2 = x.detach().set_requires_grad(true);
        let p = x2.prelu(&Tensor::from_slice(&[0.1f32]));
        assert!(p.allclose(&leaky(&x.detach()), 0.0, 0.0, false));
        (&p * &w).sum(Kind::Float).backward();
        assert!(x2.grad().allclose(&x.grad(), 0.0, 0.0, false));
    }

    #[test]
    fn layer_counts_match_the_paper_and_cfg() {
        assert_eq!(conv_count(Arch::Paper), 24);
        assert_eq!(conv_count(Arch::Fast), 8);
    }

    #[test]
    fn fast_yolo_parameters_by_hand() {
        // 3x3 convs with bias, then 7*7*256 -> 1470.
        let mut convs = 0;
        let mut cin = 3;
        for f in [16, 32, 64, 128, 256, 512, 1024, 256] {
            convs += cin * f * 9 + f;
            cin = f;
        }
        let fc = 7 * 7 * 256 * 1470 + 1470;
        assert_eq!(count(&YoloConfig::fast()), convs + fc);
    }

    #[test]
    fn small_model_output_shape_and_bad_sizes() {
        let cfg = YoloConfig::small(8, 96, 10);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Yolo::new(&vs.root(), &cfg).unwrap();
        let y = m
            .forward_t(
                &Tensor::rand([2, 3, 96, 96], (Kind::Float, Device::Cpu)),
                false,
            )
            .unwrap();
        assert_eq!(y.size(), vec![2, 6, 6, 20]);
        let e = m.forward_t(
            &Tensor::rand([1, 3, 64, 64], (Kind::Float, Device::Cpu)),
            false,
        );
        assert!(e.unwrap_err().to_string().contains("[N, 3, 96, 96]"));
        let mut bad = cfg;
        bad.input = 100;
        let e = Yolo::new(&vs.root(), &bad).unwrap_err().to_string();
        assert!(e.contains("stride 16"), "{e}");
        let mut bad = YoloConfig::fast();
        bad.grid = 5;
        bad.input = 448 + 64;
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("grid divides"), "{e}");
    }

    #[test]
    fn darknet_layout_round_trips() {
        let (s, b, c) = (3, 2, 4);
        let raw = Tensor::randn([2, s * s * (b * 5 + c)], (Kind::Float, Device::Cpu));
        let cells = to_cells(&raw, Layout::Darknet, s, b, c).unwrap();
        // Cell (1, 2), box 1's confidence sits at S*S*C + i*B + 1 with i = row*S + col.
        let i = s + 2; // row 1, col 2
        let v = raw.double_value(&[0, s * s * c + i * b + 1]);
        assert_eq!(cells.double_value(&[0, 1, 2, 5 + 4]), v);
        // Its class 3 at i*C + 3.
        let v = raw.double_value(&[1, i * c + 3]);
        assert_eq!(cells.double_value(&[1, 1, 2, b * 5 + 3]), v);
        let back = from_cells(&cells, Layout::Darknet, b, c).unwrap();
        assert!(back.equal(&raw));
    }
}
