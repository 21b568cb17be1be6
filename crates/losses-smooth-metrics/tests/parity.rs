//! Parity with the reference implementations on fixed inputs (values and gradients): Smooth-AP
//! against pytorch-metric-learning's `SmoothAPLoss` and a transcription of the official
//! `Smooth_AP_loss.py`; Lovasz hinge / softmax against a transcription of Berman's
//! `lovasz_losses.py` (checked against segmentation-models-pytorch's copy in the script);
//! sigmoidF1 against a transcription of its reference; the hard counts against scikit-learn.
//! Scripts: `tests/parity/*.py`, run under `$CVLAB_PYTHON`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use losses_smooth_metrics as lsm;
use serde_json::Value;
use tch::{Kind, Tensor};
use test_support::{assert_all_close, assert_close, read_json, run_reference, Tol};

fn cases(script: &str, needs: &str) -> Vec<Value> {
    let dir = run_reference(env!("CARGO_MANIFEST_DIR"), script, needs);
    read_json(&dir.path().join("cases.json"))
        .as_array()
        .unwrap()
        .clone()
}

fn tensor(v: &Value, kind: Kind) -> Tensor {
    let shape: Vec<i64> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_i64().unwrap())
        .collect();
    let data: Vec<f64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    Tensor::from_slice(&data)
        .view(shape.as_slice())
        .to_kind(kind)
}

fn floats(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

fn loss_and_grad(x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> (f64, Vec<f64>) {
    let x = x.detach().copy().set_requires_grad(true);
    let y = f(&x);
    y.backward();
    (y.double_value(&[]), floats(&x.grad()))
}

fn labels_of(v: &Value) -> Tensor {
    let l: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    Tensor::from_slice(&l)
}

#[test]
#[ignore = "parity: needs $CVLAB_PYTHON with torch and pytorch-metric-learning"]
fn smooth_ap_parity_official_and_pml() {
    let cases = cases("tests/parity/smooth_ap.py", "pytorch-metric-learning");
    assert!(cases.len() >= 5);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let tol = c["tol"].as_f64().unwrap();
        let kind = if tol < 1e-8 {
            Kind::Double
        } else {
            Kind::Float
        };
        let x = tensor(&c["x"], kind);
        let y = labels_of(&c["labels"]);
        let tau = c["tau"].as_f64().unwrap();
        let (v, g) = loss_and_grad(&x, |x| lsm::smooth_ap_loss(x, &y, tau).unwrap());
        assert_close(v, c["loss"].as_f64().unwrap(), Tol::abs(tol));
        let want = floats(&tensor(&c["grad"], Kind::Double));
        assert_all_close(&g, &want, Tol::abs(tol * 10.0));
        eprintln!("{name}: loss {v:.8} ok");
    }
}

#[test]
#[ignore = "parity: needs $CVLAB_PYTHON with torch and segmentation-models-pytorch"]
fn lovasz_parity_with_the_reference_transcription() {
    let cases = cases("tests/parity/lovasz.py", "segmentation-models-pytorch");
    assert!(cases.len() >= 20);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let z = tensor(&c["z"], Kind::Double);
        let y = tensor(&c["labels"], Kind::Int64);
        let per_image = c["per_image"].as_bool().unwrap();
        let ignore = c["ignore"].as_i64();
        let (v, g) = if c["kind"] == "hinge" {
            let yf = y.to_kind(Kind::Double);
            loss_and_grad(&z, |z| {
                lsm::lovasz_hinge(z, &yf, per_image, ignore).unwrap()
            })
        } else {
            let classes = match &c["classes"] {
                Value::String(s) if s == "present" => lsm::Classes::Present,
                Value::String(s) if s == "all" => lsm::Classes::All,
                Value::Array(l) => {
                    lsm::Classes::List(l.iter().map(|x| x.as_i64().unwrap()).collect())
                }
                other => panic!("{name}: classes {other}"),
            };
            let opts = lsm::LovaszSoftmax {
                classes,
                per_image,
                ignore,
            };
            loss_and_grad(&z, |z| {
                lsm::lovasz_softmax(&z.softmax(1, Kind::Double), &y, &opts).unwrap()
            })
        };
        assert_close(v, c["loss"].as_f64().unwrap(), Tol::abs(1e-10));
        assert_all_close(
            &g,
            &floats(&tensor(&c["grad"], Kind::Double)),
            Tol::abs(1e-10),
        );
        eprintln!("{name}: loss {v:.8} ok");
    }
}

#[test]
#[ignore = "parity: needs $CVLAB_PYTHON with torch and scikit-learn"]
fn sigmoid_f1_and_hard_metrics_parity() {
    let cases = cases("tests/parity/sigmoid_f1.py", "scikit-learn");
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let z = tensor(&c["z"], Kind::Double);
        let t = tensor(&c["t"], Kind::Double);
        if name == "sklearn" {
            let sk = &c["values"];
            let want = |k: &str| sk[k].as_f64().unwrap();
            let counts = lsm::counts_binary(&z, &t).unwrap();
            let tol = Tol::abs(1e-12);
            for (avg, a) in [
                ("macro", lsm::Average::Macro),
                ("micro", lsm::Average::Micro),
            ] {
                assert_close(counts.f1(a), want(&format!("multilabel f1 {avg}")), tol);
                assert_close(
                    counts.precision(a),
                    want(&format!("multilabel precision {avg}")),
                    tol,
                );
                assert_close(
                    counts.recall(a),
                    want(&format!("multilabel recall {avg}")),
                    tol,
                );
                let zm = tensor(&c["zm"], Kind::Double);
                let ym = labels_of(&c["ym"]);
                let mc = lsm::counts_multiclass(&zm, &ym).unwrap();
                assert_close(mc.f1(a), want(&format!("multiclass f1 {avg}")), tol);
            }
            let binary = lsm::counts_binary(&z.select(1, 0), &t.select(1, 0)).unwrap();
            assert_close(binary.f1(lsm::Average::Macro), want("binary f1"), tol);
            let emb = tensor(&c["emb"], Kind::Double);
            let lab = labels_of(&c["lab"]);
            let ap = lsm::average_precision(&emb, &lab, false).unwrap();
            assert_close(ap[0], want("retrieval ap query 0"), tol);
            eprintln!("hard counts and AP equal scikit-learn's");
            continue;
        }
        let cfg = lsm::SigmoidF1 {
            s: c["s"].as_f64().unwrap(),
            e: c["e"].as_f64().unwrap(),
        };
        let (v, g) = loss_and_grad(&z, |z| cfg.loss(z, &t).unwrap());
        assert_close(v, c["loss"].as_f64().unwrap(), Tol::abs(1e-12));
        assert_all_close(
            &g,
            &floats(&tensor(&c["grad"], Kind::Double)),
            Tol::abs(1e-12),
        );
        eprintln!("{name}: loss {v:.8} ok");
    }
}
