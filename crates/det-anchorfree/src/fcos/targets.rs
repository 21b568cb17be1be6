//! FCOS training targets (Tian et al. 2019, Sec. 3.1-3.3; official
//! `fcos_core/modeling/rpn/fcos/loss.py`, `prepare_targets`, `compute_targets_for_locations`,
//! `get_sample_region`, `compute_centerness_targets`).
//!
//! - Locations: `(x, y) = (j s + s / 2, i s + s / 2)` with integer `s / 2`
//!   (`compute_locations_per_level` in `fcos.py`), row-major over each level, levels
//!   concatenated finest first.
//! - A location inside a box (or, with centre sampling, inside the box clipped to the square
//!   of half-side `radius * stride` around its centre) whose `max(l, t, r, b)` lies in its
//!   level's range `[lo, hi]` (both ends inclusive) may take the box; of several, the one of
//!   smallest area (`min` over areas, first index on equal areas). Others are background.
//! - Centre-ness (Eq. 3): `sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`.
//!
//! Differences from the official code, on purpose: areas are `(x2 - x1)(y2 - y1)` (the
//! official BoxList adds 1 px to each side, a maskrcnn-benchmark convention for integer
//! pixel boxes; mmdetection's FCOS drops it too); crowd / ignored boxes are left out of the
//! targets (the official data loader removes them before); an image without boxes gives all
//! background (the official `get_sample_region` returns zeros when the first box's centre x
//! sums to 0, a test meant for that case).

use tch::{Device, Kind, Tensor};

use super::config::{FcosConfig, INF};
use super::error::{FcosError, Result};

/// `[H * W, 2]` float `(x, y)` centres of a level's cells in input pixels.
pub fn locations(h: i64, w: i64, stride: i64, device: Device) -> Tensor {
    let opts = (Kind::Float, device);
    let xs = Tensor::arange_start_step(0, w * stride, stride, opts) + (stride / 2) as f64;
    let ys = Tensor::arange_start_step(0, h * stride, stride, opts) + (stride / 2) as f64;
    let yy = ys.unsqueeze(1).expand([h, w], false).reshape([-1]);
    let xx = xs.unsqueeze(0).expand([h, w], false).reshape([-1]);
    Tensor::stack(&[xx, yy], 1)
}

/// The official `get_sample_region`: `[N, G]` bool, location inside the box clipped to the
/// square of half-side `strides[l] * radius` around the box centre (levels by
/// `points_per_level`).
fn sample_region(
    boxes: &Tensor,
    strides: &[i64],
    points_per_level: &[i64],
    xs: &Tensor,
    ys: &Tensor,
    radius: f64,
) -> Tensor {
    let g = boxes.size()[0];
    let (x1, y1, x2, y2) = (
        boxes.select(1, 0),
        boxes.select(1, 1),
        boxes.select(1, 2),
        boxes.select(1, 3),
    );
    let cx = (&x1 + &x2) / 2.0;
    let cy = (&y1 + &y2) / 2.0;
    let mut rows = Vec::with_capacity(strides.len());
    for (&s, &n) in strides.iter().zip(points_per_level) {
        let st = s as f64 * radius;
        let (xmin, ymin) = (&cx - st, &cy - st);
        let (xmax, ymax) = (&cx + st, &cy + st);
        let c = Tensor::stack(
            &[
                xmin.where_self(&xmin.gt_tensor(&x1), &x1),
                ymin.where_self(&ymin.gt_tensor(&y1), &y1),
                x2.where_self(&xmax.gt_tensor(&x2), &xmax),
                y2.where_self(&ymax.gt_tensor(&y2), &ymax),
            ],
            1,
        );
        rows.push(c.unsqueeze(0).expand([n, g, 4], false));
    }
    let c = Tensor::cat(&rows, 0);
    let left = xs.unsqueeze(1) - c.select(2, 0);
    let right = c.select(2, 2) - xs.unsqueeze(1);
    let top = ys.unsqueeze(1) - c.select(2, 1);
    let bottom = c.select(2, 3) - ys.unsqueeze(1);
    Tensor::stack(&[left, top, right, bottom], 2)
        .amin([2], false)
        .gt(0.0)
}

/// The official `compute_targets_for_locations` for one image: `[N]` int64 classes (-1:
/// background) and `[N, 4]` float `(l, t, r, b)` in input pixels, for `locations` `[N, 2]`,
/// boxes `[G, 4]` xyxy with classes `[G]`, and `[N, 2]` inclusive ranges per location.
/// `radius > 0` turns centre sampling on (needs `strides` and `points_per_level`, which sum to
/// `N`).
pub fn compute_targets_for_locations(
    locations: &Tensor,
    boxes: &Tensor,
    classes: &Tensor,
    sizes_of_interest: &Tensor,
    strides: &[i64],
    points_per_level: &[i64],
    radius: f64,
) -> Result<(Tensor, Tensor)> {
    let ls = locations.size();
    let bs = boxes.size();
    if ls.len() != 2 || ls[1] != 2 || sizes_of_interest.size() != ls {
        return Err(FcosError::input(
            "locations / sizes_of_interest",
            "[N, 2] and [N, 2]",
            (ls, sizes_of_interest.size()),
        ));
    }
    if bs.len() != 2 || bs[1] != 4 || classes.size() != [bs[0]] {
        return Err(FcosError::input(
            "boxes / classes",
            "[G, 4] boxes with [G] classes",
            (bs, classes.size()),
        ));
    }
    let n = ls[0];
    if radius > 0.0
        && (strides.len() != points_per_level.len() || points_per_level.iter().sum::<i64>() != n)
    {
        return Err(FcosError::input(
            "points_per_level",
            format!("one count per stride ({}), summing to {n}", strides.len()),
            points_per_level,
        ));
    }
    let dev = locations.device();
    if bs[0] == 0 {
        return Ok((
            Tensor::full([n], -1, (Kind::Int64, dev)),
            Tensor::zeros([n, 4], (Kind::Float, dev)),
        ));
    }
    let xs = locations.select(1, 0);
    let ys = locations.select(1, 1);
    let l = xs.unsqueeze(1) - boxes.select(1, 0).unsqueeze(0);
    let t = ys.unsqueeze(1) - boxes.select(1, 1).unsqueeze(0);
    let r = boxes.select(1, 2).unsqueeze(0) - xs.unsqueeze(1);
    let b = boxes.select(1, 3).unsqueeze(0) - ys.unsqueeze(1);
    let reg = Tensor::stack(&[l, t, r, b], 2);
    let inside = if radius > 0.0 {
        sample_region(boxes, strides, points_per_level, &xs, &ys, radius)
    } else {
        reg.amin([2], false).gt(0.0)
    };
    let max_reg = reg.amax([2], false);
    let cared = max_reg
        .ge_tensor(&sizes_of_interest.narrow(1, 0, 1))
        .logical_and(&max_reg.le_tensor(&sizes_of_interest.narrow(1, 1, 1)));
    let area =
        (boxes.select(1, 2) - boxes.select(1, 0)) * (boxes.select(1, 3) - boxes.select(1, 1));
    let area = area
        .unsqueeze(0)
        .repeat([n, 1])
        .masked_fill(&inside.logical_not(), INF)
        .masked_fill(&cared.logical_not(), INF);
    let (min_area, inds) = area.min_dim(1, false);
    let reg = reg
        .gather(1, &inds.view([n, 1, 1]).expand([n, 1, 4], false), false)
        .squeeze_dim(1);
    let labels = classes
        .to_kind(Kind::Int64)
        .index_select(0, &inds)
        .masked_fill(&min_area.eq(INF), -1);
    Ok((labels, reg))
}

/// Centre-ness targets `[P]` of `[P, 4]` `(l, t, r, b)` (Eq. 3; official
/// `compute_centerness_targets`). Defined for positive locations (all four > 0).
pub fn centerness_target(reg: &Tensor) -> Tensor {
    let (l, t, r, b) = (
        reg.select(1, 0),
        reg.select(1, 1),
        reg.select(1, 2),
        reg.select(1, 3),
    );
    let lr = l.minimum(&r) / l.maximum(&r);
    let tb = t.minimum(&b) / t.maximum(&b);
    (lr * tb).sqrt()
}

/// Targets of a batch at every location of every level.
#[derive(Debug)]
pub struct LocationTargets {
    /// `[B, N]` int64 class per location, -1 for background.
    pub labels: Tensor,
    /// `[B, N, 4]` float `(l, t, r, b)`, divided by the level's stride when the config
    /// normalises the regression targets.
    pub reg: Tensor,
}

/// Ground truth of a batch, from a [`det_core::data::DetBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// `[B, M, 4]` xyxy boxes in input pixels.
    pub boxes: &'a Tensor,
    /// `[B, M]` classes, -1 where padded.
    pub classes: &'a Tensor,
    /// `[B, M]` crowd / difficult boxes, left out of the targets.
    pub ignore: Option<&'a Tensor>,
}

impl<'a> Targets<'a> {
    /// Every box of `batch`.
    pub fn of(batch: &'a det_core::data::DetBatch) -> Self {
        Self {
            boxes: &batch.boxes,
            classes: &batch.classes,
            ignore: Some(&batch.ignore),
        }
    }
}

/// The real boxes and classes of image `i`, checked: classes in `0..k`, finite boxes with
/// `x1 <= x2`, `y1 <= y2`, inside the `(h, w)` input with 1 px of slack.
pub(crate) fn image_ground_truth(
    t: &Targets,
    i: i64,
    k: i64,
    (h, w): (i64, i64),
) -> Result<(Tensor, Tensor)> {
    let cls = t.classes.get(i);
    let mut real = cls.ge(0);
    if let Some(ig) = t.ignore {
        real = real.logical_and(&ig.get(i).logical_not());
    }
    let keep = real.nonzero().view([-1]);
    let boxes = t.boxes.get(i).index_select(0, &keep).to_kind(Kind::Float);
    let cls = cls.index_select(0, &keep);
    if cls.numel() == 0 {
        return Ok((boxes, cls));
    }
    let top = cls.max().int64_value(&[]);
    if top >= k {
        return Err(FcosError::input(
            "target class",
            format!("a class id in 0..{k} (the head's classes)"),
            top,
        ));
    }
    let v = Vec::<f32>::try_from(boxes.to_device(Device::Cpu).contiguous().view([-1]))?;
    for b in v.chunks_exact(4) {
        let ok = b.iter().all(|x| x.is_finite())
            && b[0] >= -1.0
            && b[1] >= -1.0
            && b[2] <= w as f32 + 1.0
            && b[3] <= h as f32 + 1.0
            && b[0] <= b[2]
            && b[1] <= b[3];
        if !ok {
            return Err(FcosError::input(
                "target box",
                format!("a finite xyxy box with x1 <= x2, y1 <= y2 inside the {w}x{h} input"),
                b,
            ));
        }
    }
    Ok((boxes, cls))
}

/// The official `prepare_targets`: targets of every image at the concatenated `locations`
/// (`[N, 2]`, levels of `points_per_level` locations and `strides`), for `image` `(h, w)`.
pub fn prepare_targets(
    cfg: &FcosConfig,
    locations: &Tensor,
    strides: &[i64],
    points_per_level: &[i64],
    t: &Targets,
    image: (i64, i64),
) -> Result<LocationTargets> {
    let s = t.boxes.size();
    if s.len() != 3 || s[2] != 4 || t.classes.size() != [s[0], s[1]] {
        return Err(FcosError::input(
            "target boxes / classes",
            "[B, M, 4] boxes with [B, M] classes",
            (s, t.classes.size()),
        ));
    }
    let ranges = cfg.ranges();
    if ranges.len() != strides.len() || strides.len() != points_per_level.len() {
        return Err(FcosError::config(
            "range_bounds",
            format!("one range per pyramid level ({})", strides.len()),
            ranges.len(),
        ));
    }
    let dev = locations.device();
    let sizes: Vec<Tensor> = ranges
        .iter()
        .zip(points_per_level)
        .map(|(&(lo, hi), &n)| {
            Tensor::from_slice(&[lo as f32, hi as f32])
                .to_device(dev)
                .view([1, 2])
                .expand([n, 2], false)
        })
        .collect();
    let sizes = Tensor::cat(&sizes, 0);
    let stride_per_loc: Vec<Tensor> = strides
        .iter()
        .zip(points_per_level)
        .map(|(&st, &n)| Tensor::full([n, 1], st as f64, (Kind::Float, dev)))
        .collect();
    let stride_per_loc = Tensor::cat(&stride_per_loc, 0);
    let (mut labels, mut regs) = (Vec::new(), Vec::new());
    for i in 0..s[0] {
        let (boxes, cls) = image_ground_truth(t, i, cfg.num_classes, image)?;
        let (l, r) = compute_targets_for_locations(
            locations,
            &boxes.to_device(dev),
            &cls.to_device(dev),
            &sizes,
            strides,
            points_per_level,
            cfg.center_sampling_radius,
        )?;
        labels.push(l);
        regs.push(if cfg.norm_reg_targets {
            r / &stride_per_loc
        } else {
            r
        });
    }
    Ok(LocationTargets {
        labels: Tensor::stack(&labels, 0),
        reg: Tensor::stack(&regs, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(v: &[[f32; 4]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([-1, 4])
    }

    #[test]
    fn locations_are_cell_centres_row_major() {
        let l = Vec::<f32>::try_from(locations(2, 3, 8, Device::Cpu).view([-1])).unwrap();
        assert_eq!(
            l,
            vec![4., 4., 12., 4., 20., 4., 4., 12., 12., 12., 20., 12.]
        );
    }

    #[test]
    fn smallest_box_wins_ranges_gate_and_centre_sampling_shrinks() {
        // One level, stride 8, 8x8 cells (64 px).
        let loc = locations(8, 8, 8, Device::Cpu);
        let n = 64;
        let sizes = Tensor::from_slice(&[-1.0f32, INF as f32])
            .view([1, 2])
            .expand([n, 2], false);
        let gt = boxes(&[[0.0, 0.0, 64.0, 64.0], [8.0, 8.0, 24.0, 24.0]]);
        let cls = Tensor::from_slice(&[3i64, 5]);
        let (lab, reg) =
            compute_targets_for_locations(&loc, &gt, &cls, &sizes, &[8], &[n], 0.0).unwrap();
        let lab = Vec::<i64>::try_from(lab).unwrap();
        // Location (12, 12) is index 1 * 8 + 1: inside both boxes, the small one wins.
        assert_eq!(lab[9], 5);
        assert_eq!(lab[0], 3);
        let r = Vec::<f32>::try_from(reg.get(9)).unwrap();
        assert_eq!(r, vec![4.0, 4.0, 12.0, 12.0]);
        // A range of [0, 30] on max(l, t, r, b) keeps only the small box's locations.
        let narrow = Tensor::from_slice(&[0.0f32, 30.0])
            .view([1, 2])
            .expand([n, 2], false);
        let (lab, _) =
            compute_targets_for_locations(&loc, &gt, &cls, &narrow, &[8], &[n], 0.0).unwrap();
        let lab = Vec::<i64>::try_from(lab).unwrap();
        assert_eq!(lab.iter().filter(|&&c| c == 5).count(), 4);
        assert_eq!(lab.iter().filter(|&&c| c == 3).count(), 0);
        // Centre sampling radius 1 (8 px) around (32, 32): only the 4 central cells of the
        // big box (and the small box's cells within 8 px of (16, 16)).
        let big = boxes(&[[0.0, 0.0, 64.0, 64.0]]);
        let (lab, _) = compute_targets_for_locations(
            &loc,
            &big,
            &Tensor::from_slice(&[0i64]),
            &sizes,
            &[8],
            &[n],
            1.0,
        )
        .unwrap();
        let pos: Vec<usize> = Vec::<i64>::try_from(lab)
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == 0)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(pos, vec![27, 28, 35, 36]);
    }

    #[test]
    fn centerness_is_one_at_the_centre_and_falls_off() {
        let r = boxes(&[
            [4.0, 4.0, 4.0, 4.0],
            [1.0, 4.0, 9.0, 4.0],
            [1.0, 1.0, 9.0, 9.0],
        ]);
        let c = Vec::<f32>::try_from(centerness_target(&r)).unwrap();
        assert!((c[0] - 1.0).abs() < 1e-6);
        assert!((c[1] - (1.0f32 / 9.0).sqrt()).abs() < 1e-6);
        assert!((c[2] - 1.0 / 9.0).abs() < 1e-6);
    }

    #[test]
    fn batch_targets_check_input_and_empty_images_are_background() {
        let cfg = FcosConfig {
            num_classes: 4,
            range_bounds: vec![16.0],
            norm_reg_targets: true,
            ..Default::default()
        };
        let (l0, l1) = (
            locations(4, 4, 8, Device::Cpu),
            locations(2, 2, 16, Device::Cpu),
        );
        let loc = Tensor::cat(&[l0, l1], 0);
        let b = boxes(&[[2.0, 2.0, 30.0, 30.0], [0.0, 0.0, 0.0, 0.0]]).view([1, 2, 4]);
        let bx = Tensor::cat(&[b.shallow_clone(), b.zeros_like()], 0);
        let cl = Tensor::from_slice(&[1i64, -1, -1, -1]).view([2, 2]);
        let t = Targets {
            boxes: &bx,
            classes: &cl,
            ignore: None,
        };
        let out = prepare_targets(&cfg, &loc, &[8, 16], &[16, 4], &t, (32, 32)).unwrap();
        assert_eq!(out.labels.size(), [2, 20]);
        let lab = Vec::<i64>::try_from(out.labels.get(0)).unwrap();
        // A 28 px box: max(l, t, r, b) > 16 at every location inside, so it goes to P4.
        assert!(lab[..16].iter().all(|&c| c == -1));
        assert_eq!(lab[16..].iter().filter(|&&c| c == 1).count(), 4);
        // Normalised by stride 16: location (8, 8) has l = 6 px -> 0.375.
        let r = out.reg.get(0).get(16).double_value(&[0]);
        assert!((r - 6.0 / 16.0).abs() < 1e-6, "{r}");
        assert!(Vec::<i64>::try_from(out.labels.get(1))
            .unwrap()
            .iter()
            .all(|&c| c == -1));
        let bad = Tensor::from_slice(&[4i64, -1, -1, -1]).view([2, 2]);
        let e = prepare_targets(
            &cfg,
            &loc,
            &[8, 16],
            &[16, 4],
            &Targets { classes: &bad, ..t },
            (32, 32),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("0..4") && e.contains('4'), "{e}");
        let outside = boxes(&[[2.0, 2.0, 50.0, 30.0], [0.0, 0.0, 0.0, 0.0]]).view([1, 2, 4]);
        let outside = Tensor::cat(&[outside.shallow_clone(), outside.zeros_like()], 0);
        let e = prepare_targets(
            &cfg,
            &loc,
            &[8, 16],
            &[16, 4],
            &Targets {
                boxes: &outside,
                ..t
            },
            (32, 32),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("inside the 32x32 input") && e.contains("50.0"),
            "{e}"
        );
        let flat = Tensor::zeros([2, 4], (Kind::Float, Device::Cpu));
        assert!(prepare_targets(
            &cfg,
            &loc,
            &[8, 16],
            &[16, 4],
            &Targets { boxes: &flat, ..t },
            (32, 32)
        )
        .unwrap_err()
        .to_string()
        .contains("[B, M, 4]"));
    }
}
