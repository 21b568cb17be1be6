//! Flat [`AdamW`] bookkeeping: optimiser state save/restore and its errors, rejected
//! groups/configs, detection of variables detached from the flat buffer, and the MAE/timm
//! weight-decay grouping rule.

mod common;

use common::{deep_copy, formula_loss, vit_like};
use tch::{nn, Device, Kind, Tensor};
use train_kit::{AdamW, AdamWConfig, GroupSpec, ParamGroup, TrainError};

fn store(kind: Kind) -> nn::VarStore {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(kind);
    vs
}

#[test]
fn state_round_trip_and_errors() {
    let vs = store(Kind::Float);
    let params = vit_like(&vs, 8, 1, Kind::Float);
    let mut opt = AdamW::new(
        &vs,
        ParamGroup::decay_no_decay(&vs, 0.05),
        AdamWConfig::default(),
    )
    .unwrap();
    formula_loss(&params, 1).backward();
    opt.step().unwrap();
    let state: Vec<(String, Tensor)> = opt
        .state_tensors()
        .iter()
        .map(|(n, t)| (n.clone(), deep_copy(t)))
        .collect();
    assert_eq!(state.len(), 1 + 2 * params.len());

    let vs2 = store(Kind::Float);
    vit_like(&vs2, 8, 1, Kind::Float);
    let mut opt2 = AdamW::new(
        &vs2,
        ParamGroup::decay_no_decay(&vs2, 0.05),
        AdamWConfig::default(),
    )
    .unwrap();
    opt2.load_state_tensors(&state).unwrap();
    assert_eq!(opt2.step_count(), 1);
    for ((na, a), (nb, b)) in state.iter().zip(opt2.state_tensors()) {
        assert_eq!(*na, nb);
        assert!(a.equal(&b), "{na}");
    }

    let missing: Vec<_> = state
        .iter()
        .filter(|(n, _)| n != "exp_avg/head.weight")
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    let e = opt2.load_state_tensors(&missing).unwrap_err();
    assert!(e.to_string().contains("exp_avg/head.weight"), "{e}");
    let mut wrong: Vec<_> = state
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    let i = wrong
        .iter()
        .position(|(n, _)| n == "exp_avg_sq/head.weight")
        .unwrap();
    wrong[i].1 = Tensor::zeros([3, 3], (Kind::Float, Device::Cpu));
    let e = opt2.load_state_tensors(&wrong).unwrap_err();
    assert!(
        matches!(&e, TrainError::ShapeMismatch { expected, actual, .. } if expected == &vec![10, 8] && actual == &vec![3, 3]),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("exp_avg_sq/head.weight") && msg.contains("[10, 8]") && msg.contains("[3, 3]"),
        "{msg}"
    );
}

#[test]
fn detached_params_and_bad_groups_are_errors() {
    let mut vs = store(Kind::Float);
    let params = vit_like(&vs, 8, 1, Kind::Float);
    let groups = ParamGroup::single(&vs, 0.0);
    let mut dup = groups.clone();
    dup.push(ParamGroup::new(
        GroupSpec::new(0.0, 1.0),
        vec!["head.bias".into()],
    ));
    assert!(matches!(
        AdamW::new(&vs, dup, AdamWConfig::default()),
        Err(TrainError::DuplicateParam { .. })
    ));
    let unknown = vec![ParamGroup::new(
        GroupSpec::new(0.0, 1.0),
        vec!["nope".into()],
    )];
    assert!(matches!(
        AdamW::new(&vs, unknown, AdamWConfig::default()),
        Err(TrainError::UnknownParam { .. })
    ));
    let bad = AdamWConfig {
        beta2: 1.0,
        ..Default::default()
    };
    assert!(matches!(
        AdamW::new(&vs, groups.clone(), bad),
        Err(TrainError::InvalidConfig(_))
    ));

    let mut opt = AdamW::new(&vs, groups, AdamWConfig::default()).unwrap();
    vs.set_kind(Kind::Double); // replaces every variable's data
    formula_loss(&params, 1).backward();
    let e = opt.step().unwrap_err();
    assert!(matches!(e, TrainError::ParamDetached { .. }), "{e}");
}

#[test]
fn decay_no_decay_rule() {
    let vs = store(Kind::Float);
    vit_like(&vs, 8, 1, Kind::Float);
    let groups = ParamGroup::decay_no_decay(&vs, 0.05);
    let decay = &groups
        .iter()
        .find(|g| g.spec.weight_decay == 0.05)
        .unwrap()
        .names;
    let no = &groups
        .iter()
        .find(|g| g.spec.weight_decay == 0.0)
        .unwrap()
        .names;
    for n in [
        "cls_token",
        "pos_embed",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.bias",
        "head.bias",
        "patch_embed.proj.bias",
    ] {
        assert!(no.contains(&n.to_owned()), "{n}");
    }
    for n in [
        "blocks.0.attn.qkv.weight",
        "blocks.0.mlp.fc1.weight",
        "head.weight",
        "patch_embed.proj.weight",
    ] {
        assert!(decay.contains(&n.to_owned()), "{n}");
    }
    assert_eq!(ParamGroup::single(&vs, 0.1).len(), 1);
    let cfg: AdamWConfig =
        serde_json::from_str(&serde_json::to_string(&AdamWConfig::mae_pretrain()).unwrap())
            .unwrap();
    assert_eq!((cfg.beta2, cfg.weight_decay), (0.95, 0.05));
    assert_eq!(
        AdamWConfig::default(),
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01
        }
    );
}
