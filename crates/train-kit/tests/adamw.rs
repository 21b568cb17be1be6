//! Flat [`AdamW`] against the per-parameter loop [`PerParamAdamW`] and against tch's
//! `nn::AdamW` (libtorch's C++ `torch::optim::AdamW`, which has decoupled weight decay
//! `p *= 1 - lr * wd` and the same moment / bias-correction math as torch.optim.AdamW; it
//! only differs in rounding: `m*b1 + (1-b1)*g` and `v*b2 + (1-b2)*g*g` instead of lerps,
//! `value=` on addcdiv_), plus the flat-buffer invariants.

mod common;

use common::{deep_copy, formula_loss, max_abs_diff, snapshot, vit_like};
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};
use train_kit::{clip_grad_norm, AdamW, AdamWConfig, GroupSpec, ParamGroup, PerParamAdamW};

fn store(kind: Kind) -> nn::VarStore {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(kind);
    vs
}

fn max_diff_stores(a: &nn::VarStore, b: &nn::VarStore) -> f64 {
    let (a, b) = (snapshot(a), snapshot(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            max_abs_diff(ta, tb)
        })
        .fold(0.0, f64::max)
}

/// Segment sizes exercised: CPU default, whole buffers (GPU mode), one parameter per
/// segment (in-place .grad reads), and a size that mixes batched and single segments.
const SEGMENTS: [Option<i64>; 4] = [None, Some(0), Some(1), Some(300)];

fn with_segments(opt: &mut AdamW, seg: Option<i64>) {
    if let Some(s) = seg {
        opt.set_segment_elems(s);
    }
}

#[test]
fn flat_matches_per_param_loop() {
    for seg in SEGMENTS {
        flat_matches_per_param_loop_with(seg);
    }
}

fn flat_matches_per_param_loop_with(seg: Option<i64>) {
    let cfg = AdamWConfig {
        lr: 1e-2,
        ..AdamWConfig::mae_pretrain()
    };
    let (vs_a, vs_b) = (store(Kind::Float), store(Kind::Float));
    let (pa, pb) = (
        vit_like(&vs_a, 16, 2, Kind::Float),
        vit_like(&vs_b, 16, 2, Kind::Float),
    );
    let groups = ParamGroup::decay_no_decay(&vs_a, 0.05);
    assert_eq!(groups.len(), 2);
    let mut flat = AdamW::new(&vs_a, groups.clone(), cfg).unwrap();
    with_segments(&mut flat, seg);
    let mut per = PerParamAdamW::new(&vs_b, groups, cfg).unwrap();
    let mut bitwise = true;
    for t in 1..=10 {
        flat.set_lr(cfg.lr * t as f64 / 10.0);
        per.set_lr(cfg.lr * t as f64 / 10.0);
        formula_loss(&pa, t).backward();
        formula_loss(&pb, t).backward();
        flat.step().unwrap();
        per.step().unwrap();
        flat.zero_grad();
        per.zero_grad();
        let d = max_diff_stores(&vs_a, &vs_b);
        assert!(d <= 1e-6, "step {t}: {d:e}");
        bitwise &= d == 0.0;
    }
    println!(
        "flat ({} segments) vs per-param (f32, 10 steps): bitwise equal = {bitwise}",
        flat.num_segments()
    );
}

/// tch's nn::AdamW with two tch groups (group 1: no decay, lr scale 2) against ours.
fn against_tch(kind: Kind, tol: f64) {
    let (lr, wd) = (3e-3, 0.01);
    let (vs_a, vs_b) = (store(kind), store(kind));
    let pa = vit_like(&vs_a, 8, 1, kind);
    // Same names/values in vs_b, no-decay ones in tch group 1.
    let no_decay = |n: &str, t: &Tensor| {
        t.dim() <= 1 || n.ends_with("bias") || n.contains("token") || n.contains("pos_embed")
    };
    let pb: Vec<(String, Tensor)> = pa
        .iter()
        .map(|(n, t)| {
            let group = if no_decay(n, t) { 1 } else { 0 };
            (
                n.clone(),
                common::var_at(&vs_b.root().set_group(group), n, t),
            )
        })
        .collect();
    let groups = ParamGroup::by_rule(&vs_a, |n, t| {
        if no_decay(n, t) {
            GroupSpec::new(0.0, 2.0)
        } else {
            GroupSpec::new(wd, 1.0)
        }
    });
    let cfg = AdamWConfig {
        lr,
        weight_decay: wd,
        ..Default::default()
    };
    let mut ours = AdamW::new(&vs_a, groups, cfg).unwrap();
    let mut theirs = nn::AdamW {
        wd,
        ..Default::default()
    }
    .build(&vs_b, lr)
    .unwrap();
    theirs.set_lr_group(1, 2.0 * lr);
    theirs.set_weight_decay_group(1, 0.0);
    let mut worst = 0.0f64;
    for t in 1..=10 {
        ours.zero_grad();
        theirs.zero_grad();
        formula_loss(&pa, t).backward();
        formula_loss(&pb, t).backward();
        ours.step().unwrap();
        theirs.step();
        worst = worst.max(max_diff_stores(&vs_a, &vs_b));
    }
    println!("flat AdamW vs tch nn::AdamW ({kind:?}, 10 steps, 2 groups): max abs diff {worst:e}");
    assert!(worst <= tol, "{worst:e} > {tol:e}");
}

#[test]
fn flat_matches_tch_adamw_f64() {
    against_tch(Kind::Double, 1e-12);
}

#[test]
fn flat_matches_tch_adamw_f32() {
    against_tch(Kind::Float, 1e-6);
}

#[test]
fn new_keeps_values_save_load_and_skips_frozen() {
    let vs = store(Kind::Float);
    let params = vit_like(&vs, 8, 1, Kind::Float);
    let frozen = vs.root().zeros_no_train("frozen_buf", &[3]);
    let before = snapshot(&vs);
    let printed: Vec<String> = params.iter().map(|(_, t)| format!("{t}")).collect();
    let mut opt = AdamW::new(
        &vs,
        ParamGroup::decay_no_decay(&vs, 0.05),
        AdamWConfig::default(),
    )
    .unwrap();
    assert_eq!(
        opt.params().len(),
        params.len(),
        "frozen_buf must not be optimised"
    );
    let after = snapshot(&vs);
    for ((n, a), (_, b)) in before.iter().zip(&after) {
        assert!(a.equal(b), "{n} changed");
    }
    assert_eq!(
        printed,
        params
            .iter()
            .map(|(_, t)| format!("{t}"))
            .collect::<Vec<_>>()
    );
    assert!(params
        .iter()
        .all(|(_, t)| t.requires_grad() && t.is_contiguous()));

    // One step moves the variables (they are views of the flat buffer), not the frozen one.
    formula_loss(&params, 1).backward();
    opt.step().unwrap();
    assert!(!params[0]
        .1
        .equal(&before.iter().find(|(n, _)| *n == params[0].0).unwrap().1));
    assert!(frozen.equal(&Tensor::zeros([3], (Kind::Float, Device::Cpu))));

    // vs.save / vs.load round trip, both formats, into a fresh store; loading back into the
    // optimised store keeps the flat-buffer link (copy_ into the views).
    let dir = tempfile::tempdir().unwrap();
    for file in ["w.ot", "w.safetensors"] {
        let path = dir.path().join(file);
        vs.save(&path).unwrap();
        let mut fresh = store(Kind::Float);
        vit_like(&fresh, 8, 1, Kind::Float);
        let _ = fresh.root().zeros_no_train("frozen_buf", &[3]);
        fresh.load(&path).unwrap();
        assert_eq!(max_diff_stores(&vs, &fresh), 0.0, "{file}");
    }
    let saved = snapshot(&vs);
    formula_loss(&params, 2).backward();
    opt.step().unwrap();
    let mut vs = vs;
    vs.load(dir.path().join("w.ot")).unwrap();
    for ((n, a), (_, b)) in saved.iter().zip(&snapshot(&vs)) {
        assert!(a.equal(b), "{n} not restored");
    }
    opt.zero_grad();
    formula_loss(&params, 3).backward();
    opt.step().unwrap(); // still linked: the data pointers were checked
}

#[test]
fn zero_grad_sets_none_and_missing_grads_are_untouched() {
    for seg in SEGMENTS {
        missing_grads_with(seg);
    }
}

fn missing_grads_with(seg: Option<i64>) {
    let (vs_a, vs_b) = (store(Kind::Double), store(Kind::Double));
    let (pa, pb) = (
        vit_like(&vs_a, 8, 1, Kind::Double),
        vit_like(&vs_b, 8, 1, Kind::Double),
    );
    let cfg = AdamWConfig {
        lr: 1e-2,
        ..Default::default()
    };
    let mut flat = AdamW::new(&vs_a, ParamGroup::decay_no_decay(&vs_a, 0.1), cfg).unwrap();
    with_segments(&mut flat, seg);
    let mut per = PerParamAdamW::new(&vs_b, ParamGroup::decay_no_decay(&vs_b, 0.1), cfg).unwrap();
    formula_loss(&pa, 1).backward();
    formula_loss(&pb, 1).backward();
    flat.step().unwrap();
    per.step().unwrap();
    flat.zero_grad();
    per.zero_grad();
    assert!(pa.iter().all(|(_, t)| !t.grad().defined()));
    // Step 2: only the first half of the tensors get a gradient.
    let half = pa.len() / 2;
    let untouched = deep_copy(&pa[half].1);
    formula_loss(&pa[..half], 2).backward();
    formula_loss(&pb[..half], 2).backward();
    flat.step().unwrap();
    per.step().unwrap();
    assert!(
        pa[half].1.equal(&untouched),
        "a parameter without grad must not move"
    );
    assert!(max_diff_stores(&vs_a, &vs_b) <= 1e-12);
    assert_eq!(flat.step_count(), 2);
}

#[test]
fn step_with_clip_matches_clip_then_step() {
    for seg in SEGMENTS {
        clip_with(seg);
    }
}

fn clip_with(seg: Option<i64>) {
    let (vs_a, vs_b) = (store(Kind::Double), store(Kind::Double));
    let (pa, pb) = (
        vit_like(&vs_a, 8, 1, Kind::Double),
        vit_like(&vs_b, 8, 1, Kind::Double),
    );
    let cfg = AdamWConfig::default();
    let mut a = AdamW::new(&vs_a, ParamGroup::decay_no_decay(&vs_a, 0.05), cfg).unwrap();
    with_segments(&mut a, seg);
    let mut b = AdamW::new(&vs_b, ParamGroup::decay_no_decay(&vs_b, 0.05), cfg).unwrap();
    with_segments(&mut b, seg);
    for t in 1..=3 {
        formula_loss(&pa, t).backward();
        formula_loss(&pb, t).backward();
        let na = a.step_with_clip(0.5).unwrap();
        let nb = clip_grad_norm(&vs_b, 0.5);
        b.step().unwrap();
        assert!((na - nb).abs() <= 1e-9 * nb, "{na} vs {nb}");
        assert!(na > 0.5);
        // .grad of `a` stays unscaled; clip_grad_norm scaled b's in place.
        let coef = 0.5 / (nb + 1e-6);
        assert!(
            max_abs_diff(&(pa[0].1.grad() * coef), &pb[0].1.grad()) < 1e-12,
            "step_with_clip must not scale .grad"
        );
        a.zero_grad();
        b.zero_grad();
        assert!(max_diff_stores(&vs_a, &vs_b) <= 1e-12);
    }
}
