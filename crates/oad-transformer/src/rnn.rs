//! The recurrent baselines the paper compares with (RED / TRN-style, OadTR Sec. 4.3): the features
//! through `Linear -> ReLU -> Dropout`, a one-layer GRU or LSTM over the window, and a linear
//! current-frame head on the last hidden state. Live, the recurrent state is carried from frame
//! to frame ([`RnnStream`]), one cell step per frame.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

use crate::error::{shape_error, OadError, Result};
use crate::layers::linear;

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// `nn.GRU`.
    Gru,
    /// `nn.LSTM`.
    Lstm,
}

/// A recurrent baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    /// Input feature width.
    pub feature_dim: i64,
    /// Width of the input projection and of the hidden state.
    pub hidden_dim: i64,
    /// Classes (background included).
    pub num_classes: i64,
    /// GRU or LSTM.
    pub cell: CellKind,
    /// Dropout after the input projection and before the head.
    pub dropout: f64,
}

enum Cell {
    Gru(nn::GRU),
    Lstm(nn::LSTM),
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cell::Gru(_) => "Gru",
            Cell::Lstm(_) => "Lstm",
        })
    }
}

/// The recurrent baseline model.
#[derive(Debug)]
pub struct RnnBaseline {
    cfg: RnnConfig,
    input: nn::Linear,
    cell: Cell,
    head: nn::Linear,
}

impl RnnBaseline {
    /// Builds the variables under `vs` (`input`, `rnn.{weight,bias}_{ih,hh}_l0`, `head`).
    pub fn new(vs: &nn::Path, cfg: &RnnConfig) -> Result<Self> {
        if cfg.feature_dim < 1
            || cfg.hidden_dim < 1
            || cfg.num_classes < 2
            || !(0.0..1.0).contains(&cfg.dropout)
        {
            return Err(OadError::Config(format!(
                "rnn baseline {cfg:?}: expected positive sizes, >= 2 classes, dropout in [0, 1)"
            )));
        }
        let h = cfg.hidden_dim;
        let rc = nn::RNNConfig {
            batch_first: true,
            ..Default::default()
        };
        let cell = match cfg.cell {
            CellKind::Gru => Cell::Gru(nn::gru(vs / "rnn", h, h, rc)),
            CellKind::Lstm => Cell::Lstm(nn::lstm(vs / "rnn", h, h, rc)),
        };
        Ok(RnnBaseline {
            input: linear(vs / "input", cfg.feature_dim, h, true),
            head: linear(vs / "head", h, cfg.num_classes, true),
            cell,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    fn embed(&self, x: &Tensor, train: bool) -> Tensor {
        self.input
            .forward(x)
            .relu()
            .dropout(self.cfg.dropout, train)
    }

    /// Current-frame logits `[B, C]` of windows `[B, T, feature_dim]` (zero initial state).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = x.size();
        if s.len() != 3 || s[1] < 1 || s[2] != self.cfg.feature_dim || !x.is_floating_point() {
            return Err(shape_error(
                "RnnBaseline::forward_t",
                format!("[B, T >= 1, {}] floating", self.cfg.feature_dim),
                x,
            ));
        }
        let e = self.embed(x, train);
        let out = match &self.cell {
            Cell::Gru(g) => g.seq(&e).0,
            Cell::Lstm(l) => l.seq(&e).0,
        };
        Ok(out
            .select(1, -1)
            .dropout(self.cfg.dropout, train)
            .apply(&self.head))
    }
}

enum State {
    Gru(nn::GRUState),
    Lstm(nn::LSTMState),
}

/// A live recurrent stream: one cell step per pushed frame, the state carried over.
pub struct RnnStream<'m> {
    model: &'m RnnBaseline,
    state: State,
    frames: u64,
}

impl std::fmt::Debug for RnnStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RnnStream {{ frames: {} }}", self.frames)
    }
}

impl<'m> RnnStream<'m> {
    /// A stream from the zero state.
    pub fn new(model: &'m RnnBaseline) -> Self {
        let state = match &model.cell {
            Cell::Gru(g) => State::Gru(g.zero_state(1)),
            Cell::Lstm(l) => State::Lstm(l.zero_state(1)),
        };
        RnnStream {
            model,
            state,
            frames: 0,
        }
    }

    /// Pushes one feature vector `[feature_dim]`; the current-frame logits `[C]`. A wrong
    /// width is an error and leaves the state as it was.
    pub fn push(&mut self, feature: &Tensor) -> Result<Tensor> {
        let f = self.model.cfg.feature_dim;
        if feature.size() != [f] || !feature.is_floating_point() {
            return Err(shape_error(
                "RnnStream::push",
                format!("one feature vector [{f}] floating"),
                feature,
            ));
        }
        let out = tch::no_grad(|| {
            let e = self.model.embed(&feature.view([1, f]), false);
            let h = match (&self.model.cell, &self.state) {
                (Cell::Gru(g), State::Gru(s)) => {
                    let s = g.step(&e, s);
                    let h = s.value().select(0, 0);
                    self.state = State::Gru(s);
                    h
                }
                (Cell::Lstm(l), State::Lstm(s)) => {
                    let s = l.step(&e, s);
                    let h = s.h().select(0, 0);
                    self.state = State::Lstm(s);
                    h
                }
                // A stream is built from its model's cell; the pairs always match.
                (_, _) => Tensor::zeros(
                    [1, self.model.cfg.hidden_dim],
                    (Kind::Float, feature.device()),
                ),
            };
            h.apply(&self.model.head).squeeze_dim(0)
        });
        self.frames += 1;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn window_forward_equals_stepping_from_zero() {
        tch::manual_seed(1);
        for cell in [CellKind::Gru, CellKind::Lstm] {
            let vs = nn::VarStore::new(Device::Cpu);
            let cfg = RnnConfig {
                feature_dim: 5,
                hidden_dim: 16,
                num_classes: 4,
                cell,
                dropout: 0.1,
            };
            let m = RnnBaseline::new(&vs.root(), &cfg).unwrap();
            let x = Tensor::randn([1, 7, 5], (Kind::Float, Device::Cpu));
            let batched = tch::no_grad(|| m.forward_t(&x, false))
                .unwrap()
                .squeeze_dim(0);
            let mut s = RnnStream::new(&m);
            let mut last = None;
            for t in 0..7 {
                last = Some(s.push(&x.get(0).get(t)).unwrap());
            }
            let d = (last.unwrap() - batched).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{cell:?}: {d}");
            assert!(s
                .push(&Tensor::zeros([4], (Kind::Float, Device::Cpu)))
                .is_err());
            assert!(m
                .forward_t(&Tensor::zeros([1, 7, 4], (Kind::Float, Device::Cpu)), false)
                .is_err());
        }
    }
}
