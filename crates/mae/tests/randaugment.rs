//! timm's RandAugment on tensors, op by op: the config string and its validation, the level
//! mappings, the lookup-table ops on known 8-bit levels, PIL's equalize table, the enhance
//! blends, the geometry and fill of rotate / shear / translate, and the batched policy (shape,
//! kind, device kept; reproducible from torch's seed). Parity with timm on PIL images is
//! `parity_randaugment.rs`.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mae::randaugment::{apply_op, rand_augment, RandAugmentConfig, RandOp};
use tch::{Device, Kind, Tensor};
use test_support::{assert_close, rng_lock, Tol};
fn cfg() -> RandAugmentConfig {
    RandAugmentConfig::default()
}

/// A `[1, 3, h, w]` image of 8-bit levels.
fn image(levels: &[f64], c: i64, h: i64, w: i64) -> Tensor {
    Tensor::from_slice(levels)
        .view([1, c, h, w])
        .to_kind(Kind::Float)
        / 255.0
}

fn as_levels(x: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from((x * 255.0).round().flatten(0, -1).to_kind(Kind::Double)).unwrap()
}

#[test]
fn default_is_the_official_string_and_parse_reads_timm_keys() {
    let _rng = rng_lock();
    let c = RandAugmentConfig::parse("rand-m9-mstd0.5-inc1").unwrap();
    assert_eq!(c, RandAugmentConfig::default());
    let c = RandAugmentConfig::parse("rand-n3-m7-mmax12-p0.25-mstd101").unwrap();
    assert_eq!(
        (
            c.num_ops,
            c.magnitude,
            c.magnitude_max,
            c.prob,
            c.increasing
        ),
        (3, 7.0, 12.0, 0.25, false)
    );
    assert_eq!(c.magnitude_std, 101.0);
    // timm's string defaults: m 10, no noise, not increasing.
    let c = RandAugmentConfig::parse("rand").unwrap();
    assert_eq!(
        (c.magnitude, c.magnitude_std, c.increasing),
        (10.0, 0.0, false)
    );
    for bad in [
        "augmix-m9",
        "rand-m9-x3",
        "rand-m9-tweights",
        "rand-inc",
        "rand-m9x",
        "rand-n2.5",
        "rand-inc2",
        "rand-p1.5",
        "",
    ] {
        let e = RandAugmentConfig::parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("RandAugment") || e.contains("rand_augment"),
            "{e}"
        );
    }
    let e = RandAugmentConfig::parse("rand-m9-q1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"q\""), "{e}");
    let e = RandAugmentConfig::parse("rand-p1.5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rand_augment.prob") && e.contains("1.5"), "{e}");
}

#[test]
fn validate_names_the_field_and_value() {
    let _rng = rng_lock();
    let cases = [
        (
            RandAugmentConfig {
                prob: -0.1,
                ..cfg()
            },
            "prob",
            "-0.1",
        ),
        (
            RandAugmentConfig {
                magnitude: f64::NAN,
                ..cfg()
            },
            "magnitude",
            "NaN",
        ),
        (
            RandAugmentConfig {
                magnitude_std: -1.0,
                ..cfg()
            },
            "magnitude_std",
            "-1",
        ),
        (
            RandAugmentConfig {
                magnitude_max: 0.0,
                ..cfg()
            },
            "magnitude_max",
            "0",
        ),
        (
            RandAugmentConfig {
                translate_pct: 2.0,
                ..cfg()
            },
            "translate_pct",
            "2",
        ),
        (
            RandAugmentConfig {
                fill: [0.5, 1.5, 0.0],
                ..cfg()
            },
            "fill",
            "1.5",
        ),
    ];
    for (c, field, value) in cases {
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains(&format!("rand_augment.{field} ")) && e.contains(value),
            "{e}"
        );
    }
    cfg().validate().unwrap();
    // serde: defaults fill in, unknown fields are refused.
    let c: RandAugmentConfig = serde_json::from_str(r#"{"num_ops": 3}"#).unwrap();
    assert_eq!(c.num_ops, 3);
    assert_eq!(c.fill, cfg().fill);
    assert!(serde_json::from_str::<RandAugmentConfig>(r#"{"bogus": 1}"#).is_err());
}

#[test]
fn level_mappings_follow_timm() {
    let _rng = rng_lock();
    let inc = cfg();
    let old = RandAugmentConfig {
        increasing: false,
        ..cfg()
    };
    assert_eq!(RandOp::Rotate.arg(9.0, true, &inc), -27.0);
    assert_eq!(RandOp::Posterize.arg(9.0, false, &inc), 1.0); // 4 - int(3.6)
    assert_eq!(RandOp::Posterize.arg(9.0, false, &old), 3.0);
    assert_eq!(RandOp::Solarize.arg(9.0, false, &inc), 256.0 - 230.0);
    assert_eq!(RandOp::Solarize.arg(9.0, false, &old), 230.0);
    assert_eq!(RandOp::SolarizeAdd.arg(9.0, false, &inc), 99.0);
    assert_close(RandOp::Color.arg(9.0, false, &inc), 1.81, Tol::abs(1e-12));
    assert_close(RandOp::Color.arg(9.0, true, &inc), 0.19, Tol::abs(1e-12));
    assert_close(RandOp::Color.arg(9.0, true, &old), 1.72, Tol::abs(1e-12));
    assert_close(RandOp::ShearX.arg(10.0, true, &inc), -0.3, Tol::abs(1e-12));
    assert_close(
        RandOp::TranslateYRel.arg(10.0, false, &inc),
        0.45,
        Tol::abs(1e-12),
    );
    assert_eq!(
        RandOp::from_timm_name("SharpnessIncreasing"),
        Some(RandOp::Sharpness)
    );
    assert_eq!(RandOp::from_timm_name("Cutout"), None);
}

#[test]
fn lookup_ops_on_known_levels() {
    let _rng = rng_lock();
    // One row of levels per channel.
    let px = [0.0, 37.0, 100.0, 127.0, 128.0, 200.0, 254.0, 255.0];
    let x = image(&px, 1, 1, 8);
    let c = cfg();
    // Invert is 1 - x, on any float.
    let r = Tensor::rand([2, 3, 4, 5], (Kind::Float, Device::Cpu));
    let inv = apply_op(&r, RandOp::Invert, 9.0, false, &c).unwrap();
    assert!(inv.allclose(&(1.0 - &r), 0.0, 1e-7, false));
    // Posterize at level 9 (increasing) keeps 1 bit: v & 128.
    let y = apply_op(&x, RandOp::Posterize, 9.0, false, &c).unwrap();
    assert_eq!(
        as_levels(&y),
        vec![0.0, 0.0, 0.0, 0.0, 128.0, 128.0, 128.0, 128.0]
    );
    // Level 2.5 keeps 4 - int(1.0) = 3 bits: v & 224.
    let y = apply_op(&x, RandOp::Posterize, 2.5, false, &c).unwrap();
    assert_eq!(
        as_levels(&y),
        vec![0.0, 32.0, 96.0, 96.0, 128.0, 192.0, 224.0, 224.0]
    );
    // Solarize at level 5 (increasing): threshold 256 - 128 = 128.
    let y = apply_op(&x, RandOp::Solarize, 5.0, false, &c).unwrap();
    assert_eq!(
        as_levels(&y),
        vec![0.0, 37.0, 100.0, 127.0, 127.0, 55.0, 1.0, 0.0]
    );
    // Solarize-add at level 5: +55 below 128, saturating.
    let y = apply_op(&x, RandOp::SolarizeAdd, 5.0, false, &c).unwrap();
    assert_eq!(
        as_levels(&y),
        vec![55.0, 92.0, 155.0, 182.0, 128.0, 200.0, 254.0, 255.0]
    );
    // Autocontrast stretches [37, 200] to [0, 255] by int(v * s - 37 s).
    let x2 = image(&[37.0, 100.0, 150.0, 200.0], 1, 2, 2);
    let y = apply_op(&x2, RandOp::AutoContrast, 0.0, false, &c).unwrap();
    let s = 255.0 / 163.0;
    let want: Vec<f64> = [37.0f64, 100.0, 150.0, 200.0]
        .iter()
        .map(|v| (v * s - 37.0 * s).floor())
        .collect();
    assert_eq!(as_levels(&y), want);
    // A flat channel is left alone by autocontrast and equalize.
    let flat = Tensor::full([1, 1, 3, 3], 0.3, (Kind::Float, Device::Cpu));
    for op in [RandOp::AutoContrast, RandOp::Equalize] {
        assert!(apply_op(&flat, op, 0.0, false, &c).unwrap().equal(&flat));
    }
}

#[test]
fn equalize_follows_pil_table() {
    let _rng = rng_lock();
    // 16 x 32 pixels: levels 10 (x 256), 20 (x 128), 30 (x 128).
    let mut px = vec![10.0; 256];
    px.extend(vec![20.0; 128]);
    px.extend(vec![30.0; 128]);
    let x = image(&px, 1, 16, 32);
    let y = apply_op(&x, RandOp::Equalize, 0.0, false, &cfg()).unwrap();
    // step = (512 - 128) // 256 = 1; lut[v] = (0 + count below v) // 1, clipped.
    let got = as_levels(&y);
    assert_eq!((got[0], got[256], got[511]), (0.0, 255.0, 255.0));
}

#[test]
fn enhance_ops_blend_with_their_degenerate() {
    let _rng = rng_lock();
    let c = cfg();
    let px = [
        10.0, 200.0, 30.0, 90.0, 60.0, 120.0, 250.0, 0.0, 80.0, 40.0, 220.0, 100.0,
    ];
    let x = image(&px, 3, 2, 2);
    // Brightness: factor 1 + 0.9 * 0.5 = 1.45, times the image.
    let y = apply_op(&x, RandOp::Brightness, 5.0, false, &c).unwrap();
    assert!(y.allclose(&(&x * 1.45).clamp(0.0, 1.0), 0.0, 1e-6, false));
    // Brightness down (negated): 0.55.
    let y = apply_op(&x, RandOp::Brightness, 5.0, true, &c).unwrap();
    assert!(y.allclose(&(&x * 0.55), 0.0, 1e-6, false));
    // Color 0.55: blend with the 8-bit grayscale of each pixel.
    let y = apply_op(&x, RandOp::Color, 5.0, true, &c).unwrap();
    let lv = as_levels(&x);
    for p in 0..4 {
        let (r, g, b) = (lv[p], lv[4 + p], lv[8 + p]);
        let gray = ((19595.0 * r + 38470.0 * g + 7471.0 * b + 32768.0) / 65536.0f64).floor();
        for (ch, v) in [r, g, b].into_iter().enumerate() {
            let want = (gray + 0.55 * (v - gray)) / 255.0;
            let got = y.double_value(&[0, ch as i64, p as i64 / 2, p as i64 % 2]);
            assert_close(got, want, Tol::abs(1e-6));
        }
    }
    // Contrast 0.55: blend with the rounded mean of the grayscale.
    let y = apply_op(&x, RandOp::Contrast, 5.0, true, &c).unwrap();
    let grays: Vec<f64> = (0..4)
        .map(|p| {
            ((19595.0 * lv[p] + 38470.0 * lv[4 + p] + 7471.0 * lv[8 + p] + 32768.0) / 65536.0f64)
                .floor()
        })
        .collect();
    let mean = (grays.iter().sum::<f64>() / 4.0 + 0.5).floor() / 255.0;
    let want = (&x - mean) * 0.55 + mean;
    assert!(y.allclose(&want, 0.0, 1e-6, false));
    // Sharpness: the border is untouched; the centre of a 3x3 blends with the smooth value.
    let x3 = image(&[0.0, 0.0, 0.0, 0.0, 130.0, 0.0, 0.0, 0.0, 0.0], 1, 3, 3);
    let y = apply_op(&x3, RandOp::Sharpness, 5.0, false, &c).unwrap();
    let smooth = (130.0f64 * 5.0 / 13.0).round(); // 50
    let want = smooth + 1.45 * (130.0 - smooth);
    assert_close(y.double_value(&[0, 0, 1, 1]) * 255.0, want, Tol::abs(1e-3));
    let border = y.sum(Kind::Double).double_value(&[]) - y.double_value(&[0, 0, 1, 1]);
    assert_eq!(border, 0.0);
}

#[test]
fn geometric_ops_move_pixels_and_fill() {
    let _rng = rng_lock();
    let c = cfg();
    tch::manual_seed(4);
    let x = Tensor::rand([2, 3, 10, 20], (Kind::Float, Device::Cpu));
    // Rotate and shear at level 0 are the identity.
    for op in [RandOp::Rotate, RandOp::ShearX, RandOp::ShearY] {
        let y = apply_op(&x, op, 0.0, false, &c).unwrap();
        assert!(y.allclose(&x, 0.0, 1e-5, false), "{op:?}");
    }
    // TranslateXRel at level 5 with translate_pct 0.2: 0.1 * 20 = 2 pixels; the source of
    // column j is column j + 2, the last 2 columns take the fill.
    let tc = RandAugmentConfig {
        translate_pct: 0.2,
        ..c
    };
    let y = apply_op(&x, RandOp::TranslateXRel, 5.0, false, &tc).unwrap();
    assert!(y
        .narrow(3, 0, 18)
        .allclose(&x.narrow(3, 2, 18), 0.0, 1e-5, false));
    for (ch, f) in c.fill.iter().enumerate() {
        let tail = y.get(1).get(ch as i64).narrow(1, 18, 2);
        assert!(tail.allclose(&tail.full_like(*f), 0.0, 1e-6, false));
    }
    // Negated: 2 pixels the other way.
    let y = apply_op(&x, RandOp::TranslateXRel, 5.0, true, &tc).unwrap();
    assert!(y
        .narrow(3, 2, 18)
        .allclose(&x.narrow(3, 0, 18), 0.0, 1e-5, false));
    // TranslateYRel by 0.1 * 10 = 1 row.
    let y = apply_op(&x, RandOp::TranslateYRel, 5.0, false, &tc).unwrap();
    assert!(y
        .narrow(2, 0, 9)
        .allclose(&x.narrow(2, 1, 9), 0.0, 1e-5, false));
    // Rotating by 90 degrees (level 30 with mmax 30) on a square is a transpose + flip.
    let sq = Tensor::rand([1, 1, 6, 6], (Kind::Float, Device::Cpu));
    let big = RandAugmentConfig {
        magnitude_max: 30.0,
        ..c
    };
    let y = apply_op(&sq, RandOp::Rotate, 30.0, false, &big).unwrap();
    // Counter-clockwise: output (row i, col j) = input (row j, col W-1-i).
    let want = sq.transpose(2, 3).flip([2]);
    assert!(y.allclose(&want, 0.0, 1e-5, false));
    // 1-channel images fill with the luma of the fill colour.
    let g = Tensor::zeros([1, 1, 4, 4], (Kind::Float, Device::Cpu));
    let y = apply_op(&g, RandOp::TranslateXRel, 10.0, false, &c).unwrap();
    let luma = 0.299 * c.fill[0] + 0.587 * c.fill[1] + 0.114 * c.fill[2];
    assert_close(y.double_value(&[0, 0, 0, 3]), luma, Tol::abs(1e-6));
}

#[test]
fn batch_keeps_shape_kind_device_and_is_reproducible() {
    let _rng = rng_lock();
    let c = cfg();
    tch::manual_seed(5);
    let x = Tensor::rand([16, 3, 12, 12], (Kind::Float, Device::Cpu));
    tch::manual_seed(6);
    let a = rand_augment(&x, &c).unwrap();
    assert_eq!(
        (a.size(), a.kind(), a.device()),
        (x.size(), x.kind(), x.device())
    );
    assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
    // Some images change, and the same seed gives the same batch.
    assert!(!a.allclose(&x, 0.0, 0.01, false));
    tch::manual_seed(6);
    assert!(rand_augment(&x, &c).unwrap().equal(&a));
    tch::manual_seed(7);
    assert!(!rand_augment(&x, &c).unwrap().equal(&a));
    // Double and 1-channel batches work too.
    let xd = x.to_kind(Kind::Double).narrow(1, 0, 1);
    let d = rand_augment(&xd, &c).unwrap();
    assert_eq!((d.size(), d.kind()), (xd.size(), Kind::Double));
    // prob 0 is the identity; prob 1 with 1 op changes almost every image.
    let off = RandAugmentConfig { prob: 0.0, ..c };
    assert!(rand_augment(&x, &off).unwrap().equal(&x));
    let on = RandAugmentConfig {
        prob: 1.0,
        num_ops: 1,
        ..c
    };
    let y = rand_augment(&x, &on).unwrap();
    let changed = (&y - &x)
        .abs()
        .amax(&[1, 2, 3][..], false)
        .gt(1e-4)
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert!(changed >= 12, "{changed}");
}

#[test]
fn bad_inputs_are_errors() {
    let _rng = rng_lock();
    let c = cfg();
    let e = rand_augment(&Tensor::zeros([3, 8, 8], (Kind::Float, Device::Cpu)), &c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[N, C, H, W]") && e.contains("[3, 8, 8]"), "{e}");
    let ints = Tensor::zeros([1, 3, 8, 8], (Kind::Uint8, Device::Cpu));
    assert!(rand_augment(&ints, &c).is_err());
    let four = Tensor::zeros([1, 4, 8, 8], (Kind::Float, Device::Cpu));
    let e = rand_augment(&four, &c).unwrap_err().to_string();
    assert!(
        e.contains("C = 1 or 3") && e.contains("[1, 4, 8, 8]"),
        "{e}"
    );
    let bad = RandAugmentConfig { prob: 2.0, ..c };
    let x = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    assert!(rand_augment(&x, &bad).is_err());
}

#[test]
fn finetuning_defaults_to_it_and_checks_it() {
    let _rng = rng_lock();
    use mae::finetune::FinetuneConfig;
    let f = FinetuneConfig::default();
    assert_eq!(f.rand_augment, Some(cfg()));
    let bad = FinetuneConfig {
        rand_augment: Some(RandAugmentConfig { prob: 3.0, ..cfg() }),
        ..f.clone()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("rand_augment.prob") && e.contains('3'), "{e}");
    let off: FinetuneConfig = serde_json::from_str(r#"{"rand_augment": null}"#).unwrap();
    assert_eq!(off.rand_augment, None);
    let m5: FinetuneConfig =
        serde_json::from_str(r#"{"rand_augment": {"magnitude": 5.0}}"#).unwrap();
    assert_eq!(m5.rand_augment.unwrap().magnitude, 5.0);
}
