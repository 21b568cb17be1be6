//! TridentNet (Li et al. 2019, "Scale-Aware Trident Networks for Object Detection", arXiv
//! 1901.01892, Sec. 3): the blocks of one trunk stage run as three parallel branches that
//! share every weight (one tensor per conv, so the gradients of all branches accumulate into
//! it) and differ only in the dilation of their 3x3 convs (1, 2, 3: growing receptive fields);
//! each branch is trained on the objects of its scale-aware range (simpledet:
//! `(0, 90), (30, 160), (90, -1)` px) and the fast inference mode (TridentNet-Fast, Sec. 3.4)
//! keeps the middle branch only. As in the paper's C4 detector, the trident blocks are
//! `layer3` (stride 16); here a shared 1x1 + 3x3 neck maps each branch to the head's width.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::{PyramidError, Result};
use crate::fpn::Pyramid;
use crate::levels::{trident_ranges, ValidRange};
use crate::resnet::{ResNet, ResNetConfig, StageNorms};
use crate::retinanet::Backbone;

/// TridentNet's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TridentConfig {
    /// The trunk; its `layer3` becomes the trident stage and `layer4` is unused.
    pub trunk: ResNetConfig,
    /// Dilations of the branches (1, 2, 3).
    pub dilations: Vec<i64>,
    /// Per branch, the sizes it trains on and detects (original pixels).
    pub ranges: Vec<ValidRange>,
    /// Channels of the neck's output (the head's width).
    pub out_channels: i64,
    /// The branch TridentNet-Fast keeps (1: the middle one).
    pub fast_branch: usize,
    /// BatchNorm per branch in the trident stage (simpledet's unshared-BN option; the convs
    /// stay shared): branch 0 uses the trunk's own `layer3` norms, branch `i > 0` its own
    /// under `neck.branch_bn.<i>` (false: every branch shares the trunk's norms).
    #[serde(default)]
    pub branch_bn: bool,
}

impl TridentConfig {
    /// Three branches with dilations 1, 2, 3 and simpledet's ranges.
    pub fn new(trunk: ResNetConfig, out_channels: i64) -> Self {
        Self {
            trunk,
            dilations: vec![1, 2, 3],
            ranges: trident_ranges().to_vec(),
            out_channels,
            fast_branch: 1,
            branch_bn: false,
        }
    }
}

/// A ResNet trunk whose `layer3` runs as weight-sharing dilated branches.
#[derive(Debug)]
pub struct TridentNet {
    cfg: TridentConfig,
    /// The trunk (its `layer3` weights are the shared branch weights).
    pub trunk: ResNet,
    lateral: nn::Conv2D,
    output: nn::Conv2D,
    /// Per branch, its own `layer3` norms (`branch_bn`), `None` for the trunk's.
    norms: Vec<Option<StageNorms>>,
    fast: AtomicBool,
}

impl TridentNet {
    /// Builds `p / "body"` (the trunk) and `p / "neck"`.
    pub fn new(p: &nn::Path, cfg: &TridentConfig) -> Result<Self> {
        if cfg.dilations.is_empty()
            || cfg.dilations.iter().any(|&d| d < 1)
            || cfg.ranges.len() != cfg.dilations.len()
            || cfg.fast_branch >= cfg.dilations.len()
        {
            return Err(PyramidError::config(
                "TridentConfig",
                "positive dilations, one range per branch and a fast branch among them",
                format!(
                    "dilations {:?}, {} ranges, fast branch {}",
                    cfg.dilations,
                    cfg.ranges.len(),
                    cfg.fast_branch
                ),
            ));
        }
        let trunk = ResNet::new(&(p / "body"), &cfg.trunk)?;
        let c4 = trunk.channels()[2];
        let n = p / "neck";
        let conv = |name: &str, cin: i64, k: i64| {
            let c = nn::ConvConfig {
                padding: k / 2,
                ..Default::default()
            };
            nn::conv2d(&n / name, cin, cfg.out_channels, k, c)
        };
        let norms = (0..cfg.dilations.len())
            .map(|i| {
                (cfg.branch_bn && i > 0)
                    .then(|| trunk.branch_norms(&(&n / "branch_bn" / i), 3))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norms,
            lateral: conv("lateral", c4, 1),
            output: conv("output", cfg.out_channels, 3),
            trunk,
            cfg: cfg.clone(),
            fast: AtomicBool::new(false),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TridentConfig {
        &self.cfg
    }

    /// TridentNet-Fast: only the middle branch runs (true) or every branch (false).
    pub fn set_fast(&self, fast: bool) {
        self.fast.store(fast, Ordering::Relaxed);
    }

    /// The branch outputs of `layer3` for the C3 map `c3`, one per dilation (or the fast one).
    pub fn branches(&self, c3: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        self.branch_ids()
            .into_iter()
            .map(|i| {
                let norms = self.norms.get(i).and_then(Option::as_ref);
                self.trunk
                    .stage_with(3, c3, train, self.cfg.dilations[i], norms)
            })
            .collect()
    }

    fn branch_ids(&self) -> Vec<usize> {
        if self.fast.load(Ordering::Relaxed) {
            vec![self.cfg.fast_branch]
        } else {
            (0..self.cfg.dilations.len()).collect()
        }
    }
}

impl Backbone for TridentNet {
    fn features(&self, images: &Tensor, train: bool) -> Result<Pyramid> {
        ResNet::check_input(images)?;
        let c2 = self
            .trunk
            .stage(1, &self.trunk.stem(images, train), train, 1)?;
        let c3 = self.trunk.stage(2, &c2, train, 1)?;
        let maps = self
            .branches(&c3, train)?
            .iter()
            .map(|b| self.output.forward(&self.lateral.forward(b)))
            .collect::<Vec<_>>();
        Ok(Pyramid {
            strides: vec![16; maps.len()],
            ids: self.branch_ids(),
            maps,
        })
    }

    fn out_channels(&self) -> i64 {
        self.cfg.out_channels
    }

    fn num_levels(&self) -> usize {
        self.cfg.dilations.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resnet::Depth;
    use tch::{Device, Kind};

    #[test]
    fn branches_share_one_tensor_and_their_gradients_add_up() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = TridentConfig::new(ResNetConfig::small(Depth::R18, 8), 16);
        let net = TridentNet::new(&vs.root(), &cfg).unwrap();
        let names = vs.variables();
        // One weight per conv: no per-branch copies.
        assert!(
            names
                .keys()
                .filter(|k| k.contains("layer3.0.conv2.weight"))
                .count()
                == 1
        );
        let mut w = names["body.layer3.0.conv2.weight"].shallow_clone();
        let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let c3 = tch::no_grad(|| {
            let c2 = net
                .trunk
                .stage(1, &net.trunk.stem(&x, false), false, 1)
                .unwrap();
            net.trunk.stage(2, &c2, false, 1).unwrap()
        });
        let branch_grad = |i: usize| {
            w.zero_grad();
            let b = net.trunk.stage(3, &c3, false, cfg.dilations[i]).unwrap();
            b.square().sum(Kind::Float).backward();
            w.grad().copy()
        };
        let g: Vec<Tensor> = (0..3).map(branch_grad).collect();
        w.zero_grad();
        let all = net.branches(&c3, false).unwrap();
        assert_eq!(all.len(), 3);
        // Dilations differ, so the branches do.
        assert!((&all[0] - &all[2]).abs().max().double_value(&[]) > 1e-4);
        let total = all
            .iter()
            .map(|b| b.square().sum(Kind::Float))
            .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
        total.backward();
        let want = &g[0] + &g[1] + &g[2];
        let err = (w.grad() - &want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        assert!(err <= 1e-4 * scale.max(1.0), "{err} vs {scale}");
        assert!((&g[0] - &g[1]).abs().max().double_value(&[]) > 1e-6);
        // Fast mode: the middle branch alone, same values as in the full run.
        net.set_fast(true);
        let fast = net.features(&x, false).unwrap();
        assert_eq!(fast.ids, vec![1]);
        net.set_fast(false);
        let full = net.features(&x, false).unwrap();
        assert_eq!(full.ids, vec![0, 1, 2]);
        assert!(
            (&fast.maps[0] - &full.maps[1])
                .abs()
                .max()
                .double_value(&[])
                < 1e-6
        );
        let bad = TridentConfig {
            ranges: vec![],
            ..cfg.clone()
        };
        assert!(TridentNet::new(&(vs.root() / "x"), &bad).is_err());
    }

    #[test]
    fn per_branch_batchnorm_shares_the_convs_not_the_norms() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = TridentConfig {
            branch_bn: true,
            ..TridentConfig::new(ResNetConfig::small(Depth::R18, 8), 16)
        };
        let net = TridentNet::new(&vs.root(), &cfg).unwrap();
        let vars = vs.variables();
        let count = |pat: &str| vars.keys().filter(|k| k.contains(pat)).count();
        // Still one conv tensor, but a BN per branch (the trunk's + two).
        assert_eq!(count("layer3.0.conv2.weight"), 1);
        assert_eq!(count("layer3.0.bn2.weight"), 1);
        assert_eq!(count("branch_bn.1.0.bn2.weight"), 1);
        assert_eq!(count("branch_bn.2.0.bn2.weight"), 1);
        assert_eq!(count("branch_bn.0."), 0);
        let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        let c3 = tch::no_grad(|| {
            let c2 = net
                .trunk
                .stage(1, &net.trunk.stem(&x, false), false, 1)
                .unwrap();
            net.trunk.stage(2, &c2, false, 1).unwrap()
        });
        // Change branch 1's norm only: branch 1 moves, branch 0 does not.
        let before = tch::no_grad(|| net.branches(&c3, false).unwrap());
        let mut b1 = vars["neck.branch_bn.1.1.bn2.bias"].shallow_clone();
        tch::no_grad(|| {
            let _ = b1.fill_(0.5);
        });
        let after = tch::no_grad(|| net.branches(&c3, false).unwrap());
        let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        assert!(diff(&before[0], &after[0]) < 1e-7);
        assert!(diff(&before[1], &after[1]) > 1e-3);
        // Gradients: the shared conv gets all branches, branch 2's norm only its own.
        let mut w = vars["body.layer3.0.conv2.weight"].shallow_clone();
        let mut g2 = vars["neck.branch_bn.2.0.bn2.weight"].shallow_clone();
        w.zero_grad();
        g2.zero_grad();
        let out = net.branches(&c3, true).unwrap();
        out[0].square().sum(Kind::Float).backward();
        assert!(w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert!(!g2.grad().defined() || g2.grad().abs().sum(Kind::Float).double_value(&[]) == 0.0);
        // Norms of another stage are refused by name.
        let other = net.trunk.branch_norms(&(vs.root() / "y"), 2).unwrap();
        let e = net
            .trunk
            .stage_with(3, &c3, false, 1, Some(&other))
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer3") && e.contains("layer2"), "{e}");
    }
}
