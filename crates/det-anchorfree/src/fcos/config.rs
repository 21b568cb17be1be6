//! FCOS's configuration: the official defaults (`fcos_core/config/defaults.py`, `MODEL.FCOS`)
//! and the "improved" preset of the official `configs/fcos/fcos_imprv_*` files.

use serde::{Deserialize, Serialize};

use super::error::{FcosError, Result};

/// The box regression loss (official `fcos_core/layers/iou_loss.py`, `IOULoss.loss_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IouLossKind {
    /// `-ln(IoU)` (UnitBox; the original FCOS).
    Iou,
    /// `1 - IoU`.
    LinearIou,
    /// `1 - GIoU` (the improved variant).
    Giou,
}

/// The FCOS detector's configuration. `Default`: the original FCOS (Tian et al. 2019, Sec. 3;
/// official `MODEL.FCOS` defaults) with 80 classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcosConfig {
    /// Object classes (no background class; the official `NUM_CLASSES - 1`).
    pub num_classes: i64,
    /// The bounds between consecutive levels' regression ranges on `max(l, t, r, b)`, in input
    /// pixels before `range_scale`: `[64, 128, 256, 512]` for P3-P7 (the first level starts
    /// at -1, the last ends at infinity; both ends inclusive, as the official code).
    pub range_bounds: Vec<f64>,
    /// Factor on `range_bounds`, for inputs smaller than COCO's 800 px (1: the paper).
    pub range_scale: f64,
    /// Centre sampling radius in strides (0: off, the original; 1.5: the improved variant).
    pub center_sampling_radius: f64,
    /// Regress `l, t, r, b` divided by the level's stride, through a ReLU (improved variant)
    /// instead of `exp` of the raw output.
    pub norm_reg_targets: bool,
    /// The centre-ness branch sits on the regression tower (improved) instead of the
    /// classification tower (original).
    pub centerness_on_reg: bool,
    /// The box loss.
    pub iou_loss: IouLossKind,
    /// Focal loss alpha (0.25).
    pub focal_alpha: f64,
    /// Focal loss gamma (2).
    pub focal_gamma: f64,
    /// Conv + GroupNorm + ReLU blocks in each tower (4).
    pub head_convs: usize,
    /// GroupNorm groups in the towers (32; must divide the pyramid's channels).
    pub gn_groups: i64,
    /// The classification prior pi (0.01): bias `-log((1 - pi) / pi)`.
    pub prior: f64,
    /// Locations whose class score is at or below this are dropped (`INFERENCE_TH` 0.05).
    pub pre_nms_thresh: f64,
    /// Candidates kept per level and image (`PRE_NMS_TOP_N` 1000).
    pub pre_nms_top_n: i64,
    /// Class-wise NMS IoU (`NMS_TH` 0.6).
    pub nms_iou: f64,
    /// Detections kept per image (`TEST.DETECTIONS_PER_IMG` 100).
    pub detections_per_image: i64,
    /// ImageNet mean / std normalisation of the `[0, 1]` input.
    pub normalize: bool,
}

impl Default for FcosConfig {
    fn default() -> Self {
        Self {
            num_classes: 80,
            range_bounds: vec![64.0, 128.0, 256.0, 512.0],
            range_scale: 1.0,
            center_sampling_radius: 0.0,
            norm_reg_targets: false,
            centerness_on_reg: false,
            iou_loss: IouLossKind::Iou,
            focal_alpha: 0.25,
            focal_gamma: 2.0,
            head_convs: 4,
            gn_groups: 32,
            prior: 0.01,
            pre_nms_thresh: 0.05,
            pre_nms_top_n: 1000,
            nms_iou: 0.6,
            detections_per_image: 100,
            normalize: true,
        }
    }
}

impl FcosConfig {
    /// The improved FCOS of the official `configs/fcos/fcos_imprv_R_50_FPN_1x.yaml`: centre
    /// sampling radius 1.5, GIoU loss, stride-normalised targets, centre-ness on the
    /// regression tower (the README's "improvements" rows; REFERENCES: about +0.5 AP from
    /// these changes together with the others of those configs).
    pub fn improved() -> Self {
        Self {
            center_sampling_radius: 1.5,
            norm_reg_targets: true,
            centerness_on_reg: true,
            iou_loss: IouLossKind::Giou,
            ..Self::default()
        }
    }

    /// Per level, the inclusive `[lo, hi]` range on `max(l, t, r, b)` in input pixels
    /// (`object_sizes_of_interest`): `[-1, b0], [b0, b1], ..., [b_last, INF]`, scaled.
    pub fn ranges(&self) -> Vec<(f64, f64)> {
        let n = self.range_bounds.len();
        (0..=n)
            .map(|l| {
                let lo = if l == 0 {
                    -1.0
                } else {
                    self.range_bounds[l - 1] * self.range_scale
                };
                let hi = if l == n {
                    INF
                } else {
                    self.range_bounds[l] * self.range_scale
                };
                (lo, hi)
            })
            .collect()
    }

    /// Checks the settings against a pyramid of `levels` maps with `channels` channels.
    pub fn validate(&self, levels: usize, channels: i64) -> Result<()> {
        if self.range_bounds.len() + 1 != levels {
            return Err(FcosError::config(
                "range_bounds",
                format!(
                    "{} bounds for a {levels}-level pyramid",
                    levels.saturating_sub(1)
                ),
                format!("{:?}", self.range_bounds),
            ));
        }
        if self.range_bounds.windows(2).any(|w| w[0] >= w[1])
            || self
                .range_bounds
                .iter()
                .any(|b| !b.is_finite() || *b <= 0.0)
            || !(self.range_scale.is_finite() && self.range_scale > 0.0)
        {
            return Err(FcosError::config(
                "range_bounds / range_scale",
                "increasing positive bounds and a positive scale",
                format!("{:?} x {}", self.range_bounds, self.range_scale),
            ));
        }
        if self.num_classes < 1 {
            return Err(FcosError::config("num_classes", ">= 1", self.num_classes));
        }
        if self.gn_groups < 1 || channels % self.gn_groups != 0 {
            return Err(FcosError::config(
                "gn_groups",
                format!("a divisor of the pyramid's {channels} channels"),
                self.gn_groups,
            ));
        }
        let radius_ok =
            self.center_sampling_radius.is_finite() && self.center_sampling_radius >= 0.0;
        if !radius_ok || self.prior <= 0.0 || self.prior >= 1.0 || self.prior.is_nan() {
            return Err(FcosError::config(
                "center_sampling_radius / prior",
                "radius >= 0 and 0 < prior < 1",
                format!("{} / {}", self.center_sampling_radius, self.prior),
            ));
        }
        Ok(())
    }
}

/// The official code's infinity (`INF = 100000000` in `loss.py`): the top range's end and the
/// area given to boxes a location may not take.
pub const INF: f64 = 100_000_000.0;
