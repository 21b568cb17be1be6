//! Parity of [`AdamW`] (and [`PerParamAdamW`]) with `torch.optim.AdamW` run by the reference
//! python (`tests/parity/adamw_reference.py`, given as `$CVLAB_PYTHON`), in float64: the
//! same 3-tensor problem, two groups (wd 0.05 with lr scale 0.5; wd 0), 20 steps; the
//! parameters after every step must agree to 1e-6 (observed: ~1e-16).

mod common;

use serde_json::Value;
use tch::Tensor;
use train_kit::{AdamW, AdamWConfig, GroupSpec, ParamGroup, PerParamAdamW};

fn reference() -> Value {
    let dir = test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/adamw_reference.py",
        "nothing else",
    );
    test_support::read_json(&dir.path().join("adamw_reference.json"))
}

fn groups_and_config(doc: &Value) -> (Vec<ParamGroup>, AdamWConfig) {
    let c = &doc["config"];
    let f = |k: &str| c[k].as_f64().unwrap();
    let groups = vec![
        ParamGroup::new(
            GroupSpec::new(f("weight_decay"), f("lr_scale")),
            vec!["w1".into(), "w3".into()],
        ),
        ParamGroup::new(GroupSpec::new(0.0, 1.0), vec!["b1".into()]),
    ];
    let cfg = AdamWConfig {
        lr: f("base_lr"),
        beta1: f("beta1"),
        beta2: f("beta2"),
        eps: f("eps"),
        weight_decay: 0.0,
    };
    (groups, cfg)
}

fn diff_to(doc_params: &Value, params: &[(String, Tensor)]) -> f64 {
    params
        .iter()
        .map(|(name, t)| {
            let want: Vec<f64> = doc_params[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            common::max_abs_diff(&t.reshape([-1]), &Tensor::from_slice(&want))
        })
        .fold(0.0, f64::max)
}

/// Runs `step` for every reference step; returns the max abs diff over all steps.
fn run(doc: &Value, params: &[(String, Tensor)], mut step: impl FnMut()) -> f64 {
    assert!(
        diff_to(&doc["initial"], params) <= 1e-15,
        "initial values differ from the script's"
    );
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 20);
    let mut worst = 0.0f64;
    for (t, want) in steps.iter().enumerate() {
        common::formula_loss(params, t as i64 + 1).backward();
        step();
        let d = diff_to(want, params);
        assert!(d <= 1e-6, "step {}: max abs diff {d:e} > 1e-6", t + 1);
        worst = worst.max(d);
    }
    worst
}

#[test]
#[ignore = "needs the reference python (CVLAB_PYTHON); run by cargo xtask test"]
fn adamw_parity_with_torch_reference() {
    let doc = reference();
    let (vs, params) = common::parity_problem(&doc);
    let (groups, cfg) = groups_and_config(&doc);
    let mut opt = AdamW::new(&vs, groups, cfg).unwrap();
    assert_eq!(opt.num_buckets(), 2);
    let worst = run(&doc, &params, || {
        opt.step().unwrap();
        opt.zero_grad();
    });
    println!(
        "flat AdamW vs torch {} (float64): max abs diff {worst:e}",
        doc["torch_version"]
    );
}

#[test]
#[ignore = "needs the reference python (CVLAB_PYTHON); run by cargo xtask test"]
fn per_param_adamw_parity_with_torch_reference() {
    let doc = reference();
    let (vs, params) = common::parity_problem(&doc);
    let (groups, cfg) = groups_and_config(&doc);
    let mut opt = PerParamAdamW::new(&vs, groups, cfg).unwrap();
    let worst = run(&doc, &params, || {
        opt.step().unwrap();
        opt.zero_grad();
    });
    println!(
        "PerParamAdamW vs torch {} (float64): max abs diff {worst:e}",
        doc["torch_version"]
    );
}
