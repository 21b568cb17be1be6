//! Divergence guard: [`check_finite`] turns a NaN/inf loss into [`TrainError::NonFinite`]
//! naming the step, so a training loop can stop (with `?`) before the bad update is applied
//! or checkpointed.

use crate::error::{Result, TrainError};
use tch::Tensor;

/// Returns the loss as `f64` if it is finite; `TrainError::NonFinite { step, value }`
/// otherwise. `loss` must have exactly one element (one host sync).
pub fn check_finite(loss: &Tensor, step: u64) -> Result<f64> {
    if loss.numel() != 1 {
        return Err(TrainError::ShapeMismatch {
            name: "loss".to_owned(),
            expected: vec![],
            actual: loss.size(),
        });
    }
    let value = loss.f_detach()?.f_reshape([-1])?.f_double_value(&[0])?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(TrainError::NonFinite { step, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_nan_inf() {
        assert_eq!(check_finite(&Tensor::from(1.5f32), 3).unwrap(), 1.5);
        let e = check_finite(&Tensor::from(f64::NAN), 17).unwrap_err();
        assert!(matches!(e, TrainError::NonFinite { step: 17, .. }));
        assert!(e.to_string().contains("step 17"), "{e}");
        let e = check_finite(&Tensor::from_slice(&[f32::INFINITY]), 2).unwrap_err();
        assert!(e.to_string().contains("inf"), "{e}");
        assert!(matches!(
            check_finite(&Tensor::from_slice(&[1.0f32, 2.0]), 0),
            Err(TrainError::ShapeMismatch { .. })
        ));
    }
}
