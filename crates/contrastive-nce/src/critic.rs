//! Critics `f(x, y)` that score every pair of a batch, and the learned baseline `log a(y)`,
//! as in the vbmi notebook (`google-research/vbmi/vbmi_demo.ipynb`, "Critics" and
//! "Baselines"): an MLP is `layers` hidden ReLU layers of `hidden_dim` and a linear output.
//!
//! Each critic returns `scores[i, j] = f(x_j, y_i)` (the convention of [`crate::mi`]).
//! - separable: `f(x, y) = g(x)^T h(y)`, two MLPs to `embed_dim`; `2n` forward passes;
//! - concat: `f(x, y) = MLP([x, y])`; `n^2` forward passes;
//! - bilinear: `f(x, y) = x^T W y`.
//!
//! The notebook's concat critic transposes its output (`scores[i, j] = f(x_i, y_j)`), unlike
//! its separable critic and its stated convention; here both follow the convention, which
//! matters only for the row-wise terms (InfoNCE's softmax, the baseline of `y_i`).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::{check_finite, NceError, Result};

/// A multilayer perceptron: `layers` hidden `Linear + ReLU` of width `hidden`, then a linear
/// output (vbmi `mlp`). Weights start as `torch.nn.Linear`'s (uniform in `+-1/sqrt(fan_in)`,
/// as SMILE's PyTorch code): tch's default (Kaiming with the ReLU gain) is sqrt(6) times wider
/// per layer, which starts a separable critic at scores of +-40 and overflows `e^f` in NWJ /
/// TUBA within a few steps.
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<nn::Linear>,
    out: nn::Linear,
}

impl Mlp {
    /// Variables under `vs`: `hidden.<k>` and `out`.
    pub fn new(vs: &nn::Path, in_dim: i64, hidden: i64, out_dim: i64, layers: usize) -> Self {
        let mut h = Vec::with_capacity(layers);
        let mut d = in_dim;
        for k in 0..layers {
            h.push(nn::linear(
                vs / "hidden" / k,
                d,
                hidden,
                torch_linear_init(d),
            ));
            d = hidden;
        }
        let out = nn::linear(vs / "out", d, out_dim, torch_linear_init(d));
        Mlp { hidden: h, out }
    }
}

/// `torch.nn.Linear`'s initialisation: weight and bias uniform in `+-1/sqrt(fan_in)`.
fn torch_linear_init(fan_in: i64) -> nn::LinearConfig {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::LinearConfig {
        ws_init: nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
        bs_init: Some(nn::Init::Uniform {
            lo: -bound,
            up: bound,
        }),
        bias: true,
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let h = self
            .hidden
            .iter()
            .fold(xs.shallow_clone(), |h, l| l.forward(&h).relu());
        self.out.forward(&h)
    }
}

/// The critic's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CriticKind {
    /// `g(x)^T h(y)`.
    Separable,
    /// `MLP([x, y])` (the notebook's default, "joint critic").
    Concat,
    /// `x^T W y`.
    Bilinear,
}

impl CriticKind {
    /// `separable`, `concat`, `bilinear`.
    pub fn name(&self) -> &'static str {
        match self {
            CriticKind::Separable => "separable",
            CriticKind::Concat => "concat",
            CriticKind::Bilinear => "bilinear",
        }
    }
}

/// A critic's shape. `Default` is the benchmark's (vbmi `critic_params`: d = 20, two hidden
/// layers of 256, 32-d embeddings, concat).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticConfig {
    /// Architecture.
    pub kind: CriticKind,
    /// Width of `x`.
    pub dim_x: i64,
    /// Width of `y`.
    pub dim_y: i64,
    /// Hidden width of the MLPs.
    pub hidden_dim: i64,
    /// Hidden layers of the MLPs.
    pub layers: usize,
    /// Embedding width of the separable critic.
    pub embed_dim: i64,
}

impl Default for CriticConfig {
    fn default() -> Self {
        CriticConfig {
            kind: CriticKind::Concat,
            dim_x: 20,
            dim_y: 20,
            hidden_dim: 256,
            layers: 2,
            embed_dim: 32,
        }
    }
}

#[derive(Debug)]
enum Net {
    Separable { g: Mlp, h: Mlp },
    Concat { f: Mlp },
    Bilinear { w: Tensor },
}

/// A critic scoring all pairs of a batch.
#[derive(Debug)]
pub struct Critic {
    cfg: CriticConfig,
    net: Net,
}

impl Critic {
    /// Variables under `vs` (`g`, `h` / `f` / `w`).
    pub fn new(vs: &nn::Path, cfg: &CriticConfig) -> Result<Self> {
        if cfg.dim_x < 1 || cfg.dim_y < 1 || cfg.hidden_dim < 1 || cfg.embed_dim < 1 {
            return Err(NceError::Config(format!(
                "critic widths must be positive, got {cfg:?}"
            )));
        }
        let net = match cfg.kind {
            CriticKind::Separable => Net::Separable {
                g: Mlp::new(
                    &(vs / "g"),
                    cfg.dim_x,
                    cfg.hidden_dim,
                    cfg.embed_dim,
                    cfg.layers,
                ),
                h: Mlp::new(
                    &(vs / "h"),
                    cfg.dim_y,
                    cfg.hidden_dim,
                    cfg.embed_dim,
                    cfg.layers,
                ),
            },
            CriticKind::Concat => Net::Concat {
                f: Mlp::new(
                    &(vs / "f"),
                    cfg.dim_x + cfg.dim_y,
                    cfg.hidden_dim,
                    1,
                    cfg.layers,
                ),
            },
            CriticKind::Bilinear => {
                let bound = 1.0 / ((cfg.dim_x * cfg.dim_y) as f64).sqrt();
                Net::Bilinear {
                    w: vs.var(
                        "w",
                        &[cfg.dim_x, cfg.dim_y],
                        nn::Init::Uniform {
                            lo: -bound,
                            up: bound,
                        },
                    ),
                }
            }
        };
        Ok(Critic { cfg: *cfg, net })
    }

    /// The configuration.
    pub fn config(&self) -> &CriticConfig {
        &self.cfg
    }

    /// `scores[i, j] = f(x_j, y_i)` for `x: [n, dim_x]`, `y: [n, dim_y]`.
    pub fn scores(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let (sx, sy) = (x.size(), y.size());
        if sx.len() != 2 || sx[1] != self.cfg.dim_x {
            return Err(NceError::Shape {
                what: "critic x",
                expected: format!("[n, {}]", self.cfg.dim_x),
                got: sx,
            });
        }
        if sy.len() != 2 || sy[1] != self.cfg.dim_y || sy[0] != sx[0] {
            return Err(NceError::Shape {
                what: "critic y",
                expected: format!("[{}, {}] (as many as x)", sx[0], self.cfg.dim_y),
                got: sy,
            });
        }
        check_finite("critic x", x)?;
        check_finite("critic y", y)?;
        let n = sx[0];
        Ok(match &self.net {
            Net::Separable { g, h } => h.forward(y).matmul(&g.forward(x).tr()),
            Net::Concat { f } => {
                let xt = x.unsqueeze(0).expand([n, n, sx[1]], false);
                let yt = y.unsqueeze(1).expand([n, n, sy[1]], false);
                let pairs = Tensor::cat(&[xt, yt], 2).reshape([n * n, sx[1] + sy[1]]);
                f.forward(&pairs).reshape([n, n])
            }
            Net::Bilinear { w } => y.matmul(&w.tr()).matmul(&x.tr()),
        })
    }
}

/// The learned baseline `log a(y)`: vbmi's "unnormalized" baseline, an MLP of two hidden
/// layers of 512 with one output.
#[derive(Debug)]
pub struct Baseline {
    mlp: Mlp,
    dim_y: i64,
}

impl Baseline {
    /// vbmi's baseline (`mlp(hidden_dim=512, output_dim=1, layers=2)`) for `y` of width
    /// `dim_y`, under `vs`.
    pub fn new(vs: &nn::Path, dim_y: i64) -> Self {
        Baseline {
            mlp: Mlp::new(vs, dim_y, 512, 1, 2),
            dim_y,
        }
    }

    /// `log a(y_i)`, `[n]`.
    pub fn log_baseline(&self, y: &Tensor) -> Result<Tensor> {
        let s = y.size();
        if s.len() != 2 || s[1] != self.dim_y {
            return Err(NceError::Shape {
                what: "baseline y",
                expected: format!("[n, {}]", self.dim_y),
                got: s,
            });
        }
        Ok(self.mlp.forward(y).reshape([s[0]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn every_critic_scores_pairs_in_the_convention() {
        let _g = test_support::rng_lock();
        tch::manual_seed(0);
        let n = 5;
        let x = Tensor::randn([n, 3], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([n, 4], (Kind::Float, Device::Cpu));
        for kind in [
            CriticKind::Separable,
            CriticKind::Concat,
            CriticKind::Bilinear,
        ] {
            let vs = nn::VarStore::new(Device::Cpu);
            let cfg = CriticConfig {
                kind,
                dim_x: 3,
                dim_y: 4,
                hidden_dim: 8,
                ..Default::default()
            };
            let c = Critic::new(&vs.root(), &cfg).unwrap();
            let s = c.scores(&x, &y).unwrap();
            assert_eq!(s.size(), [n, n]);
            // scores[i, j] = f(x_j, y_i): score the pair (x_3, y_1) alone.
            let one = c.scores(&x.narrow(0, 3, 1), &y.narrow(0, 1, 1)).unwrap();
            let d = (s.double_value(&[1, 3]) - one.double_value(&[0, 0])).abs();
            assert!(d < 1e-5, "{kind:?}: {d}");
        }
    }

    #[test]
    fn wrong_widths_are_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let c = Critic::new(&vs.root(), &CriticConfig::default()).unwrap();
        let x = Tensor::zeros([4, 20], (Kind::Float, Device::Cpu));
        let y = Tensor::zeros([3, 20], (Kind::Float, Device::Cpu));
        let e = c.scores(&x, &y).unwrap_err().to_string();
        assert!(e.contains("[4, 20]") && e.contains("[3, 20]"), "{e}");
        let bad = CriticConfig {
            hidden_dim: 0,
            ..Default::default()
        };
        assert!(Critic::new(&vs.root(), &bad).is_err());
    }
}
