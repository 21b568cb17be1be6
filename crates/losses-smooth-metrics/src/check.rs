//! Input checks shared by the entry points: temperatures, emptiness, shapes, kinds, labels and
//! finiteness, each failing with a [`SmoothError`] that names the input.

use tch::{Kind, Tensor};

use crate::error::{Result, SmoothError};

/// `tau` is a finite number > 0.
pub(crate) fn temperature(name: &'static str, tau: f64) -> Result<()> {
    if tau.is_finite() && tau > 0.0 {
        Ok(())
    } else {
        Err(SmoothError::Temperature { name, got: tau })
    }
}

fn shape_error(what: &'static str, expected: impl Into<String>, t: &Tensor) -> SmoothError {
    SmoothError::Shape {
        what,
        expected: expected.into(),
        got: t.size(),
        kind: format!("{:?}", t.kind()),
    }
}

/// `t` is a floating tensor with at least one element and no NaN or infinity.
pub(crate) fn scores(what: &'static str, t: &Tensor) -> Result<()> {
    if !t.is_floating_point() {
        return Err(shape_error(what, "a floating-point tensor", t));
    }
    if t.numel() == 0 {
        return Err(SmoothError::Empty {
            what,
            shape: t.size(),
        });
    }
    let bad = t.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
    if bad > 0 {
        return Err(SmoothError::NotFinite { what, count: bad });
    }
    Ok(())
}

/// `t` has `dims` dimensions.
pub(crate) fn dims(what: &'static str, t: &Tensor, dims: usize, expected: &str) -> Result<()> {
    if t.dim() == dims {
        Ok(())
    } else {
        Err(shape_error(what, expected, t))
    }
}

/// `a` and `b` have the same shape.
pub(crate) fn same_shape(what: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.size() == b.size() {
        Ok(())
    } else {
        Err(shape_error(
            what,
            format!("the shape of the scores {:?}", a.size()),
            b,
        ))
    }
}

/// `labels` is an integer tensor of class indices in `0..classes`.
pub(crate) fn class_labels(
    what: &'static str,
    labels: &Tensor,
    classes: i64,
    ignore: Option<i64>,
) -> Result<()> {
    if labels.is_floating_point() || labels.kind() == Kind::Bool {
        return Err(shape_error(
            what,
            "an integer tensor of class indices",
            labels,
        ));
    }
    if labels.numel() == 0 {
        return Ok(());
    }
    let valid = match ignore {
        Some(i) => labels.masked_select(&labels.ne(i)),
        None => labels.shallow_clone(),
    };
    if valid.numel() == 0 {
        return Ok(());
    }
    let (lo, hi) = (valid.min().int64_value(&[]), valid.max().int64_value(&[]));
    for v in [lo, hi] {
        if !(0..classes).contains(&v) {
            return Err(SmoothError::Label {
                what,
                expected: format!("0..{classes} (class indices)"),
                got: v as f64,
            });
        }
    }
    Ok(())
}

/// `targets` holds only 0 and 1 (any kind); returns it as the kind of `like`.
pub(crate) fn binary_targets(
    what: &'static str,
    targets: &Tensor,
    like: &Tensor,
) -> Result<Tensor> {
    let t = targets.to_kind(like.kind());
    if t.numel() > 0 {
        let off = t.ne(0.0).logical_and(&t.ne(1.0));
        let n = off.sum(Kind::Int64).int64_value(&[]);
        if n > 0 {
            let got = t.masked_select(&off).double_value(&[0]);
            return Err(SmoothError::Label {
                what,
                expected: "{0, 1} (binary targets)".into(),
                got,
            });
        }
    }
    Ok(t)
}
