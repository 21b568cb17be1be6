//! Parity with timm's `VisionTransformer` (`tests/parity/vit_reference.py`, run by
//! `$CVLAB_PYTHON`): the same random weights and input give the same logits to 1e-5 (float32,
//! CPU) for class-token and average pooling, registers, layer scale without qkv bias, a run-time
//! resolution change, a 224 checkpoint loaded into a 288 model, and per-block feature maps.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;
use tch::{nn, Device, Tensor};
use vit_core::{LoadOptions, ViTConfig, VisionTransformer};

const TOL: f64 = 1e-5;

fn reference_dir() -> tempfile::TempDir {
    test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/vit_reference.py",
        "timm",
    )
}

fn config(overrides: &Value) -> ViTConfig {
    let mut v = serde_json::to_value(ViTConfig::tiny(16)).unwrap();
    for (k, x) in overrides.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

/// The largest `|a - b|` (test-support's `max_abs_diff`) of two tensors of the same shape.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let values = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1));
    test_support::max_abs_diff(&values(a).unwrap(), &values(b).unwrap())
}

fn read_tensors(path: &std::path::Path) -> std::collections::HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
#[ignore = "needs CVLAB_PYTHON with timm; run by cargo xtask test"]
fn parity_with_timm_vit_tiny() {
    tch::set_num_threads(2);
    let dir = reference_dir();
    let cases = test_support::read_json(&dir.path().join("cases.json"));
    let mut worst = Vec::new();
    for (case, meta) in cases.as_object().unwrap() {
        let path = dir.path().join(format!("{case}.safetensors"));
        let file = read_tensors(&path);
        let cfg = config(&meta["config"]);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = VisionTransformer::new(&vs.root(), &cfg).unwrap();
        let report = model
            .load_safetensors(&vs, &path, &LoadOptions::default())
            .unwrap();
        assert!(report.missing.is_empty(), "{case}: {report}");
        assert!(
            report.unexpected.iter().all(|k| k.starts_with("__")),
            "{case}: {report}"
        );
        assert_eq!(
            report.resampled.is_some(),
            meta["extra"].get("from").is_some(),
            "{case}: {report}"
        );
        let x = &file["__input__"];
        let logits = tch::no_grad(|| model.forward_t(x, false)).unwrap();
        let d = max_diff(&logits, &file["__logits__"]);
        assert!(d <= TOL, "{case}: logits differ from timm by {d:e}");
        worst.push((case.clone(), d));
        if let Some(r) = meta["extra"].get("tome").and_then(|r| r.as_i64()) {
            let y = tch::no_grad(|| model.forward_tome(x, vit_core::ToMe::new(r))).unwrap();
            let d = max_diff(&y, &file["__tome_logits__"]);
            assert!(
                d <= TOL,
                "{case}: ToMe r={r} logits differ from the twin's by {d:e}"
            );
        }
        if let Some(indices) = meta["extra"].get("indices") {
            let idx: Vec<i64> = indices
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            let maps = tch::no_grad(|| model.forward_intermediates(x, &idx, false)).unwrap();
            for (i, m) in idx.iter().zip(&maps) {
                let d = max_diff(m, &file[&format!("__inter_{i}__")]);
                assert!(d <= TOL, "{case}: block {i} differs from timm by {d:e}");
            }
        }
    }
    eprintln!("max |logits - timm| per case: {worst:?}");
    assert_eq!(worst.len(), 8);
}

/// The checked-in count fixture is what the installed timm gives today.
#[test]
#[ignore = "needs CVLAB_PYTHON with timm; run by cargo xtask test"]
fn parity_counts_fixture_is_current() {
    let python = std::env::var_os("CVLAB_PYTHON").expect("CVLAB_PYTHON");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counts.json");
    let status = std::process::Command::new(&python)
        .arg(root.join("tests/parity/timm_counts.py"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let live: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let fixture: Value = serde_json::from_str(vit_core::TIMM_COUNTS_JSON).unwrap();
    assert_eq!(
        live["models"], fixture["models"],
        "regenerate reference/timm_counts.json with tests/parity/timm_counts.py"
    );
}

/// `tools/convert_timm.py` output (weights + config) loads strictly, and a `.pth` checkpoint
/// dict with DataParallel names converts to the same tensors.
#[test]
#[ignore = "needs CVLAB_PYTHON with timm; run by cargo xtask test"]
fn parity_convert_tool_output_loads_strictly() {
    let python = std::env::var_os("CVLAB_PYTHON").expect("CVLAB_PYTHON");
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/convert_timm.py");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vit_s.safetensors");
    let run = |args: &[&std::ffi::OsStr]| {
        let status = std::process::Command::new(&python)
            .arg(&tool)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "convert_timm.py {args:?}: {status}");
    };
    run(&[
        "--model".as_ref(),
        "vit_small_patch16_224".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let cfg: ViTConfig = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("vit_s.safetensors.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cfg,
        ViTConfig {
            fc_norm: Some(false),
            ..ViTConfig::small(16)
        }
    );
    let vs = nn::VarStore::new(Device::Cpu);
    let model = VisionTransformer::new(&vs.root(), &cfg).unwrap();
    let strict = LoadOptions {
        strict: true,
        ..Default::default()
    };
    let report = model.load_safetensors(&vs, &out, &strict).unwrap();
    assert_eq!(report.loaded.len(), 152);

    // Save a checkpoint dict {"model": {"module.<name>": t}} and convert it back.
    let pth = dir.path().join("ckpt.pth");
    let script = format!(
        "import torch; from safetensors.torch import load_file; \
         sd = load_file({out:?}); \
         torch.save({{'model': {{'module.' + k: v for k, v in sd.items()}}, 'epoch': 1}}, {pth:?})",
        out = out.to_str().unwrap(),
        pth = pth.to_str().unwrap()
    );
    let status = std::process::Command::new(&python)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    let back = dir.path().join("back.safetensors");
    run(&[
        "--pth".as_ref(),
        pth.as_os_str(),
        "--out".as_ref(),
        back.as_os_str(),
    ]);
    let a: HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    let b: HashMap<String, Tensor> = Tensor::read_safetensors(&back)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(a.len(), b.len());
    for (k, t) in &a {
        assert!(t.equal(&b[k]), "{k}");
    }
}
