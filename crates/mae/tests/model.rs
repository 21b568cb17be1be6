//! Invariants of the model: masking bookkeeping, the loss on removed patches only, the
//! official names and initialisation, the Table 1c variant, checkpoint loading, errors.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use mae::{DecoderStatus, MaeConfig, MaeError, MaskKind, MaskedAutoencoder};
use tch::{nn, Device, Kind, Tensor};
use test_support::{assert_close, Tol};

mod common;

fn tiny() -> MaeConfig {
    common::tiny(16, 3)
}

fn build(cfg: &MaeConfig) -> (nn::VarStore, MaskedAutoencoder) {
    let vs = nn::VarStore::new(Device::Cpu);
    let m = MaskedAutoencoder::new(&vs.root(), cfg).unwrap();
    (vs, m)
}

fn images(n: i64) -> Tensor {
    Tensor::randn([n, 3, 16, 16], (Kind::Float, Device::Cpu))
}

#[test]
fn ids_restore_inverts_ids_shuffle_and_keep_is_exact() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(0);
    let x = Tensor::randn([5, 49, 8], (Kind::Float, Device::Cpu));
    for (ratio, keep) in [(0.75, 12), (0.5, 24), (0.9, 4), (0.25, 36)] {
        let noise = Tensor::rand([5, 49], (Kind::Float, Device::Cpu));
        let m = mae::masking::mask_by_noise(&x, &noise, keep).unwrap();
        let back = m.ids_shuffle.gather(1, &m.ids_restore, false);
        let iota = Tensor::arange(49, (Kind::Int64, Device::Cpu)).expand([5, 49], false);
        assert!(back.equal(&iota), "ratio {ratio}");
        assert_eq!(m.visible.size(), [5, keep, 8]);
        let visible = m.mask.eq(0.0).sum_dim_intlist(1, false, Kind::Int64);
        assert!(
            visible.eq(keep).all().int64_value(&[]) == 1,
            "ratio {ratio}"
        );
        // The visible tokens are the ones at the kept positions, lowest noise first.
        let first = m.ids_keep.int64_value(&[0, 0]);
        assert_eq!(first, noise.get(0).argmin(0, false).int64_value(&[]));
        assert!(m.visible.get(0).get(0).equal(&x.get(0).get(first)));
    }
    // Through the model: keep = int(L * (1 - r)) for each strategy.
    let mut cfg = tiny();
    for kind in [MaskKind::Random, MaskKind::Block, MaskKind::Grid] {
        cfg.masking = kind;
        let (_vs, model) = build(&cfg);
        for ratio in [0.75, 0.6, 0.3] {
            let keep = cfg.len_keep(ratio);
            let enc = model
                .forward_encoder(&images(3), ratio, None, false)
                .unwrap();
            assert_eq!(enc.latent.size(), [3, 1 + keep, 32], "{kind:?} {ratio}");
            let removed = enc.mask.sum(Kind::Float).double_value(&[]);
            assert_eq!(removed as i64, 3 * (16 - keep), "{kind:?} {ratio}");
        }
    }
}

#[test]
fn loss_ignores_visible_patches_and_sees_removed_ones() {
    let _rng = test_support::rng_lock();
    for norm_pix in [false, true] {
        tch::manual_seed(1);
        let mut cfg = tiny();
        cfg.norm_pix_loss = norm_pix;
        let (_vs, model) = build(&cfg);
        let x = images(2);
        let noise = Tensor::rand([2, 16], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| model.forward_masked(&x, 0.75, Some(&noise), false)).unwrap();
        let loss_with = |imgs: &Tensor, pred: &Tensor| {
            tch::no_grad(|| model.forward_loss(imgs, pred, &out.mask))
                .unwrap()
                .double_value(&[])
        };
        assert_close(
            loss_with(&x, &out.pred),
            out.loss.double_value(&[]),
            Tol::abs(1e-6),
        );
        // A fixed prediction far from zero: every norm-pix target has mean 0 and variance 1, so
        // against a near-zero prediction (a fresh model's) any target would cost about the same.
        let n = out.pred.numel() as i64;
        let pred = (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.37)
            .cos()
            .view(out.pred.size().as_slice())
            * 1.5;
        let loss = |imgs: &Tensor| loss_with(imgs, &pred);
        let base = loss(&x);
        // Patch index of grid cell (r, c) is r * 4 + c; perturb the target of one visible and
        // of one removed patch of image 0.
        let find = |value: f64| {
            (0..16)
                .find(|&j| out.mask.double_value(&[0, j]) == value)
                .unwrap()
        };
        let perturb = |j: i64| {
            let y = x.copy();
            let (r, c) = (j / 4, j % 4);
            // Not affine (norm-pix targets are invariant to a shift and scale of the patch), and
            // fixed: other tests in this binary reseed torch's generator concurrently.
            let bump = (Tensor::arange(48, (Kind::Float, Device::Cpu)) * 1.7)
                .sin()
                .view([3, 4, 4])
                * 2.0;
            let _ = y
                .get(0)
                .narrow(1, r * 4, 4)
                .narrow(2, c * 4, 4)
                .g_add_(&bump);
            y
        };
        let visible = loss(&perturb(find(0.0)));
        let removed = loss(&perturb(find(1.0)));
        assert_eq!(
            visible, base,
            "norm_pix {norm_pix}: a visible patch changed the loss"
        );
        assert!(
            (removed - base).abs() > 1e-4, // float noise here is ~1e-7; the change ~1e-2
            "norm_pix {norm_pix}: a removed patch did not ({base} -> {removed})"
        );
    }
}

#[test]
fn official_names_fixed_embeddings_and_init() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(2);
    let cfg = tiny();
    let (vs, _model) = build(&cfg);
    let vars = vs.variables();
    for name in [
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "blocks.1.attn.qkv.weight",
        "norm.weight",
        "decoder_embed.weight",
        "mask_token",
        "decoder_pos_embed",
        "decoder_blocks.0.mlp.fc2.bias",
        "decoder_norm.bias",
        "decoder_pred.weight",
    ] {
        assert!(vars.contains_key(name), "{name} missing");
    }
    assert!(!vars
        .keys()
        .any(|k| k.starts_with("head") || k.starts_with("fc_norm") || k == "encoder_mask_token"));
    assert!(!vars["pos_embed"].requires_grad() && !vars["decoder_pos_embed"].requires_grad());
    assert_eq!(vars["decoder_pred.weight"].size(), [48, 16]);
    // xavier_uniform: |w| <= sqrt(6 / (fan_in + fan_out)), and the spread fills the range.
    let qkv = &vars["blocks.0.attn.qkv.weight"];
    let bound = (6.0f64 / (32.0 + 96.0)).sqrt();
    let max = qkv.abs().max().double_value(&[]);
    assert!(max <= bound && max > 0.9 * bound, "{max} vs {bound}");
    let pe = &vars["patch_embed.proj.weight"];
    let bound = (6.0f64 / (48.0 + 32.0)).sqrt();
    assert!(pe.abs().max().double_value(&[]) <= bound);
    assert_eq!(
        vars["blocks.0.attn.qkv.bias"]
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
    // Tokens N(0, 0.02) (the vit-core default would be 1e-6).
    let std = vars["cls_token"].std(true).double_value(&[]);
    assert!(std > 0.005 && std < 0.05, "{std}");
}

#[test]
fn encoder_with_mask_tokens_sees_every_patch() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(3);
    let mut cfg = tiny();
    cfg.encoder_mask_tokens = true;
    let (vs, model) = build(&cfg);
    assert!(vs.variables()["encoder_mask_token"].requires_grad());
    let x = images(2);
    let enc = model.forward_encoder(&x, 0.75, None, true).unwrap();
    assert_eq!(enc.latent.size(), [2, 17, 32]);
    let out = model.forward_t(&x, true).unwrap();
    assert_eq!(out.pred.size(), [2, 16, 48]);
    out.loss.backward();
    let g = vs.variables()["encoder_mask_token"].grad();
    assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    // The decoder's mask token is unused in this design.
    assert!(!vs.variables()["mask_token"].grad().defined());
}

#[test]
fn bad_inputs_are_errors_naming_the_problem() {
    let _rng = test_support::rng_lock();
    let cfg = tiny();
    let (_vs, model) = build(&cfg);
    let err = |e: MaeError| e.to_string();
    let e = err(model
        .forward_t(
            &Tensor::zeros([2, 3, 20, 16], (Kind::Float, Device::Cpu)),
            false,
        )
        .unwrap_err());
    assert!(e.contains("[N, 3, 16, 16]") && e.contains("20"), "{e}");
    let e = err(model
        .forward_t(
            &Tensor::zeros([2, 1, 16, 16], (Kind::Float, Device::Cpu)),
            false,
        )
        .unwrap_err());
    assert!(e.contains("[2, 1, 16, 16]"), "{e}");
    let e = err(model
        .forward_t(
            &Tensor::zeros([2, 3, 16, 16], (Kind::Int64, Device::Cpu)),
            false,
        )
        .unwrap_err());
    assert!(e.contains("floating"), "{e}");
    let x = images(2);
    let e = err(model.forward_masked(&x, 1.0, None, false).unwrap_err());
    assert!(e.contains("mask_ratio"), "{e}");
    let e = err(model.forward_masked(&x, 0.99, None, false).unwrap_err());
    assert!(e.contains("keeps 0 of 16"), "{e}");
    let noise = Tensor::rand([2, 15], (Kind::Float, Device::Cpu));
    let e = err(model
        .forward_masked(&x, 0.75, Some(&noise), false)
        .unwrap_err());
    assert!(e.contains("[2, 16]") && e.contains("[2, 15]"), "{e}");
    let mut bad = cfg.clone();
    bad.encoder.class_token = false;
    bad.encoder.global_pool = vit_core::GlobalPool::Avg;
    let vs = nn::VarStore::new(Device::Cpu);
    assert!(MaskedAutoencoder::new(&vs.root(), &bad)
        .unwrap_err()
        .to_string()
        .contains("class token"));
}

fn save_filtered(vs: &nn::VarStore, path: &std::path::Path, keep: impl Fn(&str) -> bool) {
    let named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(k, _)| keep(k))
        .collect();
    Tensor::write_safetensors(&named, path).unwrap();
}

#[test]
fn checkpoints_full_encoder_only_and_broken() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(4);
    let cfg = tiny();
    let (vs, model) = build(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.safetensors");
    vit_core::save_safetensors(&vs, &full).unwrap();
    let x = images(2);
    let noise = Tensor::rand([2, 16], (Kind::Float, Device::Cpu));
    let want = tch::no_grad(|| model.forward_masked(&x, 0.75, Some(&noise), false)).unwrap();

    let (vs2, model2) = build(&cfg);
    let r = model2.load_safetensors(&vs2, &full).unwrap();
    assert_eq!(r.decoder, DecoderStatus::Loaded);
    let got = tch::no_grad(|| model2.forward_masked(&x, 0.75, Some(&noise), false)).unwrap();
    assert!(got.pred.equal(&want.pred) && got.loss.equal(&want.loss));

    // Encoder only (the released pre-trained checkpoints): reported, not an error.
    let enc = dir.path().join("encoder.safetensors");
    save_filtered(&vs, &enc, |k| !mae::is_decoder_name(k));
    let (vs3, model3) = build(&cfg);
    let r = model3.load_safetensors(&vs3, &enc).unwrap();
    match &r.decoder {
        DecoderStatus::Missing(names) => {
            assert!(
                names.contains(&"decoder_pred.weight".to_owned())
                    && names.contains(&"mask_token".to_owned())
            )
        }
        other => panic!("expected a missing decoder, got {other:?}"),
    }
    assert!(r.to_string().contains("no decoder"), "{r}");
    assert!(vs3.variables()["blocks.1.mlp.fc1.weight"]
        .equal(&vs.variables()["blocks.1.mlp.fc1.weight"]));

    // A missing encoder tensor is an error naming it, and nothing is loaded.
    let broken = dir.path().join("broken.safetensors");
    save_filtered(&vs, &broken, |k| k != "blocks.0.attn.proj.weight");
    let (vs4, model4) = build(&cfg);
    let before = vs4.variables()["norm.weight"].copy();
    let e = model4
        .load_safetensors(&vs4, &broken)
        .unwrap_err()
        .to_string();
    assert!(e.contains("blocks.0.attn.proj.weight"), "{e}");
    assert!(vs4.variables()["norm.weight"].equal(&before));
    std::fs::write(dir.path().join("junk.safetensors"), b"not a file").unwrap();
    assert!(model4
        .load_safetensors(&vs4, dir.path().join("junk.safetensors"))
        .is_err());

    // Into a ViT classifier (main_finetune): global pool -> fc_norm and head are new.
    let vcfg = mae::classifier_config(&cfg, 10, true, 0.1);
    let vs5 = nn::VarStore::new(Device::Cpu);
    let vit = vit_core::VisionTransformer::new(&vs5.root(), &vcfg).unwrap();
    let report = mae::load_encoder_into(&vit, &vs5, &enc).unwrap();
    let mut missing = report.missing.clone();
    missing.sort();
    assert_eq!(
        missing,
        ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    );
    assert!(vs5.variables()["pos_embed"].requires_grad());
    assert!(vs5.variables()["pos_embed"].equal(&vs.variables()["pos_embed"]));
    let vs6 = nn::VarStore::new(Device::Cpu);
    let vit6 = vit_core::VisionTransformer::new(&vs6.root(), &vcfg).unwrap();
    assert!(mae::load_encoder_into(&vit6, &vs6, &broken).is_err());
}

#[test]
fn reconstruction_panels_paste_visible_patches_back() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(5);
    let mut cfg = tiny();
    cfg.norm_pix_loss = true;
    let (_vs, model) = build(&cfg);
    let x = images(3) * 0.5;
    let (mean, std) = ([0.5; 3], [0.25; 3]);
    let r = mae::reconstruct(&model, &x, 0.75, None, &mean, &std).unwrap();
    let shown = |t: &Tensor| (t * 0.25 + 0.5).clamp(0.0, 1.0);
    assert!(r.original.allclose(&shown(&x), 0.0, 1e-6, false));
    // Visible pixels of `pasted` are the original's; masked pixels of `masked` are the mean.
    let diff = (&r.pasted - &r.original)
        .abs()
        .gt(1e-6)
        .to_kind(Kind::Float);
    let grey = (&r.masked - 0.5).abs().lt(1e-6).to_kind(Kind::Float);
    let changed = diff.sum(Kind::Float).double_value(&[]);
    assert!(changed > 0.0);
    let outside = diff * (grey.ones_like() - &grey);
    assert_eq!(outside.sum(Kind::Float).double_value(&[]), 0.0);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("recon.png");
    mae::save_grid(&r, &png, 3).unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (4 * 48 + 10, 3 * 48 + 8));
}

#[test]
fn double_precision_forward_runs() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(6);
    let cfg = tiny();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = MaskedAutoencoder::new(&vs.root(), &cfg).unwrap();
    vs.double();
    let x = images(2).to_kind(Kind::Double);
    let out = model.forward_t(&x, false).unwrap();
    assert_eq!(
        (out.loss.kind(), out.mask.kind()),
        (Kind::Double, Kind::Double)
    );
    let named: HashMap<String, Tensor> = vs.variables();
    assert_eq!(named["mask_token"].kind(), Kind::Double);
}

#[test]
fn bad_tensors_are_errors_not_panics() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(7);
    let cfg = tiny();
    let (_vs, model) = build(&cfg);
    let cpu = |shape: &[i64], kind: Kind| Tensor::zeros(shape, (kind, Device::Cpu));
    let says = |r: mae::Result<Tensor>, parts: &[&str]| {
        let e = r.expect_err("a bad input must be an error").to_string();
        assert!(
            parts.iter().all(|p| e.contains(p)),
            "{e} (wanted {parts:?})"
        );
    };
    // The decoder: latent width = the encoder's, ids_restore int64 [N, L] of the latent's batch.
    let enc = model
        .forward_encoder(&images(2), 0.75, None, false)
        .unwrap();
    assert_eq!(
        model
            .forward_decoder(&enc.latent, &enc.ids_restore, false)
            .unwrap()
            .size(),
        [2, 16, 48]
    );
    let wide = cpu(&[2, 5, 16], Kind::Float);
    says(
        model.forward_decoder(&wide, &enc.ids_restore, false),
        &["latent", "32]", "[2, 5, 16]"],
    );
    let ints = cpu(&[2, 5, 32], Kind::Int64);
    says(
        model.forward_decoder(&ints, &enc.ids_restore, false),
        &["latent", "Int64"],
    );
    let long = cpu(&[2, 18, 32], Kind::Float);
    says(
        model.forward_decoder(&long, &enc.ids_restore, false),
        &["keep <= 16", "[2, 18, 32]"],
    );
    let ids = &enc.ids_restore;
    says(
        model.forward_decoder(&enc.latent, &ids.to_kind(Kind::Float), false),
        &["ids_restore", "int64", "Float"],
    );
    says(
        model.forward_decoder(&enc.latent, &ids.narrow(1, 0, 15), false),
        &["ids_restore", "[2, 16]", "[2, 15]"],
    );
    says(
        model.forward_decoder(&enc.latent, &ids.narrow(0, 0, 1), false),
        &["ids_restore", "[2, 16]", "[1, 16]"],
    );
    // An index outside [0, L) is libtorch's error, not a panic.
    let out_of_range = ids.ones_like() * 99;
    assert!(model
        .forward_decoder(&enc.latent, &out_of_range, false)
        .is_err());
    // The loss: prediction and mask shapes.
    let x = images(2);
    let pred = cpu(&[2, 16, 48], Kind::Float);
    says(
        model.forward_loss(&x, &pred.narrow(1, 0, 8), &enc.mask),
        &["pred", "[2, 16, 48]"],
    );
    says(
        model.forward_loss(&x, &pred, &enc.mask.narrow(1, 0, 8)),
        &["mask [2, 16]", "[2, 8]"],
    );
    // Masking: tokens [N, L, D], noise [N, L] float; noise of a bad grid.
    let tokens = cpu(&[2, 16, 8], Kind::Float);
    let noise = Tensor::rand([2, 16], (Kind::Float, Device::Cpu));
    assert!(mae::masking::mask_by_noise(&tokens.view([32, 8]), &noise, 4).is_err());
    assert!(mae::masking::mask_by_noise(&tokens, &noise.to_kind(Kind::Int64), 4).is_err());
    assert!(mae::masking::mask_by_noise(&tokens, &noise, 17).is_err());
    for (n, grid) in [(-1, (4, 4)), (2, (0, 4)), (2, (4, -1))] {
        assert!(mae::masking::noise(MaskKind::Random, n, grid, 0.75, Device::Cpu).is_err());
    }
    // Patches.
    says(
        mae::patchify(&cpu(&[3, 16, 16], Kind::Float), 4),
        &["patchify", "[3, 16, 16]"],
    );
    says(
        mae::unpatchify(&pred, 4, 3, (4, 3)),
        &["unpatchify", "[2, 16, 48]"],
    );
    says(
        mae::patches::norm_pix(&cpu(&[16, 48], Kind::Float)),
        &["[N, L, P]", "[16, 48]"],
    );
    // Augmentations and losses.
    use mae::augment::{
        mixup_cutmix, random_resized_crop, smooth_one_hot, soft_target_cross_entropy,
    };
    let crop = mae::augment::CropConfig::default();
    says(
        random_resized_crop(&x, (0, 8), &crop),
        &["random_resized_crop", "0x8"],
    );
    says(
        random_resized_crop(&x.view([6, 16, 16]), (8, 8), &crop),
        &["[N, C, H, W]", "[6, 16, 16]"],
    );
    let labels = Tensor::from_slice(&[0i64, 3]);
    says(
        smooth_one_hot(&labels.to_kind(Kind::Float), 5, 0.1),
        &["int64", "Float"],
    );
    says(
        smooth_one_hot(&labels, 0, 0.1),
        &["classes >= 1", "0 classes"],
    );
    assert!(
        smooth_one_hot(&labels, 3, 0.1).is_err(),
        "label 3 of 3 classes"
    );
    let mix = mae::augment::MixupConfig::default();
    let short = Tensor::from_slice(&[0i64]);
    let e = mixup_cutmix(&x, &short, 5, &mix).unwrap_err().to_string();
    assert!(e.contains("labels [2]") && e.contains("[1]"), "{e}");
    let logits = cpu(&[2, 5], Kind::Float);
    says(
        soft_target_cross_entropy(&logits, &cpu(&[2, 4], Kind::Float)),
        &["[2, 4]", "[2, 5]"],
    );
    says(
        soft_target_cross_entropy(&logits, &cpu(&[2, 5], Kind::Int64)),
        &["Int64"],
    );
    // The probe head and the probe.
    let vs = nn::VarStore::new(Device::Cpu);
    let head = mae::probe::ProbeHead::new(&vs.root(), 8, 3);
    assert_eq!(
        head.forward_t(&cpu(&[4, 8], Kind::Float), true)
            .unwrap()
            .size(),
        [4, 3]
    );
    says(
        head.forward_t(&cpu(&[4, 7], Kind::Float), false),
        &["[N >= 0, 8]", "[4, 7]"],
    );
    says(
        head.forward_t(&cpu(&[1, 8], Kind::Float), true),
        &["[N >= 2, 8]", "[1, 8]"],
    );
    let feats = cpu(&[4, 8], Kind::Float);
    let y = Tensor::from_slice(&[0i64, 1, 2, 0]);
    let pc = mae::ProbeConfig::default();
    let bad_probe = [
        mae::linear_probe((&feats, &y.narrow(0, 0, 3)), (&feats, &y), 3, &pc),
        mae::linear_probe((&feats, &y.to_kind(Kind::Float)), (&feats, &y), 3, &pc),
        mae::linear_probe((&feats, &y), (&feats.narrow(1, 0, 4), &y), 3, &pc),
        mae::linear_probe(
            (&feats.narrow(0, 0, 0), &y.narrow(0, 0, 0)),
            (&feats, &y),
            3,
            &pc,
        ),
    ];
    for r in bad_probe {
        assert!(matches!(r, Err(MaeError::Input { .. })), "{r:?}");
    }
    // Evaluation: images and labels must pair up.
    let vit_cfg = mae::classifier_config(&cfg, 3, true, 0.0);
    let vs = nn::VarStore::new(Device::Cpu);
    let vit = vit_core::VisionTransformer::new(&vs.root(), &vit_cfg).unwrap();
    let (m, s) = ([0.5; 3], [0.25; 3]);
    let imgs = Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu));
    let acc = mae::evaluate(
        &vit,
        &mae::EvalSet::Tensors {
            images: &imgs,
            labels: &y,
        },
        &m,
        &s,
        2,
        Device::Cpu,
    );
    assert!((0.0..=1.0).contains(&acc.unwrap()));
    for (labels, batch) in [
        (y.narrow(0, 0, 3), 2),
        (y.to_kind(Kind::Float), 2),
        (y.shallow_clone(), 0),
    ] {
        let set = mae::EvalSet::Tensors {
            images: &imgs,
            labels: &labels,
        };
        assert!(mae::evaluate(&vit, &set, &m, &s, batch, Device::Cpu).is_err());
    }
    // Figure panels of the wrong rank.
    let dir = tempfile::tempdir().unwrap();
    let flat = mae::Reconstruction {
        original: cpu(&[2, 16, 16], Kind::Float),
        masked: cpu(&[2, 16, 16], Kind::Float),
        reconstruction: cpu(&[2, 16, 16], Kind::Float),
        pasted: cpu(&[2, 16, 16], Kind::Float),
        loss: 0.0,
    };
    let e = mae::save_grid(&flat, &dir.path().join("x.png"), 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("panels") && e.contains("[2, 16, 16]"), "{e}");
}
