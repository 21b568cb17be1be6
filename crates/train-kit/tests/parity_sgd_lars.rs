//! Parity of [`Sgd`] with `torch.optim.SGD` (plain, momentum, Nesterov, dampening, with
//! coupled weight decay) and of [`Lars`] with the official MAE `util/lars.py` update, run by
//! the reference python (`tests/parity/sgd_lars_reference.py`) in float64 on the problem of the
//! AdamW parity test: two groups (lr scale 0.5 + weight decay; none), 20 steps; the parameters
//! after every step must agree to 1e-9.

mod common;

use serde_json::Value;
use tch::Tensor;
use train_kit::{GroupSpec, Lars, LarsConfig, Optimizer, ParamGroup, Sgd, SgdConfig};

fn groups(doc: &Value, wd: f64) -> Vec<ParamGroup> {
    let scale = doc["lr_scale"].as_f64().unwrap();
    vec![
        ParamGroup::new(GroupSpec::new(wd, scale), vec!["w1".into(), "w3".into()]),
        ParamGroup::new(GroupSpec::new(0.0, 1.0), vec!["b1".into()]),
    ]
}

/// Max abs diff to the reference over every step.
fn run(steps: &Value, params: &[(String, Tensor)], opt: &mut dyn Optimizer) -> f64 {
    let steps = steps.as_array().unwrap();
    assert_eq!(steps.len(), 20);
    let mut worst = 0.0f64;
    for (t, want) in steps.iter().enumerate() {
        common::formula_loss(params, t as i64 + 1).backward();
        opt.step().unwrap();
        opt.zero_grad();
        for (name, p) in params {
            let want: Vec<f64> = want[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let d = common::max_abs_diff(&p.reshape([-1]), &Tensor::from_slice(&want));
            assert!(
                d <= 1e-9,
                "step {}: {name} max abs diff {d:e} > 1e-9",
                t + 1
            );
            worst = worst.max(d);
        }
    }
    worst
}

#[test]
#[ignore = "needs the reference python (CVLAB_PYTHON); run by cargo xtask test"]
fn sgd_and_lars_parity_with_torch_reference() {
    let dir = test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/sgd_lars_reference.py",
        "nothing else",
    );
    let doc = test_support::read_json(&dir.path().join("sgd_lars.json"));
    let variants = doc["variants"].as_object().unwrap();
    assert_eq!(variants.len(), 5);
    for (name, v) in variants {
        let c = &v["config"];
        let f = |k: &str| c[k].as_f64().unwrap();
        let (vs, params) = common::parity_problem(&doc);
        let mut opt: Box<dyn Optimizer> = if c["kind"] == "sgd" {
            let cfg = SgdConfig {
                lr: f("lr"),
                momentum: f("momentum"),
                dampening: f("dampening"),
                nesterov: c["nesterov"].as_bool().unwrap(),
                weight_decay: 0.0,
            };
            Box::new(Sgd::new(&vs, groups(&doc, f("wd")), cfg).unwrap())
        } else {
            let cfg = LarsConfig {
                lr: f("lr"),
                momentum: f("momentum"),
                trust_coefficient: f("trust"),
                weight_decay: 0.0,
            };
            Box::new(Lars::new(&vs, groups(&doc, f("wd")), cfg).unwrap())
        };
        let worst = run(&v["steps"], &params, opt.as_mut());
        println!("{name} vs the reference (float64, 20 steps): max abs diff {worst:e}");
    }
}
