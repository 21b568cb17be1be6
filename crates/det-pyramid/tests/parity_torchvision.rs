//! Parity with torchvision (`tests/parity/pyramid_reference.py`, run by `$CVLAB_PYTHON`): the
//! ResNet-18/50 trunks (C2-C5), the FPN with `LastLevelMaxPool` and `LastLevelP6P7` (from C5
//! and from P5), `AnchorGenerator` and `sigmoid_focal_loss` agree to 1e-5 on the same weights
//! and inputs (float32, CPU).

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use det_pyramid::anchors::{grid_anchors, AnchorConfig};
use det_pyramid::loss::{sigmoid_focal_loss, Reduce};
use det_pyramid::{Depth, Fpn, FpnConfig, LoadOptions, ResNet, ResNetConfig, TopLevels};
use tch::{nn, Device, Tensor};

const TOL: f64 = 1e-5;

fn reference_dir() -> tempfile::TempDir {
    test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/pyramid_reference.py",
        "torchvision",
    )
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// The largest `|a - b|`, relative to max(1, |b|_inf) so that deep activations of size ~100
/// are compared at float32 precision.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let values = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1));
    let (a, b) = (values(a).unwrap(), values(b).unwrap());
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    test_support::max_abs_diff(&a, &b) / scale
}

#[test]
#[ignore = "needs CVLAB_PYTHON with torchvision; run by cargo xtask test"]
fn parity_with_torchvision_trunks_fpn_anchors_focal() {
    tch::set_num_threads(2);
    let dir = reference_dir();
    let d = dir.path();
    for (case, depth) in [("resnet18", Depth::R18), ("resnet50", Depth::R50)] {
        let path = d.join(format!("{case}.safetensors"));
        let file = read(&path);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = ResNet::new(&(vs.root() / "body"), &ResNetConfig::new(depth)).unwrap();
        let report = model
            .load_safetensors(&vs, &path, &LoadOptions::default())
            .unwrap();
        assert!(report.missing.is_empty(), "{case}: {report}");
        assert_eq!(report.unexpected, vec!["fc.bias", "fc.weight"], "{case}");
        assert!(!report.ignored.is_empty());
        let f = tch::no_grad(|| model.forward_t(&file["__input__"], false)).unwrap();
        for (name, t) in ["c2", "c3", "c4", "c5"].iter().zip(f.all()) {
            let diff = max_diff(t, &file[&format!("__{name}__")]);
            assert!(diff <= TOL, "{case} {name}: {diff:e}");
            eprintln!("{case} {name}: max rel diff {diff:e}");
        }
        // Frozen BatchNorm is eval-mode BatchNorm: same outputs, also with train = true.
        let vs2 = nn::VarStore::new(Device::Cpu);
        let frozen = ResNet::new(&vs2.root(), &ResNetConfig::detectron2(depth)).unwrap();
        frozen
            .load_safetensors(&vs2, &path, &LoadOptions::default())
            .unwrap();
        let g = tch::no_grad(|| frozen.forward_t(&file["__input__"], true)).unwrap();
        let diff = max_diff(&g.c5, &file["__c5__"]);
        assert!(diff <= TOL, "{case} frozen: {diff:e}");
    }

    for case in ["fpn_maxpool", "fpn_p6p7_c5", "fpn_p6p7_p5"] {
        let path = d.join(format!("{case}.safetensors"));
        let file = read(&path);
        let cases = test_support::read_json(&d.join("cases.json"));
        let meta = &cases[case];
        let in_channels: Vec<i64> = meta["in_channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let top = if meta["top"] == "maxpool" {
            TopLevels::MaxPool
        } else {
            TopLevels::P6P7 {
                from_p5: meta["from_p5"].as_bool().unwrap(),
            }
        };
        let cfg = FpnConfig {
            in_channels: in_channels.clone(),
            out_channels: meta["out_channels"].as_i64().unwrap(),
            first_level: 2,
            top,
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let fpn = Fpn::new(&(vs.root() / "fpn"), &cfg).unwrap();
        let report = fpn
            .load_safetensors(&vs, &path, &LoadOptions::default())
            .unwrap();
        assert!(
            report.missing.is_empty() && report.unexpected.is_empty(),
            "{case}: {report}"
        );
        let inputs: Vec<&Tensor> = (0..in_channels.len())
            .map(|i| &file[&format!("__in{i}__")])
            .collect();
        let out = tch::no_grad(|| fpn.forward(&inputs)).unwrap();
        assert_eq!(out.maps.len() as u64, meta["outputs"].as_u64().unwrap());
        for (i, m) in out.maps.iter().enumerate() {
            let diff = max_diff(m, &file[&format!("__out{i}__")]);
            assert!(diff <= TOL, "{case} level {i}: {diff:e}");
        }
    }

    // AnchorGenerator: RetinaNet's sizes (truncated 2^(k/3) scales) and ratios on P3-P7 of a
    // 512 x 480 image, maps of ceil(480 / stride) columns so that stride = image // map varies.
    let file = read(&d.join("anchors.safetensors"));
    let cfg = AnchorConfig::default();
    let maps: Vec<(i64, i64)> = (0..5)
        .map(|i| {
            let v = Vec::<i64>::try_from(&file[&format!("__map{i}__")]).unwrap();
            (v[0], v[1])
        })
        .collect();
    let ours = Tensor::cat(
        &grid_anchors(&cfg, (512, 480), &maps, Device::Cpu).unwrap(),
        0,
    );
    let diff = max_diff(&ours, &file["__anchors__"]);
    assert!(diff == 0.0, "anchors differ by {diff:e}");

    // sigmoid_focal_loss, every reduction, and alpha < 0 with another gamma.
    let file = read(&d.join("focal.safetensors"));
    let (x, t) = (&file["__inputs__"], &file["__targets__"]);
    for (key, alpha, gamma, red) in [
        ("__none__", 0.25, 2.0, Reduce::None),
        ("__sum__", 0.25, 2.0, Reduce::Sum),
        ("__mean__", 0.25, 2.0, Reduce::Mean),
        ("__none_a-1_g1.5__", -1.0, 1.5, Reduce::None),
    ] {
        let diff = max_diff(&sigmoid_focal_loss(x, t, alpha, gamma, red), &file[key]);
        assert!(diff <= TOL, "focal {key}: {diff:e}");
    }
}
