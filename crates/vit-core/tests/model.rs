//! Behaviour of the model on small configs: fused and explicit attention agree, errors name
//! the problem, checkpoints round-trip and fail cleanly, ToMe and drop-path behave.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tch::{nn, Device, Kind, Tensor};
use vit_core::{
    save_safetensors, AttnImpl, Block, ForwardOpts, GlobalPool, LoadOptions, PosEmbedKind, ToMe,
    ViTConfig, ViTError, VisionTransformer,
};

fn small() -> ViTConfig {
    ViTConfig {
        img_size: (32, 32),
        patch_size: 8,
        embed_dim: 32,
        depth: 3,
        num_heads: 4,
        num_classes: 5,
        ..ViTConfig::tiny(16)
    }
}

fn build(cfg: &ViTConfig) -> (nn::VarStore, VisionTransformer) {
    let vs = nn::VarStore::new(Device::Cpu);
    let m = VisionTransformer::new(&vs.root(), cfg).unwrap();
    (vs, m)
}

fn input(b: i64, h: i64, w: i64) -> Tensor {
    Tensor::randn([b, 3, h, w], (Kind::Float, Device::Cpu))
}

#[test]
fn explicit_attention_equals_fused_and_returns_maps() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(1);
    let (_vs, m) = build(&small());
    let x = input(2, 32, 32);
    let fused = m.forward_t(&x, false).unwrap();
    let (explicit, maps) = m.forward_with_attention(&x).unwrap();
    assert!(fused.allclose(&explicit, 0.0, 1e-5, false));
    assert_eq!(maps.len(), 3);
    assert_eq!(maps[0].size(), [2, 4, 17, 17]);
    let rows = maps[2].sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
    assert!(rows.allclose(&rows.ones_like(), 0.0, 1e-5, false));
}

#[test]
fn bad_inputs_are_errors_naming_expected_and_actual() {
    let _rng = test_support::rng_lock();
    let (_vs, m) = build(&small());
    let e = m.forward_t(&input(1, 30, 32), false).unwrap_err();
    assert!(matches!(e, ViTError::Input { .. }));
    let s = e.to_string();
    assert!(s.contains("30x32") && s.contains("8"), "{s}");
    let e = m
        .forward_t(
            &Tensor::randn([1, 1, 32, 32], (Kind::Float, Device::Cpu)),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1 channels") && e.contains("[batch, 3, H, W]"),
        "{e}"
    );
    assert!(m
        .forward_t(
            &Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)),
            false
        )
        .is_err());
    let e = m
        .forward_t(
            &Tensor::zeros([1, 3, 32, 32], (Kind::Uint8, Device::Cpu)),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("floating point"), "{e}");
}

#[test]
fn other_resolutions_run_and_keep_the_stored_embedding() {
    let _rng = test_support::rng_lock();
    let (_vs, m) = build(&small());
    let y = m.forward_t(&input(2, 48, 24), false).unwrap();
    assert_eq!(y.size(), [2, 5]);
    let pe = m.pos_embed_for((4, 4)).unwrap();
    assert_eq!(pe.size(), [1, 17, 32]);
    assert_eq!(m.pos_embed_for((6, 3)).unwrap().size(), [1, 19, 32]);
}

#[test]
fn checkpoint_round_trip_and_clean_failures() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vit.safetensors");
    let (vs, m) = build(&small());
    save_safetensors(&vs, &path).unwrap();
    let x = input(2, 32, 32);
    let want = m.forward_t(&x, false).unwrap();

    let (vs2, m2) = build(&small());
    let strict = LoadOptions {
        strict: true,
        ..Default::default()
    };
    let report = m2.load_safetensors(&vs2, &path, &strict).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    assert!(m2.forward_t(&x, false).unwrap().equal(&want));

    // Another head: the shape error names the tensor and both shapes, and nothing is loaded.
    let mut other = small();
    other.num_classes = 7;
    let (vs3, m3) = build(&other);
    let before = m3.forward_t(&x, false).unwrap();
    let e = m3
        .load_safetensors(&vs3, &path, &LoadOptions::default())
        .unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("head.") && s.contains("[7") && s.contains("[5"),
        "{s}"
    );
    assert!(m3.forward_t(&x, false).unwrap().equal(&before));
    // Skipping the head loads the trunk and reports the head as missing.
    let skip = LoadOptions {
        skip: vec!["head.".into()],
        ..Default::default()
    };
    let r = m3.load_safetensors(&vs3, &path, &skip).unwrap();
    assert_eq!(r.missing, ["head.bias", "head.weight"]);
    assert!(m3
        .load_safetensors(
            &vs3,
            &path,
            &LoadOptions {
                strict: true,
                ..skip
            }
        )
        .is_err());

    // A model at another resolution resamples pos_embed; a corrupt file is a clear error.
    let mut big = small();
    big.img_size = (48, 48);
    let (vs4, m4) = build(&big);
    let r = m4.load_safetensors(&vs4, &path, &strict).unwrap();
    assert_eq!(r.resampled, Some(((4, 4), (6, 6))));
    std::fs::write(&path, b"not safetensors").unwrap();
    let e = m2
        .load_safetensors(&vs2, &path, &strict)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vit.safetensors") && e.contains("safetensors"),
        "{e}"
    );
}

#[test]
fn tome_shrinks_the_sequence_by_the_schedule() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(3);
    let mut cfg = small();
    cfg.img_size = (64, 64); // 64 patches + cls
    let (_vs, m) = build(&cfg);
    let x = input(2, 64, 64);
    let plain = m.forward_t(&x, false).unwrap();
    let r0 = m.forward_tome(&x, ToMe::new(0)).unwrap();
    assert!(
        plain.allclose(&r0, 0.0, 1e-5, false),
        "r = 0 must be the plain model"
    );
    let out = m
        .forward_with(
            &x,
            &ForwardOpts {
                tome: Some(ToMe::new(8)),
                ..Default::default()
            },
        )
        .unwrap();
    let left = *ToMe::new(8).schedule(65, 1, 3).last().unwrap();
    assert_eq!(left, 65 - 24);
    assert_eq!(out.tokens.size(), [2, left, 32]);
    let sizes = out.sizes.unwrap();
    assert_eq!(sizes.sum(Kind::Float).double_value(&[]), 2.0 * 65.0);
    let logits = m.forward_tome(&x, ToMe::new(8)).unwrap();
    assert_eq!(logits.size(), [2, 5]);
    assert!(logits.isfinite().all().int64_value(&[]) == 1);
    // Explicit attention with ToMe (proportional attention as a logit bias) equals fused.
    let explicit = m
        .forward_with(
            &x,
            &ForwardOpts {
                tome: Some(ToMe::new(8)),
                attn: AttnImpl::Explicit,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(explicit.tokens.allclose(&out.tokens, 0.0, 1e-5, false));
}

#[test]
fn drop_path_is_stochastic_in_training_only_and_gradients_reach_every_parameter() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(4);
    let mut cfg = small();
    cfg.drop_path_rate = 0.5;
    cfg.global_pool = GlobalPool::Avg;
    cfg.init_values = Some(0.1);
    let (vs, m) = build(&cfg);
    let x = input(8, 32, 32);
    assert!(m
        .forward_t(&x, false)
        .unwrap()
        .equal(&m.forward_t(&x, false).unwrap()));
    let a = m.forward_t(&x, true).unwrap();
    let b = m.forward_t(&x, true).unwrap();
    assert!(!a.allclose(&b, 0.0, 1e-4, false));
    a.sum(Kind::Float).backward();
    for (name, t) in vs.variables() {
        let g = t.grad();
        assert!(g.defined(), "{name} got no gradient");
    }
}

#[test]
fn sincos_positions_are_fixed_and_intermediates_are_maps() {
    let _rng = test_support::rng_lock();
    let mut cfg = small();
    cfg.pos_embed = PosEmbedKind::SinCos;
    let (vs, m) = build(&cfg);
    assert!(vs.variables().contains_key("pos_embed"));
    assert!(!vs
        .trainable_variables()
        .iter()
        .any(|t| t.size() == [1, 17, 32]));
    let maps = m
        .forward_intermediates(&input(2, 32, 48), &[0, -1], true)
        .unwrap();
    assert_eq!(maps.len(), 2);
    assert_eq!(maps[1].size(), [2, 32, 4, 6]);
    assert!(m
        .forward_intermediates(&input(1, 32, 32), &[3], false)
        .is_err());
}

#[test]
fn token_level_api_rebuilds_the_forward() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(5);
    let mut cfg = small();
    cfg.reg_tokens = 2;
    let (_vs, m) = build(&cfg);
    let x = input(2, 32, 32);
    let (patches, grid) = m.embed_patches(&x).unwrap();
    assert_eq!((patches.size(), grid), (vec![2, 16, 32], (4, 4)));
    let prefix = m.prefix_tokens(2).unwrap();
    assert_eq!(prefix.size(), [2, 3, 32]);
    let tokens = m
        .forward_tokens(&Tensor::cat(&[prefix, patches], 1), false)
        .unwrap();
    let want = m.forward_features(&x, false).unwrap();
    assert!(tokens.allclose(&want, 0.0, 1e-6, false));
}

#[test]
fn token_entry_points_check_width_kind_and_length() {
    let _rng = test_support::rng_lock();
    tch::manual_seed(6);
    let mut cfg = small();
    cfg.global_pool = GlobalPool::Avg;
    let vs = nn::VarStore::new(Device::Cpu);
    let m = VisionTransformer::new(&vs.root(), &cfg).unwrap();
    let block = Block::new(vs.root() / "extra", &cfg, 0);
    assert_eq!(block.width(), 32);
    let tokens = |shape: &[i64], kind: Kind| Tensor::randn(shape, (kind, Device::Cpu));
    // The good cases run.
    let ok = tokens(&[2, 5, 32], Kind::Float);
    assert_eq!(block.forward_t(&ok, false).unwrap().size(), [2, 5, 32]);
    assert_eq!(m.forward_tokens(&ok, false).unwrap().size(), [2, 5, 32]);
    assert_eq!(m.forward_head(&ok, false).unwrap().size(), [2, 5]);
    // Each bad input is an error naming the entry point, what it wants and what arrived.
    let bad = [
        (tokens(&[2, 5, 16], Kind::Float), "[2, 5, 16]"),
        (tokens(&[5, 32], Kind::Float), "[5, 32]"),
        (tokens(&[2, 0, 32], Kind::Float), "[2, 0, 32]"),
        (tokens(&[2, 5, 32], Kind::Double), "Double"),
        (
            Tensor::zeros([2, 5, 32], (Kind::Int64, Device::Cpu)),
            "Int64",
        ),
    ];
    for (x, got) in &bad {
        for (what, e) in [
            ("Block::forward_t", block.forward_t(x, false).unwrap_err()),
            ("forward_tokens", m.forward_tokens(x, false).unwrap_err()),
            ("forward_head", m.forward_head(x, false).unwrap_err()),
        ] {
            assert!(matches!(e, ViTError::Input { .. }), "{what}: {e}");
            let s = e.to_string();
            assert!(
                s.contains(what) && s.contains("32]") && s.contains(got),
                "{what}: {s}"
            );
        }
    }
    // Average pooling needs a patch token after the class token.
    let e = m
        .forward_head(&tokens(&[2, 1, 32], Kind::Float), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("T >= 2") && e.contains("[2, 1, 32]"), "{e}");
    // The image entry points refuse a kind the weights cannot meet; prefix tokens a negative batch.
    let e = m
        .forward_t(&input(1, 32, 32).to_kind(Kind::Double), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Double") && e.contains("Float"), "{e}");
    assert!(matches!(m.prefix_tokens(-1), Err(ViTError::Config(_))));
}
