//! FCOS end to end on CPU (a tiny ResNet-18 + FPN: prior init, a few steps learn one image,
//! decoding, bad input) and parity with direct transcriptions of the official code
//! (`tests/parity/fcos_reference.py`: `compute_targets_for_locations` with and without
//! `get_sample_region`, `compute_centerness_targets`, `IOULoss`) and with
//! `torchvision.ops.sigmoid_focal_loss`, to 1e-6.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use det_anchorfree::fcos::{
    centerness_target, compute_targets_for_locations, iou_loss, Fcos, FcosConfig, IouLossKind,
    Targets,
};
use det_pyramid::loss::{sigmoid_focal_loss, Reduce};
use det_pyramid::{Depth, Detector, FpnConfig, ResNetConfig, ResNetFpn, TopLevels};
use tch::{nn, Device, Kind, Tensor};
use train_kit::Optimizer;

const TOL: f64 = 1e-6;

fn tiny(vs: &nn::VarStore, cfg: &FcosConfig) -> Fcos {
    let trunk = ResNetConfig::small(Depth::R18, 8);
    let mut fpn = FpnConfig::retinanet(trunk.channels(), 16);
    fpn.top = TopLevels::P6P7 { from_p5: true };
    let bb = ResNetFpn::new(&(vs.root() / "backbone"), &trunk, &fpn).unwrap();
    Fcos::new(&vs.root(), Box::new(bb), cfg).unwrap()
}

fn small_cfg(classes: i64) -> FcosConfig {
    FcosConfig {
        num_classes: classes,
        range_scale: 0.25,
        head_convs: 1,
        gn_groups: 8,
        ..Default::default()
    }
}

#[test]
fn prior_init_training_steps_decoding_and_bad_input() {
    tch::manual_seed(0);
    for cfg in [FcosConfig::default(), FcosConfig::improved()] {
        let cfg = FcosConfig {
            num_classes: 3,
            range_scale: 0.25,
            head_convs: 1,
            gn_groups: 8,
            ..cfg
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let model = tiny(&vs, &cfg);
        let x = Tensor::rand([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let out = model.forward_t(&x, true).unwrap();
        assert_eq!(out.cls.len(), 5);
        assert_eq!(out.cls[0].size(), [1, 8 * 8, 3]);
        assert_eq!(out.strides, vec![8, 16, 32, 64, 128]);
        let p = out.cls[0].sigmoid().mean(Kind::Float).double_value(&[]);
        assert!((p - 0.01).abs() < 2e-3, "{p}");
        let boxes =
            Tensor::from_slice(&[8.0f32, 8.0, 40.0, 30.0, 0.0, 0.0, 0.0, 0.0]).view([1, 2, 4]);
        let classes = Tensor::from_slice(&[2i64, -1]).view([1, 2]);
        let t = Targets {
            boxes: &boxes,
            classes: &classes,
            ignore: None,
        };
        let first = model.loss(&out, &t).unwrap();
        assert!(first.positives > 0);
        let mut opt = train_kit::Sgd::with_single_group(
            &vs,
            train_kit::SgdConfig {
                lr: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        let mut last = f64::INFINITY;
        for _ in 0..15 {
            opt.zero_grad();
            let out = model.forward_t(&x, true).unwrap();
            let l = model.loss(&out, &t).unwrap();
            l.total.backward();
            opt.step().unwrap();
            last = l.total.double_value(&[]);
        }
        assert!(
            last < 0.8 * first.total.double_value(&[]),
            "{first:?} -> {last}"
        );
        let dets = model.detect(&x).unwrap();
        let v = dets[0].to_vecs().unwrap();
        assert!(v.len() <= 100);
        assert!(v
            .iter()
            .all(|(b, s, _)| *s > 0.0 && b.iter().all(|c| (0.0..=64.0).contains(c))));
        // An image without boxes: finite loss.
        let none = Tensor::from_slice(&[-1i64, -1]).view([1, 2]);
        let l = model
            .loss(
                &out,
                &Targets {
                    classes: &none,
                    ..t
                },
            )
            .unwrap();
        assert!(l.total.double_value(&[]).is_finite() && l.positives == 0);
        // A class beyond the head, a box outside the input, wrong shapes: errors.
        let big = Tensor::from_slice(&[3i64, -1]).view([1, 2]);
        let e = model
            .loss(&out, &Targets { classes: &big, ..t })
            .unwrap_err()
            .to_string();
        assert!(e.contains("0..3"), "{e}");
        let outside = Tensor::from_slice(&[8.0f32, 8.0, 90.0, 30.0]).view([1, 1, 4]);
        let one = Tensor::from_slice(&[0i64]).view([1, 1]);
        let e = model
            .loss(
                &out,
                &Targets {
                    boxes: &outside,
                    classes: &one,
                    ignore: None,
                },
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inside the 64x64 input") && e.contains("90.0"),
            "{e}"
        );
        let wrong = Tensor::zeros([2, 2, 4], (Kind::Float, Device::Cpu));
        assert!(model
            .loss(&out, &Targets { boxes: &wrong, ..t })
            .unwrap_err()
            .to_string()
            .contains("[1, M, 4]"));
        assert!(model
            .forward_t(
                &Tensor::zeros([1, 1, 64, 64], (Kind::Float, Device::Cpu)),
                false
            )
            .is_err());
    }
    // Ranges that do not fit the pyramid, groups that do not divide the channels.
    let vs = nn::VarStore::new(Device::Cpu);
    let trunk = ResNetConfig::small(Depth::R18, 8);
    let fpn = FpnConfig::retinanet(trunk.channels(), 16);
    let bb = || Box::new(ResNetFpn::new(&(vs.root() / "b"), &trunk, &fpn).unwrap());
    let e = Fcos::new(
        &vs.root(),
        bb(),
        &FcosConfig {
            range_bounds: vec![64.0],
            ..small_cfg(2)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("4 bounds for a 5-level pyramid"), "{e}");
    let e = Fcos::new(
        &vs.root(),
        bb(),
        &FcosConfig {
            gn_groups: 32,
            ..small_cfg(2)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("16 channels"), "{e}");
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let v = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    test_support::max_abs_diff(&v(a), &v(b))
}

#[test]
#[ignore = "needs CVLAB_PYTHON with torch + torchvision; run by cargo xtask test"]
fn parity_fcos_targets_centerness_iou_loss_focal() {
    tch::set_num_threads(2);
    let dir = test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/fcos_reference.py",
        "torchvision, safetensors",
    );
    let f: HashMap<String, Tensor> = Tensor::read_safetensors(dir.path().join("fcos.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    let cases = test_support::read_json(&dir.path().join("cases.json"));
    let ints = |k: &str| -> Vec<i64> {
        cases[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    let (strides, npl) = (ints("strides"), ints("points_per_level"));
    let g = |k: &str| f.get(k).unwrap_or_else(|| panic!("missing {k}"));
    let sets: Vec<String> = cases["bound_sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(sets, ["paper", "half"]);
    for set in &sets {
        let mut positives = Vec::new();
        for (r, radius) in [("r0", 0.0), ("r15", 1.5)] {
            let tag = format!("{set}_{r}");
            let (lab, reg) = compute_targets_for_locations(
                g("locations"),
                g("boxes"),
                g("labels"),
                g(&format!("sizes_{set}")),
                &strides,
                &npl,
                radius,
            )
            .unwrap();
            assert_eq!(
                Vec::<i64>::try_from(&lab).unwrap(),
                Vec::<i64>::try_from(g(&format!("labels_{tag}"))).unwrap(),
                "labels {tag}"
            );
            let d = max_diff(&reg, g(&format!("reg_{tag}")));
            assert!(d <= TOL, "reg targets {tag}: {d}");
            let pos = lab.ge(0).nonzero().view([-1]);
            let ctr = centerness_target(&reg.index_select(0, &pos));
            let d = max_diff(&ctr, g(&format!("ctr_{tag}")));
            assert!(d <= TOL, "centre-ness {tag}: {d}");
            positives.push((pos.size()[0], Vec::<i64>::try_from(&lab).unwrap()));
        }
        // Both cases have positives, and centre sampling changes the assignment.
        assert!(positives.iter().all(|p| p.0 > 10), "{set}");
        assert_ne!(positives[0].1, positives[1].1, "{set}");
    }
    let (p, t) = (g("iou_pred"), g("iou_target"));
    let w = centerness_target(t);
    for (name, kind) in [
        ("iou", IouLossKind::Iou),
        ("linear_iou", IouLossKind::LinearIou),
        ("giou", IouLossKind::Giou),
    ] {
        let got = iou_loss(p, t, Some(&w), kind).double_value(&[]);
        let want = g(&format!("iou_{name}")).double_value(&[0]);
        assert!(
            (got - want).abs() <= TOL * want.abs().max(1.0) * 10.0,
            "{name}: {got} vs {want}"
        );
    }
    let (x, y) = (g("focal_logits"), g("focal_targets"));
    let d = max_diff(
        &sigmoid_focal_loss(x, y, 0.25, 2.0, Reduce::None),
        g("focal_none"),
    );
    assert!(d <= TOL, "focal none: {d}");
    let got = sigmoid_focal_loss(x, y, 0.25, 2.0, Reduce::Sum).double_value(&[]);
    let want = g("focal_sum").double_value(&[0]);
    assert!(
        (got - want).abs() <= 1e-5 * want.max(1.0),
        "{got} vs {want}"
    );
}
