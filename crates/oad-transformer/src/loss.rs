//! OadTR's loss (`util/loss.py` `SetCriterion`): a soft-target cross-entropy over all classes
//! but the ambiguous one, on the rows whose target is not ambiguous,
//! `mean_{rows: t[amb] != 1} sum_{c != amb} -t_c log softmax(z_{!= amb})_c`, and 0 when every
//! row is ambiguous; the total is `encoder_loss_weight * CE(current) + decoder_loss_weight *
//! CE(future steps, rows flattened)` (1.0 and 0.5 in `config.py`).

use tch::{Kind, Tensor};

use crate::config::OadConfig;
use crate::error::{shape_error, OadError, Result};
use crate::model::OadOutput;

/// The soft-target cross-entropy of logits `[N, C]` against targets `[N, C]` (one-hot or
/// multi-hot), ignoring `ambiguous` (its column and the rows whose target has it set).
pub fn soft_target_ce(logits: &Tensor, targets: &Tensor, ambiguous: Option<i64>) -> Result<Tensor> {
    let s = logits.size();
    if s.len() != 2 || targets.size() != s || !logits.is_floating_point() {
        return Err(shape_error(
            "soft_target_ce",
            format!(
                "floating logits [N, C] and targets of the same size (targets {:?})",
                targets.size()
            ),
            logits,
        ));
    }
    let c = s[1];
    let targets = targets.to_kind(logits.kind());
    let Some(amb) = ambiguous else {
        let per_row = -(&targets * logits.log_softmax(1, logits.kind())).sum_dim_intlist(
            1,
            false,
            None::<Kind>,
        );
        return Ok(per_row.mean(None::<Kind>));
    };
    if !(0..c).contains(&amb) {
        return Err(OadError::Config(format!(
            "ambiguous class {amb}: expected in 0..{c}"
        )));
    }
    let keep: Vec<i64> = (0..c).filter(|&k| k != amb).collect();
    let keep = Tensor::from_slice(&keep).to_device(logits.device());
    let z = logits.index_select(1, &keep);
    let t = targets.index_select(1, &keep);
    let per_row = -(&t * z.log_softmax(1, z.kind())).sum_dim_intlist(1, false, None::<Kind>);
    let valid = targets.select(1, amb).ne(1.0);
    let n_valid = valid.sum(Kind::Int64).int64_value(&[]);
    if n_valid == 0 {
        // `if output.sum() == 0: loss_ce = 0` (every row ambiguous).
        return Ok(per_row.sum(per_row.kind()) * 0.0);
    }
    Ok(per_row.masked_select(&valid).mean(None::<Kind>))
}

/// The two parts of OadTR's loss and their weighted sum.
#[derive(Debug)]
pub struct OadLoss {
    /// `encoder_loss_weight * encoder + decoder_loss_weight * decoder`.
    pub total: Tensor,
    /// The current-frame cross-entropy (`labels_encoder`).
    pub encoder: Tensor,
    /// The anticipation cross-entropy (`labels_decoder`); `None` without a decoder.
    pub decoder: Option<Tensor>,
}

/// OadTR's loss on a forward's `out` against the current-frame targets `[B, C]` and the future
/// targets `[B, Q, C]` (read only when the model has a decoder).
pub fn oad_loss(
    cfg: &OadConfig,
    out: &OadOutput,
    current: &Tensor,
    future: &Tensor,
) -> Result<OadLoss> {
    let encoder = soft_target_ce(&out.current, current, cfg.ambiguous_class)?;
    let Some(pred) = &out.future else {
        return Ok(OadLoss {
            total: &encoder * cfg.encoder_loss_weight,
            encoder,
            decoder: None,
        });
    };
    let c = cfg.num_classes;
    if future.size() != pred.size() {
        return Err(shape_error(
            "oad_loss future targets",
            format!("{:?} like the anticipation logits", pred.size()),
            future,
        ));
    }
    let decoder = soft_target_ce(
        &pred.reshape([-1, c]),
        &future.reshape([-1, c]),
        cfg.ambiguous_class,
    )?;
    Ok(OadLoss {
        total: &encoder * cfg.encoder_loss_weight + &decoder * cfg.decoder_loss_weight,
        encoder,
        decoder: Some(decoder),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn hand_computed_value_ignoring_the_ambiguous_class() {
        // Row 0: target class 0 of {0, 1} (class 2 ambiguous); row 1 is ambiguous: dropped.
        let z = Tensor::from_slice(&[1.0f32, 2.0, 9.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let t = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0]).view([2, 3]);
        let l = soft_target_ce(&z, &t, Some(2)).unwrap().double_value(&[]);
        let want = -(1.0f64.exp() / (1.0f64.exp() + 2.0f64.exp())).ln();
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
        // Every row ambiguous: 0, not NaN.
        let t = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0]).view([2, 3]);
        assert_eq!(
            soft_target_ce(&z, &t, Some(2)).unwrap().double_value(&[]),
            0.0
        );
        // Without an ambiguous class it is the plain soft cross-entropy.
        let t = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 0.5, 0.5, 0.0]).view([2, 3]);
        let l = soft_target_ce(&z, &t, None).unwrap();
        let want = -(&t * z.log_softmax(1, Kind::Float)).sum(Kind::Float) / 2.0;
        assert!(l.allclose(&want, 1e-6, 1e-6, false));
    }

    #[test]
    fn weighted_total_and_shape_errors() {
        let cfg = OadConfig::small(6, 4, 8);
        let out = OadOutput {
            current: Tensor::randn([3, 4], (Kind::Float, Device::Cpu)),
            future: Some(Tensor::randn([3, 4, 4], (Kind::Float, Device::Cpu))),
        };
        let cur = Tensor::eye(4, (Kind::Float, Device::Cpu)).narrow(0, 0, 3);
        let fut = cur.unsqueeze(1).expand([3, 4, 4], false).contiguous();
        let l = oad_loss(&cfg, &out, &cur, &fut).unwrap();
        let want =
            l.encoder.double_value(&[]) + 0.5 * l.decoder.as_ref().unwrap().double_value(&[]);
        assert!((l.total.double_value(&[]) - want).abs() < 1e-6);
        assert!(oad_loss(&cfg, &out, &cur, &cur).is_err());
        assert!(soft_target_ce(&out.current, &fut, None).is_err());
    }
}
