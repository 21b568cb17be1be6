//! Parity with a transcription of the official OadTR (`tests/parity/oad_reference.py`, run by
//! `$CVLAB_PYTHON`): the forward on the same weights (1e-5), the loss, the official
//! `frame_level_map_n_cap` with and without ties and scikit-learn's `average_precision_score`,
//! and the parameter count `main.py` logs for the THUMOS'14 settings.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use oad_transformer::{
    frame_map, oad_loss, official_param_count, param_count, soft_target_ce, DecoderConfig,
    OadConfig, OadOutput, OadTR,
};
use serde_json::Value;
use tch::{nn, Device, Kind, Tensor};
use test_support::{assert_all_close, assert_close, Tol};

fn reference() -> tempfile::TempDir {
    test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/oad_reference.py",
        "scikit-learn, safetensors",
    )
}

fn read(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn small() -> OadConfig {
    OadConfig {
        feature_dim: 12,
        enc_steps: 16,
        num_classes: 6,
        embed_dim: 32,
        num_heads: 4,
        num_layers: 2,
        hidden_dim: 48,
        decoder: Some(DecoderConfig {
            num_queries: 4,
            num_layers: 2,
            num_heads: 2,
            ff_dim: 40,
            dropout: 0.1,
        }),
        ambiguous_class: Some(5),
        ..OadConfig::thumos_tsn()
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
#[ignore = "needs CVLAB_PYTHON with torch, safetensors and scikit-learn; run by cargo xtask test"]
fn parity_with_the_official_oadtr() {
    tch::set_num_threads(2);
    let dir = reference();

    // The forward on the official model's weights.
    let file = read(&dir.path().join("model.safetensors"));
    let vs = nn::VarStore::new(Device::Cpu);
    let model = OadTR::new(&vs.root(), &small()).unwrap();
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, var) in &vars {
            let src = file
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing from the reference"));
            assert_eq!(var.size(), src.size(), "{name}");
            var.shallow_clone().copy_(src);
        }
    });
    let extra: Vec<&String> = file
        .keys()
        .filter(|k| !vars.contains_key(*k) && !["x", "current", "future"].contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "reference tensors the model lacks: {extra:?}"
    );
    let out = tch::no_grad(|| model.forward_t(&file["x"], false)).unwrap();
    eprintln!(
        "forward max |diff|: current {:.2e}, future {:.2e}",
        test_support::max_abs_diff(&values(&out.current), &values(&file["current"])),
        test_support::max_abs_diff(
            &values(out.future.as_ref().unwrap()),
            &values(&file["future"])
        )
    );
    assert_all_close(
        &values(&out.current),
        &values(&file["current"]),
        Tol::abs(1e-5),
    );
    assert_all_close(
        &values(&out.future.unwrap()),
        &values(&file["future"]),
        Tol::abs(1e-5),
    );

    // The loss (util/loss.py), encoder 1.0 + decoder 0.5, ambiguous class 21 ignored.
    let l = read(&dir.path().join("loss.safetensors"));
    let cfg = OadConfig::thumos_tsn();
    let enc = soft_target_ce(&l["logits"], &l["targets"], cfg.ambiguous_class).unwrap();
    assert_close(
        enc.double_value(&[]),
        l["enc_loss"].double_value(&[0]),
        Tol::abs(1e-6),
    );
    let out = OadOutput {
        current: l["logits"].shallow_clone(),
        future: Some(l["dec_logits"].shallow_clone()),
    };
    let total = oad_loss(&cfg, &out, &l["targets"], &l["dec_targets"]).unwrap();
    assert_close(
        total.decoder.unwrap().double_value(&[]),
        l["dec_loss"].double_value(&[0]),
        Tol::abs(1e-6),
    );
    assert_close(
        total.total.double_value(&[]),
        l["total"].double_value(&[0]),
        Tol::abs(1e-6),
    );

    // frame_level_map_n_cap and sklearn.
    let e = read(&dir.path().join("eval.safetensors"));
    let want = test_support::read_json(&dir.path().join("eval.json"));
    let labels = Vec::<i64>::try_from(&e["labels"]).unwrap();
    let k = 21usize;
    let onehot: Vec<bool> = labels
        .iter()
        .flat_map(|&l| (0..k as i64).map(move |c| c == l))
        .collect();
    for case in ["tie_free", "ties", "pure_ties"] {
        let probs = Vec::<f32>::try_from(e[case].flatten(0, -1)).unwrap();
        let m = frame_map(&probs, &onehot, k, 0).unwrap();
        let ap: Vec<f64> = m.ap[1..].iter().map(|a| a.unwrap()).collect();
        let cal: Vec<f64> = m.cal_ap[1..].iter().map(|a| a.unwrap()).collect();
        let w = &want[case];
        // The official code divides in float32 at the end: 1e-6.
        assert_all_close(&ap, &floats(&w["ap_stable"]), Tol::abs(1e-6));
        assert_all_close(&cal, &floats(&w["cal_ap_stable"]), Tol::abs(1e-6));
        assert_close(m.map, w["map_stable"].as_f64().unwrap(), Tol::abs(1e-6));
        assert_close(m.cap, w["cap_stable"].as_f64().unwrap(), Tol::abs(1e-6));
        if let Some(official) = w.get("ap") {
            // The unmodified official code (np.argsort's default order) where ties cannot matter.
            assert_all_close(&ap, &floats(official), Tol::abs(1e-6));
            assert_all_close(&cal, &floats(&w["cal_ap"]), Tol::abs(1e-6));
        }
        if let Some(sk) = w.get("sklearn_ap") {
            assert_all_close(&ap, &floats(sk), Tol::abs(1e-6));
        }
    }
    // The ties case really has ties that change the AP against the tie-free one.
    assert!(
        (want["ties"]["map_stable"].as_f64().unwrap()
            - want["tie_free"]["map_stable"].as_f64().unwrap())
        .abs()
            > 1e-3
    );

    // Parameter counts: the official model's, ours (without its unused decoder position
    // encoding), and the model actually built.
    let counts = test_support::read_json(&dir.path().join("counts.json"));
    for (name, cfg) in [
        ("thumos_tsn", OadConfig::thumos_tsn()),
        ("thumos_kinetics", OadConfig::thumos_kinetics()),
    ] {
        assert_eq!(
            official_param_count(&cfg),
            counts[name].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(official_param_count(&cfg) - param_count(&cfg), 8 * 1024);
    }
    let vs = nn::VarStore::new(Device::Cpu);
    tch::no_grad(|| OadTR::new(&vs.root(), &OadConfig::thumos_tsn())).unwrap();
    assert_eq!(
        OadTR::num_params(&vs),
        param_count(&OadConfig::thumos_tsn())
    );
}
