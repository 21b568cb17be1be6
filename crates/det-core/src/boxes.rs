//! Box formats and the IoU family (IoU, GIoU, DIoU, CIoU) with torchvision's formulas
//! (`torchvision/ops/boxes.py`: `box_iou`, `generalized_box_iou`, `distance_box_iou`,
//! `complete_box_iou`, eps 1e-7). Generic over `f32`/`f64` so that float32 inputs give the
//! same bits as torchvision on float32 tensors.

use std::ops::{Add, Div, Mul, Sub};

use ndarray::{Array2, Axis};

use crate::error::{DetError, Result};

/// A floating-point coordinate type (`f32` or `f64`).
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// `v` rounded to this type.
    fn from_f64(v: f64) -> Self;
    /// The value as `f64` (exact).
    fn to_f64(self) -> f64;
    /// `o` when `o > self`, else `self` (torch's max on non-NaN values).
    fn max(self, o: Self) -> Self;
    /// `o` when `o < self`, else `self`.
    fn min(self, o: Self) -> Self;
    /// Arc tangent, in this type's precision.
    fn atan(self) -> Self;
    /// Exponential, in this type's precision.
    fn exp(self) -> Self;
    /// Neither NaN nor infinite.
    fn is_finite(self) -> bool;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            // torch's max/min on non-NaN values; NaN is rejected before it reaches these.
            fn max(self, o: Self) -> Self {
                if o > self {
                    o
                } else {
                    self
                }
            }
            fn min(self, o: Self) -> Self {
                if o < self {
                    o
                } else {
                    self
                }
            }
            fn atan(self) -> Self {
                <$t>::atan(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// How four numbers describe a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxFormat {
    /// Corners `[x1, y1, x2, y2]`.
    Xyxy,
    /// Top-left corner and size `[x, y, w, h]` (COCO).
    Xywh,
    /// Centre and size `[cx, cy, w, h]` (YOLO, DETR).
    Cxcywh,
}

/// Converts one box between formats.
pub fn convert<T: Real>(b: [T; 4], from: BoxFormat, to: BoxFormat) -> [T; 4] {
    let half = T::from_f64(0.5);
    let xyxy = match from {
        BoxFormat::Xyxy => b,
        BoxFormat::Xywh => [b[0], b[1], b[0] + b[2], b[1] + b[3]],
        BoxFormat::Cxcywh => [
            b[0] - half * b[2],
            b[1] - half * b[3],
            b[0] + half * b[2],
            b[1] + half * b[3],
        ],
    };
    match to {
        BoxFormat::Xyxy => xyxy,
        BoxFormat::Xywh => [xyxy[0], xyxy[1], xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]],
        BoxFormat::Cxcywh => [
            (xyxy[0] + xyxy[2]) / T::from_f64(2.0),
            (xyxy[1] + xyxy[3]) / T::from_f64(2.0),
            xyxy[2] - xyxy[0],
            xyxy[3] - xyxy[1],
        ],
    }
}

/// Checks an `xyxy` box: finite coordinates, `x2 >= x1`, `y2 >= y1`.
pub fn validate_xyxy<T: Real>(b: [T; 4], what: &'static str, id: impl ToString) -> Result<()> {
    let reason = if !b.iter().all(|v| v.is_finite()) {
        Some("coordinates must be finite numbers")
    } else if b[2] < b[0] {
        Some("x2 < x1")
    } else if b[3] < b[1] {
        Some("y2 < y1")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(DetError::InvalidBox {
            what,
            id: id.to_string(),
            coords: b.map(Real::to_f64),
            reason,
        }),
    }
}

/// Checks an `xywh` box: finite numbers and non-negative width and height.
pub fn validate_xywh<T: Real>(b: [T; 4], what: &'static str, id: impl ToString) -> Result<()> {
    let reason = if !b.iter().all(|v| v.is_finite()) {
        Some("coordinates must be finite numbers")
    } else if b[2] < T::ZERO || b[3] < T::ZERO {
        Some("negative width or height")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(DetError::InvalidBox {
            what,
            id: id.to_string(),
            coords: b.map(Real::to_f64),
            reason,
        }),
    }
}

/// Area of an `xyxy` box, `(x2 - x1) * (y2 - y1)` as torchvision's `box_area`.
#[inline]
pub fn area<T: Real>(b: &[T; 4]) -> T {
    (b[2] - b[0]) * (b[3] - b[1])
}

#[inline]
fn inter_union<T: Real>(a: &[T; 4], b: &[T; 4], area_a: T, area_b: T) -> (T, T) {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(T::ZERO);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(T::ZERO);
    let inter = w * h;
    (inter, area_a + area_b - inter)
}

/// IoU of two `xyxy` boxes.
pub fn iou<T: Real>(a: &[T; 4], b: &[T; 4]) -> T {
    let (i, u) = inter_union(a, b, area(a), area(b));
    i / u
}

/// Which member of the IoU family a pairwise matrix computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IouKind {
    /// Plain IoU: `intersection / union`.
    Iou,
    /// Generalized IoU (Rezatofighi et al. 2019): `iou - (hull - union) / hull`.
    Giou,
    /// Distance IoU (Zheng et al. 2020): `iou - d^2 / c^2`.
    Diou,
    /// Complete IoU (Zheng et al. 2020): DIoU minus `alpha * v` (aspect-ratio term).
    Ciou,
}

const EPS: f64 = 1e-7;

fn pair<T: Real>(kind: IouKind, a: &[T; 4], b: &[T; 4], aa: T, ab: T) -> T {
    let (inter, union) = inter_union(a, b, aa, ab);
    let iou = inter / union;
    match kind {
        IouKind::Iou => iou,
        IouKind::Giou => {
            let w = (a[2].max(b[2]) - a[0].min(b[0])).max(T::ZERO);
            let h = (a[3].max(b[3]) - a[1].min(b[1])).max(T::ZERO);
            let hull = w * h;
            iou - (hull - union) / hull
        }
        IouKind::Diou | IouKind::Ciou => {
            let eps = T::from_f64(EPS);
            // torchvision `_box_diou_iou`: iou here is inter / union (no eps).
            let w = (a[2].max(b[2]) - a[0].min(b[0])).max(T::ZERO);
            let h = (a[3].max(b[3]) - a[1].min(b[1])).max(T::ZERO);
            let diag = w * w + h * h + eps;
            let two = T::from_f64(2.0);
            let xa = (a[0] + a[2]) / two;
            let ya = (a[1] + a[3]) / two;
            let xb = (b[0] + b[2]) / two;
            let yb = (b[1] + b[3]) / two;
            let dist = (xa - xb) * (xa - xb) + (ya - yb) * (ya - yb);
            let diou = iou - dist / diag;
            if kind == IouKind::Diou {
                return diou;
            }
            let wa = a[2] - a[0];
            let ha = a[3] - a[1];
            let wb = b[2] - b[0];
            let hb = b[3] - b[1];
            let four_over_pi2 = T::from_f64(4.0 / (std::f64::consts::PI * std::f64::consts::PI));
            let d = (wa / ha).atan() - (wb / hb).atan();
            let v = four_over_pi2 * d * d;
            let alpha = v / (T::ONE - iou + v + eps);
            diou - alpha * v
        }
    }
}

/// Pairwise matrix `m[[i, j]] = kind(a[i], b[j])` for `xyxy` boxes, `a.len() x b.len()` like
/// torchvision's `box_iou(a, b)`. Filled on one thread: splitting the rows over rayon workers
/// measured no faster here (1000 x 1000 float32: 3.82 ms either way, docs/det-core.md).
pub fn pairwise<T: Real>(kind: IouKind, a: &[[T; 4]], b: &[[T; 4]]) -> Array2<T> {
    let ab: Vec<T> = b.iter().map(area).collect();
    let mut out = Array2::from_elem((a.len(), b.len()), T::ZERO);
    for (x, mut row) in a.iter().zip(out.axis_iter_mut(Axis(0))) {
        let ax = area(x);
        for ((o, y), &ay) in row.iter_mut().zip(b).zip(&ab) {
            *o = pair(kind, x, y, ax, ay);
        }
    }
    out
}

/// Pairwise IoU matrix (torchvision `box_iou`), `a.len() x b.len()`.
pub fn box_iou<T: Real>(a: &[[T; 4]], b: &[[T; 4]]) -> Array2<T> {
    pairwise(IouKind::Iou, a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let b = [1.0f64, 2.0, 11.0, 7.0];
        for f in [BoxFormat::Xywh, BoxFormat::Cxcywh] {
            let c = convert(b, BoxFormat::Xyxy, f);
            assert_eq!(convert(c, f, BoxFormat::Xyxy), b);
        }
        assert_eq!(
            convert(b, BoxFormat::Xyxy, BoxFormat::Xywh),
            [1.0, 2.0, 10.0, 5.0]
        );
        assert_eq!(
            convert(b, BoxFormat::Xyxy, BoxFormat::Cxcywh),
            [6.0, 4.5, 10.0, 5.0]
        );
    }

    #[test]
    fn iou_family_known_values() {
        let a = [0.0f64, 0.0, 2.0, 2.0];
        let b = [1.0f64, 1.0, 3.0, 3.0];
        let tight = test_support::Tol::abs(1e-15);
        test_support::assert_close(iou(&a, &b), 1.0 / 7.0, tight);
        let m = pairwise(IouKind::Giou, &[a], &[b]);
        // hull 9, union 7: 1/7 - 2/9
        test_support::assert_close(m[[0, 0]], 1.0 / 7.0 - 2.0 / 9.0, tight);
        let d = pairwise(IouKind::Diou, &[a], &[b]);
        // centre distance^2 = 2, hull diagonal^2 = 18
        test_support::assert_close(
            d[[0, 0]],
            1.0 / 7.0 - 2.0 / (18.0 + EPS),
            test_support::Tol::abs(1e-12),
        );
        // same aspect ratio: CIoU == DIoU
        let c = pairwise(IouKind::Ciou, &[a], &[b]);
        test_support::assert_close(c[[0, 0]], d[[0, 0]], tight);
        let far = pairwise(IouKind::Giou, &[a], &[[10.0, 10.0, 12.0, 12.0]]);
        assert!(far[[0, 0]] < -0.9 && far[[0, 0]] > -1.0);
    }

    #[test]
    fn validation_names_the_box() {
        let e = validate_xyxy([3.0f64, 0.0, 1.0, 1.0], "box", 7).unwrap_err();
        assert!(e.to_string().contains("box 7") && e.to_string().contains("x2 < x1"));
        assert!(validate_xywh([0.0f64, 0.0, -1.0, 1.0], "ann", 3).is_err());
        assert!(validate_xywh([0.0f64, f64::NAN, 1.0, 1.0], "ann", 3).is_err());
        assert!(validate_xyxy([0.0f32, 0.0, 1.0, 1.0], "box", 0).is_ok());
    }
}
