//! contrastive-nce claims: the variational MI bounds on the correlated-Gaussian benchmark
//! ([`mi_bounds`]) and CPC on the smartwatch IMU recordings ([`cpc_imu`]).

mod cpc_imu;
mod mi_bounds;

use crate::claim::Claim;

/// The contrastive-nce claims, in report order.
pub fn claims() -> Vec<Claim> {
    vec![mi_bounds::claim(), cpc_imu::claim()]
}

/// Runs libtorch on one CPU thread while alive (on the CPU), then restores the thread count:
/// the claims' kernels are too small to gain from splitting, and on a shared machine the
/// threads' synchronisation costs several-fold.
pub(super) struct OneThread(Option<i32>);

impl OneThread {
    pub(super) fn on(device: tch::Device) -> Self {
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
