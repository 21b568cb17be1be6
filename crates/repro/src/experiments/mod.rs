//! One module per paper claim, the registry of them all, and what their MNIST classifiers share
//! ([`mnist`]).

pub mod anchorfree;
pub mod basics_bias;
pub mod contrastive;
pub mod det_pyramid;
pub mod mae;
pub mod mnist;
pub mod oad;
pub mod rf;
pub mod smooth_metrics;
pub mod vit;
pub mod yolo;

use std::path::{Path, PathBuf};

use crate::claim::Claim;

/// Every claim, in report order.
pub fn registry() -> Vec<Claim> {
    let mut all = vec![basics_bias::perceptron(), basics_bias::mnist()];
    all.extend(vit::claims());
    all.extend(mae::claims());
    all.extend(rf::claims());
    all.extend(det_pyramid::claims());
    all.extend(contrastive::claims());
    all.extend(smooth_metrics::claims());
    all.extend(oad::claims());
    all.extend(anchorfree::claims());
    all.extend(yolo::claims());
    all
}

/// An empty folder at `path` (an old one is removed): a claim's training run starts fresh
/// instead of resuming whatever an earlier run left there.
pub(crate) fn fresh_dir(path: &Path) -> std::io::Result<PathBuf> {
    if path.exists() {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::create_dir_all(path)?;
    Ok(path.to_path_buf())
}

/// Runs libtorch on one CPU thread while alive (on the CPU), then restores the thread count:
/// the small kernels of the contrastive and watch-stream claims gain nothing from splitting,
/// and on a shared machine the threads' synchronisation costs several-fold.
pub(crate) struct OneThread(Option<i32>);

impl OneThread {
    /// One thread from now until the guard drops (nothing changes off the CPU).
    pub(crate) fn on(device: tch::Device) -> Self {
        if device != tch::Device::Cpu {
            return OneThread(None);
        }
        let before = tch::get_num_threads();
        tch::set_num_threads(1);
        OneThread(Some(before))
    }
}

impl Drop for OneThread {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            tch::set_num_threads(n);
        }
    }
}

/// What the tests of the loops that moved onto train-kit's Trainer share.
#[cfg(test)]
pub(crate) mod moved {
    use tch::{nn, Device, Kind, Tensor};

    /// Random "MNIST" (uniform pixels in [0, 1], random labels) of the real layout, from a
    /// fixed seed: enough to compare two loops step for step.
    pub fn synthetic_mnist(train: i64, test: i64, seed: i64) -> datasets::mnist::Mnist {
        tch::manual_seed(seed);
        let images = |n| Tensor::rand([n, 1, 28, 28], (Kind::Float, Device::Cpu));
        let labels = |n| Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
        datasets::mnist::Mnist {
            train_images: images(train),
            train_labels: labels(train),
            test_images: images(test),
            test_labels: labels(test),
        }
    }

    /// A context for a test run in `dir`.
    pub fn ctx(dir: &std::path::Path, seed: u64) -> crate::claim::Ctx {
        crate::claim::Ctx {
            mode: crate::report::Mode::Smoke,
            device: Device::Cpu,
            data_root: None,
            out_dir: dir.to_path_buf(),
            seed,
        }
    }

    /// Every variable of `a` equals the same-named one of `b`, bit for bit.
    pub fn assert_same_weights(a: &nn::VarStore, b: &nn::VarStore) {
        let (va, vb) = (a.variables(), b.variables());
        assert_eq!(va.len(), vb.len(), "different variable sets");
        for (name, t) in &va {
            let other = vb.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(t.equal(other), "{name} differs");
        }
    }
}
