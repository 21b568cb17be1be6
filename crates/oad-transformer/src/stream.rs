//! Live inference, one feature vector at a time: [`OadStream::push`] projects the new frame
//! (one `linear_encoding` row), writes it into a ring buffer of projected frames, and runs the
//! encoder and decoder on the last `enc_steps` of them; the projections of older frames are
//! never recomputed. The ring is allocated once, `2 * enc_steps` rows: each frame is written
//! at `slot` and `slot + enc_steps`, so the window in time order is always the contiguous view
//! `rows slot + 1 ..= slot + enc_steps` (no gather, no copy). Before `enc_steps` frames have
//! arrived the ring holds the projection of a zero feature (the bias), which is what the
//! batched model sees on a window zero-padded before the stream's start
//! ([`crate::WindowSpec::pad_start`]).

use tch::{Kind, Tensor};

use crate::error::{shape_error, Result};
use crate::model::OadTR;

/// One frame's predictions.
#[derive(Debug)]
pub struct StreamStep {
    /// Frames pushed so far, this one included.
    pub frame: u64,
    /// Current-frame logits `[num_classes]`.
    pub current: Tensor,
    /// Anticipation logits `[num_queries, num_classes]` for the next steps.
    pub future: Option<Tensor>,
}

impl StreamStep {
    /// The protocol's scores: the softmax over the classes `scored` (all but the ambiguous).
    pub fn probs(&self, scored: &[i64]) -> Tensor {
        let keep = Tensor::from_slice(scored).to_device(self.current.device());
        self.current.index_select(0, &keep).softmax(0, Kind::Float)
    }
}

/// A live OadTR stream over one model (inference mode, no autograd).
#[derive(Debug)]
pub struct OadStream<'m> {
    model: &'m OadTR,
    ring: Tensor,
    slot: i64,
    frames: u64,
}

impl<'m> OadStream<'m> {
    /// An empty stream: the ring holds the projection of a zero feature.
    pub fn new(model: &'m OadTR) -> Self {
        let cfg = model.config();
        let w = model.weight();
        let ring = tch::no_grad(|| {
            let zero = Tensor::zeros([1, cfg.feature_dim], (w.kind(), w.device()));
            model.project(&zero).repeat([2 * cfg.enc_steps, 1])
        });
        OadStream {
            model,
            ring,
            slot: 0,
            frames: 0,
        }
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Pushes one feature vector (`[feature_dim]` or `[1, feature_dim]`) and predicts. A vector
    /// of the wrong width, kind or device is an error and leaves the stream as it was.
    pub fn push(&mut self, feature: &Tensor) -> Result<StreamStep> {
        let cfg = self.model.config();
        let w = self.model.weight();
        let s = feature.size();
        let width_ok = matches!(s.as_slice(), [f] | [1, f] if *f == cfg.feature_dim);
        if !width_ok || !feature.is_floating_point() || feature.device() != w.device() {
            return Err(shape_error(
                "OadStream::push",
                format!(
                    "one feature vector [{}] floating on {:?}",
                    cfg.feature_dim,
                    w.device()
                ),
                feature,
            ));
        }
        let e = cfg.enc_steps;
        tch::no_grad(|| -> Result<StreamStep> {
            let p = self
                .model
                .project(&feature.view([1, cfg.feature_dim]).to_kind(w.kind()));
            self.ring.narrow(0, self.slot, 1).copy_(&p);
            self.ring.narrow(0, self.slot + e, 1).copy_(&p);
            self.slot = (self.slot + 1) % e;
            self.frames += 1;
            let window = self.ring.narrow(0, self.slot, e).unsqueeze(0);
            let out = self.model.forward_projected(&window, false)?;
            Ok(StreamStep {
                frame: self.frames,
                current: out.current.squeeze_dim(0),
                future: out.future.map(|f| f.squeeze_dim(0)),
            })
        })
    }

    /// Forgets every frame (the ring back to the zero-feature projection).
    pub fn reset(&mut self) {
        *self = OadStream::new(self.model);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OadConfig, WindowSet, WindowSpec};
    use tch::{nn, Device};

    #[test]
    fn streaming_equals_batched_on_the_same_window() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = OadConfig::small(5, 4, 6);
        let model = OadTR::new(&vs.root(), &cfg).unwrap();
        let t = 15;
        let feats = Tensor::randn([t, 5], (Kind::Float, Device::Cpu));
        let stream =
            crate::FeatureStream::new("s", feats.shallow_clone(), vec![0; t as usize], 4).unwrap();
        let spec = WindowSpec {
            enc_steps: 6,
            dec_steps: 0,
            stride: 1,
            pad_start: true,
        };
        let set = WindowSet::new(&[stream], spec, 4, None).unwrap();
        let mut live = OadStream::new(&model);
        let ring_ptr = live.ring.data_ptr();
        let mut worst = 0.0f64;
        for i in 0..(t - 1) {
            let step = live.push(&feats.get(i)).unwrap();
            let batch = set.batch(&[i as usize], Device::Cpu).unwrap();
            let want = tch::no_grad(|| model.forward_t(&batch.features, false)).unwrap();
            let d = (&step.current - want.current.squeeze_dim(0))
                .abs()
                .max()
                .double_value(&[]);
            let f = (step.future.unwrap() - want.future.unwrap().squeeze_dim(0))
                .abs()
                .max()
                .double_value(&[]);
            worst = worst.max(d).max(f);
        }
        assert!(worst < 1e-5, "streaming vs batched: {worst}");
        // The ring was never re-allocated.
        assert_eq!(live.ring.data_ptr(), ring_ptr);
        assert_eq!(live.frames(), (t - 1) as u64);
    }

    #[test]
    fn a_rejected_push_leaves_the_stream_usable() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = OadTR::new(&vs.root(), &OadConfig::small(5, 4, 6)).unwrap();
        let x = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
        let mut a = OadStream::new(&model);
        let mut b = OadStream::new(&model);
        a.push(&x.get(0)).unwrap();
        b.push(&x.get(0)).unwrap();
        let e = a
            .push(&Tensor::zeros([4], (Kind::Float, Device::Cpu)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[5]") && e.contains("[4]"), "{e}");
        assert!(a
            .push(&Tensor::zeros([5], (Kind::Int64, Device::Cpu)))
            .is_err());
        assert_eq!(a.frames(), 1);
        let sa = a.push(&x.get(1)).unwrap();
        let sb = b.push(&x.get(1)).unwrap();
        assert!(sa.current.equal(&sb.current));
        let p = sa.probs(&[0, 1, 2, 3]);
        assert!((p.sum(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-6);
        a.reset();
        assert_eq!(a.frames(), 0);
    }
}
