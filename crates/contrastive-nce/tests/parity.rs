//! Parity with the reference formulas and packages, run by `$CVLAB_PYTHON`:
//! - every MI estimator against a direct PyTorch transcription of the vbmi notebook and of
//!   SMILE's `estimators.py` (`tests/parity/mi_reference.py`): values and gradients (with
//!   respect to the scores and the baseline) to 1e-6 in float64, on batches of 7 and 64;
//! - InfoNCE against `info-nce-pytorch` and NT-Xent against `pytorch-metric-learning`
//!   (`tests/parity/losses_reference.py`), values and gradients to 1e-6.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use contrastive_nce::mi::{self, MovingAverage};
use tch::Tensor;

const TOL: f64 = 1e-6;

fn read(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn grads(value: &Tensor, inputs: &[&Tensor]) -> Vec<Tensor> {
    Tensor::run_backward(&[value], inputs, false, false)
}

#[test]
#[ignore = "needs CVLAB_PYTHON with torch; run by cargo xtask test"]
fn parity_mi_estimators_values_and_gradients() {
    let dir = test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/mi_reference.py",
        "torch",
    );
    let t = read(&dir.path().join("mi.safetensors"));
    let cases = test_support::read_json(&dir.path().join("mi_cases.json"));
    let mut checked = 0;
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let n = case["n"].as_i64().unwrap();
        let scores = t[&format!("scores_{n}")].set_requires_grad(true);
        let baseline = t[&format!("baseline_{n}")].set_requires_grad(true);
        let mut avg = MovingAverage::default();
        let value = match name {
            "infonce" => mi::infonce(&scores),
            "nwj" => mi::nwj(&scores),
            "tuba" => mi::tuba(&scores, Some(&baseline)),
            "js_fgan" => mi::js_fgan(&scores),
            "js" => mi::js(&scores),
            "dv" => mi::dv(&scores),
            "interpolated_m5" => mi::interpolated(&scores, &baseline, -5.0),
            "interpolated_0" => mi::interpolated(&scores, &baseline, 0.0),
            "interpolated_5" => mi::interpolated(&scores, &baseline, 5.0),
            "smile_1" => mi::smile(&scores, Some(1.0)),
            "smile_5" => mi::smile(&scores, Some(5.0)),
            "smile_inf" => mi::smile(&scores, None),
            "mine" => mi::mine(&scores, &mut avg, 0.9),
            other => panic!("unknown case {other}"),
        }
        .unwrap();
        let key = |what: &str| format!("{name}_{n}_{what}");
        let want = t[&key("value")].double_value(&[0]);
        let got = value.double_value(&[]);
        assert!(
            (got - want).abs() <= TOL,
            "{name} n={n}: value {got} vs {want}"
        );
        if case["baseline"].as_bool().unwrap() {
            let g = grads(&value, &[&scores, &baseline]);
            let ds = max_diff(&g[0], &t[&key("grad_scores")]);
            let db = max_diff(&g[1], &t[&key("grad_baseline")]);
            assert!(
                ds <= TOL && db <= TOL,
                "{name} n={n}: grads differ by {ds:e} / {db:e}"
            );
        } else {
            let g = grads(&value, &[&scores]);
            let ds = max_diff(&g[0], &t[&key("grad_scores")]);
            assert!(ds <= TOL, "{name} n={n}: grad differs by {ds:e}");
        }
        if name == "mine" {
            let want = t[&key("buffer")].double_value(&[0]);
            assert!(
                (avg.value - want).abs() <= TOL,
                "mine buffer {} vs {want}",
                avg.value
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 26, "13 estimators x 2 batch sizes");
}

/// InfoNCE against `info-nce-pytorch` and NT-Xent against `pytorch-metric-learning`'s
/// `NTXentLoss` (`tests/parity/losses_reference.py`): values and gradients to 1e-6, float64.
#[test]
#[ignore = "needs CVLAB_PYTHON with info-nce-pytorch and pytorch-metric-learning; run by cargo xtask test"]
fn parity_infonce_and_ntxent_with_the_reference_packages() {
    use contrastive_nce::losses::{info_nce_loss, nt_xent, simclr_loss, MultiPositive, Negatives};
    let dir = test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/losses_reference.py",
        "info-nce-pytorch, pytorch-metric-learning",
    );
    let t = read(&dir.path().join("losses.safetensors"));
    let input = |k: &str| t[k].set_requires_grad(true);
    let check = |case: &str, value: Tensor, inputs: &[(&str, &Tensor)]| {
        let want = t[&format!("{case}_value")].double_value(&[0]);
        let got = value.double_value(&[]);
        assert!((got - want).abs() <= TOL, "{case}: {got} vs {want}");
        let xs: Vec<&Tensor> = inputs.iter().map(|(_, x)| *x).collect();
        for ((name, _), g) in inputs.iter().zip(grads(&value, &xs)) {
            let d = max_diff(&g, &t[&format!("{case}_grad_{name}")]);
            assert!(d <= TOL, "{case}: gradient of {name} differs by {d:e}");
        }
    };
    for (tau, tag) in [(0.1, "0p1"), (0.5, "0p5")] {
        let (q, p) = (input("query"), input("positive"));
        let v = info_nce_loss(&q, &p, Negatives::InBatch, tau).unwrap();
        check(
            &format!("infonce_inbatch_{tag}"),
            v,
            &[("query", &q), ("positive", &p)],
        );
        let (q, p, u) = (input("query"), input("positive"), input("unpaired"));
        let v = info_nce_loss(&q, &p, Negatives::Unpaired(&u), tau).unwrap();
        check(
            &format!("infonce_unpaired_{tag}"),
            v,
            &[("query", &q), ("positive", &p), ("unpaired", &u)],
        );
        let (q, p, pn) = (input("query"), input("positive"), input("paired"));
        let v = info_nce_loss(&q, &p, Negatives::Paired(&pn), tau).unwrap();
        check(
            &format!("infonce_paired_{tag}"),
            v,
            &[("query", &q), ("positive", &p), ("paired", &pn)],
        );
        let (z1, z2) = (input("z1"), input("z2"));
        let v = simclr_loss(&z1, &z2, tau).unwrap();
        check(
            &format!("ntxent_simclr_{tag}"),
            v,
            &[("z1", &z1), ("z2", &z2)],
        );
        let e = input("emb");
        let v = nt_xent(&e, &t["labels"], tau, MultiPositive::PerPair).unwrap();
        check(&format!("ntxent_multi_{tag}"), v, &[("emb", &e)]);
    }
}
