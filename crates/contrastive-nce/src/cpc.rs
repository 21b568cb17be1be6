//! Contrastive Predictive Coding (van den Oord, Li & Vinyals 2018, arXiv 1807.03748, Sec. 2-3,
//! Fig. 1): a strided 1-D convolutional encoder `z_t = g_enc(x)`, a GRU context
//! `c_t = g_ar(z_<=t)`, one linear predictor `W_k` per step `k = 1..K` scoring
//! `f_k(x_{t+k}, c_t) = z_{t+k}^T W_k c_t`, trained with InfoNCE (eq. 4) whose negatives are
//! the other sequences of the batch and the other time steps.
//!
//! Presets: [`CpcConfig::audio`] is the paper's (strides 5,4,2,2,2, kernels 10,8,4,4,4, 512
//! channels, GRU 256, K = 12: one frame per 10 ms of 16 kHz audio); [`CpcConfig::imu`] a
//! small one for 50 Hz six-channel IMU signals.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT, RNN};
use tch::{Kind, Reduction, Tensor};

use crate::error::{check_finite, NceError, Result};

/// CPC's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpcConfig {
    /// Input channels (1 for audio, 6 for a watch IMU).
    pub in_channels: i64,
    /// Width of the encoder's layers and of `z`.
    pub channels: i64,
    /// Kernel of each conv layer.
    pub kernels: Vec<i64>,
    /// Stride of each conv layer.
    pub strides: Vec<i64>,
    /// Padding of each conv layer.
    pub paddings: Vec<i64>,
    /// GRU width (`c_t`).
    pub context_dim: i64,
    /// Steps predicted ahead, `K`.
    pub horizon: usize,
}

impl Default for CpcConfig {
    fn default() -> Self {
        CpcConfig::audio()
    }
}

impl CpcConfig {
    /// The paper's audio model (Sec. 3.1): strides 5,4,2,2,2 (x160), kernels 10,8,4,4,4, 512
    /// channels, GRU 256, K = 12; paddings 3,2,1,1,1 as common re-implementations.
    pub fn audio() -> Self {
        CpcConfig {
            in_channels: 1,
            channels: 512,
            kernels: vec![10, 8, 4, 4, 4],
            strides: vec![5, 4, 2, 2, 2],
            paddings: vec![3, 2, 1, 1, 1],
            context_dim: 256,
            horizon: 12,
        }
    }

    /// A small IMU model: six channels at 50 Hz, strides 2,2 (one frame per 80 ms), 64
    /// channels, GRU 64, K = 6.
    pub fn imu() -> Self {
        CpcConfig {
            in_channels: 6,
            channels: 64,
            kernels: vec![4, 4, 3],
            strides: vec![2, 2, 1],
            paddings: vec![1, 1, 1],
            context_dim: 64,
            horizon: 6,
        }
    }

    /// Input samples per encoder frame (the product of the strides).
    pub fn downsampling(&self) -> i64 {
        self.strides.iter().product()
    }

    fn validate(&self) -> Result<()> {
        let n = self.kernels.len();
        if n == 0 || self.strides.len() != n || self.paddings.len() != n {
            return Err(NceError::Config(format!(
                "CPC encoder: {} kernels, {} strides, {} paddings; expected as many of each (>= 1)",
                n,
                self.strides.len(),
                self.paddings.len()
            )));
        }
        if self.horizon == 0 || self.channels < 1 || self.context_dim < 1 || self.in_channels < 1 {
            return Err(NceError::Config(format!(
                "CPC widths and horizon must be positive: {self:?}"
            )));
        }
        Ok(())
    }
}

/// The CPC model.
#[derive(Debug)]
pub struct Cpc {
    cfg: CpcConfig,
    convs: Vec<nn::Conv1D>,
    norms: Vec<nn::BatchNorm>,
    gru: nn::GRU,
    predictors: Vec<nn::Linear>,
}

/// What [`Cpc::loss`] returns.
#[derive(Debug)]
pub struct CpcOutput {
    /// The InfoNCE loss averaged over `k = 1..K`.
    pub loss: Tensor,
    /// Per `k`: how often the positive scores highest among all candidates.
    pub accuracy: Vec<f64>,
}

impl Cpc {
    /// Variables under `vs`: `encoder.<i>.conv`, `encoder.<i>.bn`, `gru`, `predictors.<k>`.
    pub fn new(vs: &nn::Path, cfg: &CpcConfig) -> Result<Self> {
        cfg.validate()?;
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut c_in = cfg.in_channels;
        for i in 0..cfg.kernels.len() {
            let p = vs / "encoder" / i;
            let conv_cfg = nn::ConvConfig {
                stride: cfg.strides[i],
                padding: cfg.paddings[i],
                bias: false,
                ..Default::default()
            };
            convs.push(nn::conv1d(
                &p / "conv",
                c_in,
                cfg.channels,
                cfg.kernels[i],
                conv_cfg,
            ));
            norms.push(nn::batch_norm1d(
                &p / "bn",
                cfg.channels,
                Default::default(),
            ));
            c_in = cfg.channels;
        }
        let gru = nn::gru(
            vs / "gru",
            cfg.channels,
            cfg.context_dim,
            nn::RNNConfig {
                batch_first: true,
                ..Default::default()
            },
        );
        let predictors = (0..cfg.horizon)
            .map(|k| {
                nn::linear(
                    vs / "predictors" / k,
                    cfg.context_dim,
                    cfg.channels,
                    nn::LinearConfig {
                        bias: false,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Ok(Cpc {
            cfg: cfg.clone(),
            convs,
            norms,
            gru,
            predictors,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CpcConfig {
        &self.cfg
    }

    /// `z`: `[b, c_in, t]` -> `[b, t', channels]`.
    pub fn encode(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = x.size();
        if s.len() != 3 || s[1] != self.cfg.in_channels {
            return Err(NceError::Shape {
                what: "cpc input",
                expected: format!("[b, {}, t]", self.cfg.in_channels),
                got: s,
            });
        }
        check_finite("cpc input", x)?;
        let mut h = x.shallow_clone();
        for (conv, bn) in self.convs.iter().zip(&self.norms) {
            h = bn.forward_t(&conv.forward(&h), train).relu();
        }
        Ok(h.transpose(1, 2))
    }

    /// `c`: `[b, t', channels]` -> `[b, t', context_dim]`.
    pub fn context(&self, z: &Tensor) -> Tensor {
        self.gru.seq(z).0
    }

    /// The CPC loss of a batch `[b, c_in, t]`: for each `k`, the predictions `W_k c_t` of all
    /// `(sequence, t)` with `t + k` inside the sequence score every target `z_{s, t'+k}` of the
    /// batch; cross-entropy of the true one (InfoNCE over batch and time negatives).
    pub fn loss(&self, x: &Tensor, train: bool) -> Result<CpcOutput> {
        let z = self.encode(x, train)?;
        let (b, t) = (z.size()[0], z.size()[1]);
        let k_max = self.cfg.horizon as i64;
        if t <= k_max {
            return Err(NceError::Shape {
                what: "cpc input",
                expected: format!(
                    "more than {} encoder frames ({} samples) to predict {k_max} steps ahead",
                    k_max,
                    (k_max + 1) * self.cfg.downsampling()
                ),
                got: x.size(),
            });
        }
        if b * (t - k_max) < 2 {
            return Err(NceError::BatchTooSmall {
                what: "cpc batch x time",
                got: b * (t - k_max),
                min: 2,
            });
        }
        let c = self.context(&z);
        let d = self.cfg.channels;
        let mut losses = Vec::with_capacity(self.cfg.horizon);
        let mut accuracy = Vec::with_capacity(self.cfg.horizon);
        for (k0, w) in self.predictors.iter().enumerate() {
            let k = k0 as i64 + 1;
            let l = t - k;
            let pred = w.forward(&c.narrow(1, 0, l)).reshape([b * l, d]);
            let target = z.narrow(1, k, l).reshape([b * l, d]);
            let logits = pred.matmul(&target.tr());
            let labels = Tensor::arange(b * l, (Kind::Int64, z.device()));
            losses.push(logits.cross_entropy_loss::<Tensor>(
                &labels,
                None,
                Reduction::Mean,
                -100,
                0.0,
            ));
            let hits = logits
                .argmax(1, false)
                .eq_tensor(&labels)
                .to_kind(Kind::Float);
            accuracy.push(hits.mean(Kind::Float).double_value(&[]));
        }
        let loss = Tensor::stack(&losses, 0).mean(Kind::Float);
        Ok(CpcOutput { loss, accuracy })
    }

    /// Features of a window for a probe: the context `c_t` averaged over time, `[b, context_dim]`
    /// (eval-mode BatchNorm).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.encode(x, false)?;
        Ok(self
            .context(&z)
            .mean_dim([1i64].as_slice(), false, Kind::Float))
    }

    /// Per-frame features for a frame-level probe (phones, Sec. 3.1): the context `c_t` of
    /// every encoder frame, `[b, t', context_dim]` (eval-mode BatchNorm); one frame per
    /// [`CpcConfig::downsampling`] input samples. [`Cpc::features`] is its mean over time.
    pub fn frame_contexts(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.encode(x, false)?;
        Ok(self.context(&z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;
    use tch::Device;

    #[test]
    fn the_audio_preset_makes_one_frame_per_160_samples() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = CpcConfig {
            channels: 16,
            context_dim: 8,
            ..CpcConfig::audio()
        };
        let m = Cpc::new(&vs.root(), &cfg).unwrap();
        assert_eq!(cfg.downsampling(), 160);
        let x = Tensor::zeros([2, 1, 20480], (Kind::Float, Device::Cpu));
        let z = tch::no_grad(|| m.encode(&x, false)).unwrap();
        assert_eq!(z.size(), [2, 128, 16]);
        assert_eq!(m.context(&z).size(), [2, 128, 8]);
    }

    #[test]
    fn training_lowers_the_loss_on_predictable_signals() {
        // Small kernels: one thread is faster than two contending ones on a shared machine.
        tch::set_num_threads(1);
        let _g = test_support::rng_lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Cpc::new(&vs.root(), &CpcConfig::imu()).unwrap();
        // Sines of random frequency and phase on six channels: the future is predictable.
        let signals = |n: i64| {
            let t = Tensor::arange(96, (Kind::Float, Device::Cpu)).view([1, 1, 96]);
            let f = Tensor::rand([n, 6, 1], (Kind::Float, Device::Cpu)) * 0.3 + 0.05;
            let ph = Tensor::rand([n, 6, 1], (Kind::Float, Device::Cpu)) * std::f64::consts::TAU;
            (t * f + ph).sin()
        };
        let mut opt = nn::Adam::default().build(&vs, 2e-3).unwrap();
        let first = m.loss(&signals(8), true).unwrap().loss.double_value(&[]);
        for _ in 0..30 {
            let out = m.loss(&signals(8), true).unwrap();
            opt.backward_step(&out.loss);
        }
        let out = m.loss(&signals(8), true).unwrap();
        let last = out.loss.double_value(&[]);
        assert!(last < first - 0.5, "{first} -> {last}");
        assert!(out.accuracy[0] > out.accuracy[5], "{:?}", out.accuracy);
        assert_eq!(m.features(&signals(3)).unwrap().size(), [3, 64]);
    }

    #[test]
    fn frame_contexts_are_one_per_frame_and_average_to_the_features() {
        // Draws from torch's generator: not while a seeded test draws from it.
        let _g = test_support::rng_lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = CpcConfig {
            channels: 8,
            context_dim: 4,
            ..CpcConfig::audio()
        };
        let m = Cpc::new(&vs.root(), &cfg).unwrap();
        let x = Tensor::randn([2, 1, 3200], (Kind::Float, Device::Cpu));
        let c = tch::no_grad(|| m.frame_contexts(&x)).unwrap();
        assert_eq!(c.size(), [2, 20, 4]);
        let f = tch::no_grad(|| m.features(&x)).unwrap();
        let mean = c.mean_dim([1i64].as_slice(), false, Kind::Float);
        assert!(f.allclose(&mean, 1e-6, 1e-6, false));
        assert!(m
            .frame_contexts(&Tensor::zeros([2, 3, 320], (Kind::Float, Device::Cpu)))
            .is_err());
    }

    #[test]
    fn too_short_or_wrong_inputs_are_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Cpc::new(&vs.root(), &CpcConfig::imu()).unwrap();
        let short = Tensor::zeros([2, 6, 16], (Kind::Float, Device::Cpu));
        let e = m.loss(&short, false).unwrap_err().to_string();
        assert!(e.contains("more than 6 encoder frames"), "{e}");
        let wrong = Tensor::zeros([2, 3, 64], (Kind::Float, Device::Cpu));
        assert!(m.encode(&wrong, false).is_err());
        let bad = CpcConfig {
            strides: vec![2],
            ..CpcConfig::imu()
        };
        assert!(Cpc::new(&vs.root(), &bad).is_err());
    }
}
