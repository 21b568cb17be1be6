//! CenterNet parity with direct Python transcriptions of the official functions
//! (`tests/parity/centernet_reference.py`, run by `$CVLAB_PYTHON`): `gaussian_radius` (both
//! rules, float and the call site's integer), `draw_umich_gaussian`, the `ctdet.py` targets of
//! a padded batch, `_neg_loss` and `RegL1Loss`, and `ctdet_decode`; all equal to 1e-6.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use det_anchorfree::centernet::{
    centernet_loss, decode, draw_umich_gaussian, gaussian_radius, integer_radius, loss,
    CenterNetTargets, DecodeConfig, LossConfig, RadiusRule, TargetConfig,
};
use serde_json::Value;
use tch::{Device, Kind, Tensor};
use test_support::{assert_all_close, assert_close, read_json, Tol};

const TOL: f64 = 1e-6;

fn reference() -> Value {
    let dir = test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/centernet_reference.py",
        "numpy, torch",
    );
    read_json(&dir.path().join("centernet.json"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn tensor(v: &Value, shape: &[i64]) -> Tensor {
    let f: Vec<f32> = floats(v).into_iter().map(|x| x as f32).collect();
    Tensor::from_slice(&f).view(shape)
}

#[test]
#[ignore = "parity: needs $CVLAB_PYTHON (numpy, torch)"]
fn centernet_parity_with_the_official_functions() {
    let r = reference();
    let tol = Tol::abs(TOL);

    // gaussian_radius, both rules, and the call site's integer radius.
    for c in r["radius"].as_array().unwrap() {
        let (h, w) = (c["h"].as_f64().unwrap(), c["w"].as_f64().unwrap());
        for (rule, key) in [
            (RadiusRule::Corrected, "corrected"),
            (RadiusRule::Original, "original"),
        ] {
            assert_close(
                gaussian_radius(h, w, 0.7, rule),
                c[key].as_f64().unwrap(),
                tol,
            );
            assert_eq!(
                integer_radius(h, w, 0.7, rule),
                c[format!("int_{key}").as_str()].as_i64().unwrap(),
                "{h}x{w} {key}"
            );
        }
    }

    // draw_umich_gaussian in sequence (overlaps merged by max, borders clipped).
    let d = &r["draw"];
    let (w, h) = (
        d["w"].as_u64().unwrap() as usize,
        d["h"].as_u64().unwrap() as usize,
    );
    let mut hm = vec![0f32; w * h];
    for c in d["draws"].as_array().unwrap() {
        let c = ints(c);
        draw_umich_gaussian(&mut hm, w, h, (c[0], c[1]), c[2]);
    }
    let got: Vec<f64> = hm.iter().map(|v| *v as f64).collect();
    assert_all_close(&got, &floats(&d["heatmap"]), tol);

    // ctdet.py targets of a padded batch (zero-size, outside, clipped boxes, an empty image,
    // more boxes than max_objects).
    let t = &r["targets"];
    let g = |k: &str| t[k].as_i64().unwrap();
    let (b, m) = (3, g("m"));
    let boxes = tensor(&t["boxes"], &[b, m, 4]);
    let classes = Tensor::from_slice(&ints(&t["classes"])).view([b, m]);
    for (rule, key) in [
        (RadiusRule::Corrected, "corrected"),
        (RadiusRule::Original, "original"),
    ] {
        let cfg = TargetConfig {
            num_classes: g("num_classes"),
            stride: g("stride"),
            max_objects: g("max_objects") as usize,
            min_overlap: 0.7,
            radius: rule,
        };
        let got = CenterNetTargets::from_padded(
            &boxes,
            &classes,
            (g("input_h"), g("input_w")),
            &cfg,
            Device::Cpu,
        )
        .unwrap();
        let want = &t[key];
        assert_all_close(&values(&got.hm), &floats(&want["hm"]), tol);
        assert_all_close(&values(&got.wh), &floats(&want["wh"]), tol);
        assert_all_close(&values(&got.reg), &floats(&want["reg"]), tol);
        assert_all_close(&values(&got.mask), &floats(&want["mask"]), tol);
        assert_eq!(
            Vec::<i64>::try_from(got.ind.flatten(0, -1)).unwrap(),
            ints(&want["ind"]),
            "{key} indices"
        );
        if rule == RadiusRule::Corrected {
            // _neg_loss and RegL1Loss on fixed logits and maps.
            let l = &r["loss"];
            let hm_shape = got.hm.size();
            let (oh, ow) = (hm_shape[2], hm_shape[3]);
            let logits = tensor(&l["logits"], &hm_shape);
            let wh_out = tensor(&l["wh_out"], &[b, 2, oh, ow]);
            let reg_out = tensor(&l["reg_out"], &[b, 2, oh, ow]);
            let parts =
                centernet_loss(&logits, &wh_out, &reg_out, &got, &LossConfig::default()).unwrap();
            let rel = Tol::abs(TOL).or_rel(1e-6);
            assert_close(parts.hm.double_value(&[]), l["hm"].as_f64().unwrap(), rel);
            assert_close(parts.wh.double_value(&[]), l["wh"].as_f64().unwrap(), rel);
            assert_close(parts.off.double_value(&[]), l["off"].as_f64().unwrap(), rel);
            assert_close(
                parts.total.double_value(&[]),
                l["total"].as_f64().unwrap(),
                rel,
            );
            // The image without objects: -neg, finite.
            let empty = loss::focal_loss(
                &loss::clamped_sigmoid(&logits.narrow(0, 1, 1)),
                &got.hm.narrow(0, 1, 1),
                2.0,
                4.0,
            )
            .unwrap()
            .double_value(&[]);
            assert!(empty.is_finite());
            assert_close(empty, l["hm_empty_image"].as_f64().unwrap(), rel);

            // ctdet_decode (K = 20) on the same probabilities, boxes times the stride.
            let dcfg = DecodeConfig {
                k: r["decode"]["k"].as_i64().unwrap(),
                ..Default::default()
            };
            let dets = decode(
                &loss::clamped_sigmoid(&logits),
                &wh_out,
                Some(&reg_out),
                &dcfg,
            )
            .unwrap();
            let boxes: Vec<f64> = dets.iter().flat_map(|d| values(&d.boxes)).collect();
            let scores: Vec<f64> = dets.iter().flat_map(|d| values(&d.scores)).collect();
            let cls: Vec<i64> = dets
                .iter()
                .flat_map(|d| Vec::<i64>::try_from(&d.classes).unwrap())
                .collect();
            assert_all_close(&boxes, &floats(&r["decode"]["boxes"]), Tol::abs(1e-4));
            assert_all_close(&scores, &floats(&r["decode"]["scores"]), tol);
            assert_eq!(cls, ints(&r["decode"]["classes"]));
        }
    }
}
