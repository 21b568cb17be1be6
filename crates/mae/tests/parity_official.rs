//! Parity with the official MAE forward (`tests/parity/mae_reference.py`, a direct port of
//! facebookresearch/mae `models_mae.py` on timm's `Block` / `PatchEmbed`, run by
//! `$CVLAB_PYTHON`): the same weights, images and noise give the same loss, predictions, mask
//! and `ids_restore` to 1e-5 (float32, CPU), with plain and norm-pix targets; the fixed sin-cos
//! embeddings equal `util/pos_embed.py`'s; the layer-decay groups equal `util/lr_decay.py`'s
//! over timm's ViT-B/16 and ViT-L/16 names.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use mae::{lrd_spec, MaeConfig, MaskedAutoencoder};
use serde_json::Value;
use tch::{nn, Device, Tensor};

const TOL: f64 = 1e-5;

fn reference_dir() -> tempfile::TempDir {
    test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/mae_reference.py",
        "timm",
    )
}

fn config(meta: &Value) -> MaeConfig {
    let g = |k: &str| meta[k].as_i64().unwrap();
    let mut c = MaeConfig::mae_vit_mini_patch4_32();
    let img = g("img_size");
    c.encoder.img_size = (img, img);
    c.encoder.patch_size = g("patch_size");
    c.encoder.embed_dim = g("embed_dim");
    c.encoder.depth = g("depth");
    c.encoder.num_heads = g("num_heads");
    c.encoder.mlp_ratio = 4.0;
    c.decoder_embed_dim = g("decoder_embed_dim");
    c.decoder_depth = g("decoder_depth");
    c.decoder_num_heads = g("decoder_num_heads");
    c.mask_ratio = meta["mask_ratio"].as_f64().unwrap();
    c.norm_pix_loss = meta["norm_pix_loss"].as_bool().unwrap();
    c
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
fn parity_with_official_models_mae() {
    tch::set_num_threads(2);
    let dir = reference_dir();
    let cases = test_support::read_json(&dir.path().join("cases.json"));
    let mut worst = Vec::new();
    for (case, meta) in cases.as_object().unwrap() {
        let path = dir.path().join(format!("{case}.safetensors"));
        let file = read_tensors(&path);
        let cfg = config(meta);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = MaskedAutoencoder::new(&vs.root(), &cfg).unwrap();
        // Our fixed embeddings, before loading, are the official ones.
        let d_pos = max_diff(
            &model
                .encoder()
                .pos_embed_for(cfg.encoder.grid_size())
                .unwrap(),
            &file["__init_pos_embed__"],
        );
        let d_dec = max_diff(
            model.decoder_pos_embed(),
            &file["__init_decoder_pos_embed__"],
        );
        assert!(
            d_pos < 1e-6 && d_dec < 1e-6,
            "{case}: sin-cos differs by {d_pos:e} / {d_dec:e}"
        );
        let report = model.load_safetensors(&vs, &path).unwrap();
        assert_eq!(
            report.decoder,
            mae::DecoderStatus::Loaded,
            "{case}: {report}"
        );
        assert!(report.report.missing.is_empty(), "{case}: {report}");
        assert!(
            report.report.unexpected.iter().all(|k| k.starts_with("__")),
            "{case}: {report}"
        );
        let out = tch::no_grad(|| {
            model.forward_masked(
                &file["__imgs__"],
                cfg.mask_ratio,
                Some(&file["__noise__"]),
                false,
            )
        })
        .unwrap();
        assert!(
            out.ids_restore.equal(&file["__ids_restore__"]),
            "{case}: ids_restore"
        );
        assert!(out.mask.equal(&file["__mask__"]), "{case}: mask");
        let d_pred = max_diff(&out.pred, &file["__pred__"]);
        let d_loss = (out.loss.double_value(&[]) - file["__loss__"].double_value(&[0])).abs();
        assert!(d_pred <= TOL, "{case}: predictions differ by {d_pred:e}");
        assert!(d_loss <= TOL, "{case}: loss differs by {d_loss:e}");
        worst.push((case.clone(), d_pred, d_loss));
    }
    eprintln!("max |pred - official|, |loss - official| per case: {worst:?}");
    official_checkpoints_convert_and_load(dir.path(), &cases["norm_pix"]);
    assert_eq!(worst.len(), 3);

    for (size, depth) in [("base", 12), ("large", 24)] {
        let path = dir.path().join(format!("lrd_{size}.json"));
        let groups = test_support::read_json(&path);
        let groups = groups.as_object().unwrap();
        assert!(groups.len() > 100);
        for (name, v) in groups {
            let ndim = v[0].as_u64().unwrap() as usize;
            let spec = lrd_spec(name, ndim, 0.05, 0.75, depth);
            let (scale, wd) = (v[1].as_f64().unwrap(), v[2].as_f64().unwrap());
            assert!(
                (spec.lr_scale - scale).abs() < 1e-12 * scale.max(1.0),
                "{size} {name}: lr scale {} vs {scale}",
                spec.lr_scale
            );
            assert_eq!(spec.weight_decay, wd, "{size} {name}: weight decay");
        }
    }
}

/// The released checkpoints' path: a `{'model': state_dict}` pickle through
/// `tools/convert_timm.py --pth`, then `load_safetensors`. The full one gives the reference
/// outputs; the encoder-only one reports the decoder missing and gives the same latent.
fn official_checkpoints_convert_and_load(dir: &std::path::Path, meta: &Value) {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/convert_timm.py");
    let convert = |name: &str| {
        let out = dir.join(format!("{name}.converted.safetensors"));
        let status = std::process::Command::new(test_support::python("timm"))
            .arg(&tool)
            .arg("--pth")
            .arg(dir.join(format!("{name}.pth")))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "convert_timm.py --pth {name}.pth: {status}"
        );
        out
    };
    let file = read_tensors(&dir.join("norm_pix.safetensors"));
    let cfg = config(meta);
    let (imgs, noise) = (&file["__imgs__"], &file["__noise__"]);

    let vs = nn::VarStore::new(Device::Cpu);
    let model = MaskedAutoencoder::new(&vs.root(), &cfg).unwrap();
    let report = model
        .load_safetensors(&vs, convert("official_full"))
        .unwrap();
    assert_eq!(report.decoder, mae::DecoderStatus::Loaded, "{report}");
    assert!(
        report.report.missing.is_empty() && report.report.unexpected.is_empty(),
        "{report}"
    );
    let out =
        tch::no_grad(|| model.forward_masked(imgs, cfg.mask_ratio, Some(noise), false)).unwrap();
    let d_pred = max_diff(&out.pred, &file["__pred__"]);
    assert!(
        d_pred <= TOL,
        "converted full checkpoint: predictions differ by {d_pred:e}"
    );

    let vs2 = nn::VarStore::new(Device::Cpu);
    let model2 = MaskedAutoencoder::new(&vs2.root(), &cfg).unwrap();
    let report = model2
        .load_safetensors(&vs2, convert("official_encoder"))
        .unwrap();
    match &report.decoder {
        mae::DecoderStatus::Missing(names) => {
            assert!(names.iter().any(|n| n == "mask_token"), "{names:?}");
            assert!(
                names.iter().any(|n| n.starts_with("decoder_blocks.")),
                "{names:?}"
            );
        }
        other => panic!("encoder-only checkpoint reported {other:?}"),
    }
    let latent = |m: &MaskedAutoencoder| {
        tch::no_grad(|| m.forward_encoder(imgs, cfg.mask_ratio, Some(noise), false))
            .unwrap()
            .latent
    };
    let d_latent = max_diff(&latent(&model2), &latent(&model));
    assert!(
        d_latent == 0.0,
        "encoder-only checkpoint: latent differs by {d_latent:e}"
    );
}
