//! Parity of the networks and the loss with independent Python transcriptions
//! (`tests/parity/params_ref.py`, `tests/parity/loss_ref.py`); run with
//! `cargo test --release -p yolo parity -- --ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tch::{nn, Device, Kind, Tensor};
use test_support::{assert_all_close, assert_close, read_json, run_reference, Tol};
use yolo::net::{from_cells, to_cells};
use yolo::{
    grid_targets, parameter_count, yolo_loss, Layout, LossConfig, TieRule, Yolo, YoloConfig,
};

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
#[ignore]
fn parity_parameter_counts_and_shapes() {
    let dir = run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/params_ref.py",
        "torch",
    );
    let r = read_json(&dir.path().join("params_ref.json"));
    for (name, cfg) in [("paper", YoloConfig::paper()), ("fast", YoloConfig::fast())] {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Yolo::new(&vs.root(), &cfg).unwrap();
        assert_eq!(
            parameter_count(&vs),
            r[name]["parameters"].as_i64().unwrap(),
            "{name} parameters"
        );
        assert_eq!(
            yolo::net::conv_count(cfg.arch) as i64,
            r[name]["convs"].as_i64().unwrap()
        );
        assert_eq!(r[name]["output"], serde_json::json!([1, 1470]));
        if name == "fast" {
            let x = Tensor::rand([1, 3, 448, 448], (Kind::Float, Device::Cpu));
            let raw = tch::no_grad(|| m.forward_raw(&x, false)).unwrap();
            assert_eq!(raw.size(), vec![1, 1470]);
            let cells = tch::no_grad(|| m.forward_t(&x, false)).unwrap();
            assert_eq!(cells.size(), vec![1, 7, 7, 30]);
        }
    }
}

struct Case {
    name: String,
    s: i64,
    b: i64,
    c: i64,
    hw: (i64, i64),
    n: i64,
    cells: Tensor,
    flat: Tensor,
    boxes: Tensor,
    classes: Tensor,
}

fn case(v: &Value) -> Case {
    let g = |k: &str| v[k].as_i64().unwrap();
    let (s, b, c, n, m) = (g("S"), g("B"), g("C"), g("N"), g("M"));
    let boxes: Vec<f64> = v["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|img| img.as_array().unwrap().iter().flat_map(f64s))
        .collect();
    let classes: Vec<i64> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|img| img.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
        .collect();
    Case {
        name: v["name"].as_str().unwrap().to_string(),
        s,
        b,
        c,
        hw: (g("H"), g("W")),
        n,
        cells: Tensor::from_slice(&f64s(&v["cells"])).reshape([n, s, s, b * 5 + c]),
        flat: Tensor::from_slice(&f64s(&v["flat"])).reshape([n, -1]),
        boxes: Tensor::from_slice(&boxes).reshape([n, m, 4]),
        classes: Tensor::from_slice(&classes).reshape([n, m]),
    }
}

#[test]
#[ignore]
fn parity_loss_paper_and_darknet() {
    let dir = run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/loss_ref.py",
        "numpy",
    );
    let r = read_json(&dir.path().join("loss_ref.json"));
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    let tol = Tol::abs(1e-6);
    for v in cases {
        let k = case(v);
        // Both layouts carry the same numbers.
        let flat = from_cells(&k.cells, Layout::Darknet, k.b, k.c).unwrap();
        assert!(
            flat.allclose(&k.flat, 0.0, 1e-12, false),
            "{}: layout",
            k.name
        );
        for (key, tie) in [
            ("paper_first", TieRule::First),
            ("paper_rmse", TieRule::LowestRmse),
        ] {
            let cfg = LossConfig {
                tie,
                ..LossConfig::paper()
            };
            let t = grid_targets(
                &k.boxes,
                &k.classes,
                k.hw,
                k.s,
                k.c,
                cfg.min_wh,
                Kind::Double,
            )
            .unwrap();
            let l = yolo_loss(&k.cells, &t, k.b, &cfg).unwrap();
            let want = v[key].as_f64().unwrap();
            eprintln!("{} {key}: {} vs {want}", k.name, l.total.double_value(&[]));
            assert_close(l.total.double_value(&[]), want, tol);
        }
        // darknet: the loss from the flat layout, and its gradient = -delta.
        let cfg = LossConfig::darknet();
        let x = k.flat.shallow_clone().set_requires_grad(true);
        let cells = to_cells(&x, Layout::Darknet, k.s, k.b, k.c).unwrap();
        let t = grid_targets(
            &k.boxes,
            &k.classes,
            k.hw,
            k.s,
            k.c,
            cfg.min_wh,
            Kind::Double,
        )
        .unwrap();
        let l = yolo_loss(&cells, &t, k.b, &cfg).unwrap();
        let total = &l.total * k.n as f64;
        let want = v["darknet_loss"].as_f64().unwrap();
        eprintln!("{} darknet: {} vs {want}", k.name, total.double_value(&[]));
        assert_close(total.double_value(&[]), want, tol);
        total.backward();
        let grad: Vec<f64> = Vec::try_from((-x.grad()).reshape([-1])).unwrap();
        assert_all_close(&grad, &f64s(&v["darknet_delta"]), tol);
    }
}
