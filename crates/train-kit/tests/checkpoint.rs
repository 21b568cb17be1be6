//! Checkpoints: exact resume (bitwise, CPU, with dropout seeded by `seed_step`), crash
//! leftovers that must not hide the previous checkpoint, corruption and mismatch errors, and
//! a NaN stop that leaves the last checkpoint intact.

mod common;

use common::{formula, snapshot};
use serde_json::json;
use std::path::Path;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use train_kit::{
    check_finite, seed_step, AdamW, AdamWConfig, Checkpoint, CheckpointMeta, ParamGroup, Result,
    Schedule, TrainError,
};

const SEED: u64 = 1234;

/// (step, weights) of each checkpoint written.
type Saved = Vec<(u64, Vec<(String, Tensor)>)>;

struct Run {
    vs: nn::VarStore,
    net: nn::SequentialT,
    opt: AdamW,
}

fn build(init_seed: i64, hidden: i64) -> Run {
    tch::manual_seed(init_seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq_t()
        .add(nn::linear(&root / "fc1", 8, hidden, Default::default()))
        .add_fn(|x| x.relu())
        .add_fn_t(|x, train| x.dropout(0.3, train))
        .add(nn::linear(&root / "fc2", hidden, 4, Default::default()));
    let cfg = AdamWConfig {
        lr: 1e-2,
        ..AdamWConfig::mae_pretrain()
    };
    let opt = AdamW::new(&vs, ParamGroup::decay_no_decay(&vs, cfg.weight_decay), cfg).unwrap();
    Run { vs, net, opt }
}

fn data() -> (Tensor, Tensor) {
    let x = formula(&[32, 8], 0.21, 0.5, 1.0, Kind::Float);
    let y = Tensor::arange(32, (Kind::Int64, Device::Cpu)).remainder(4);
    (x, y)
}

const SCHEDULE: Schedule = Schedule::WarmupCosine {
    base_lr: 1e-2,
    min_lr: 1e-4,
    warmup_steps: 3,
    total_steps: 20,
};

/// Steps `from..to`; `poison` makes the loss of that step NaN; saves after every
/// `save_every`-th step into `dir` (if given) and returns the snapshots saved.
fn train(
    run: &mut Run,
    from: u64,
    to: u64,
    poison: Option<u64>,
    save: Option<(&Path, u64)>,
) -> Result<Saved> {
    let (x, y) = data();
    let mut saved = Vec::new();
    for step in from..to {
        seed_step(SEED, step);
        let mut loss = run.net.forward_t(&x, true).cross_entropy_for_logits(&y);
        if poison == Some(step) {
            loss *= f64::NAN;
        }
        check_finite(&loss, step)?;
        run.opt.set_lr(SCHEDULE.lr_at(step as usize));
        loss.backward();
        run.opt.step()?;
        run.opt.zero_grad();
        if let Some((dir, every)) = save {
            if (step + 1) % every == 0 {
                let meta = CheckpointMeta {
                    step: step + 1,
                    seed: SEED,
                    config: json!({"schedule": SCHEDULE}),
                    metrics: json!({"loss": f64::try_from(&loss).unwrap()}),
                    ..Default::default()
                };
                Checkpoint::save(dir, &run.vs, &run.opt, &meta)?;
                saved.push((step + 1, snapshot(&run.vs)));
            }
        }
    }
    Ok(saved)
}

fn assert_same_weights(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
}

#[test]
fn exact_resume_is_bitwise() {
    let _rng = test_support::rng_lock();
    let mut straight = build(1, 16);
    train(&mut straight, 0, 20, None, None).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = build(1, 16);
    train(&mut first, 0, 7, None, Some((dir.path(), 7))).unwrap();
    drop(first);

    let mut resumed = build(99, 16); // different init: everything must come from the file
    let meta = Checkpoint::load_latest(dir.path(), &mut resumed.vs, &mut resumed.opt)
        .unwrap()
        .unwrap();
    assert_eq!((meta.step, meta.seed), (7, SEED));
    assert_eq!(resumed.opt.step_count(), 7);
    assert_eq!(
        serde_json::from_value::<Schedule>(meta.config["schedule"].clone()).unwrap(),
        SCHEDULE
    );
    train(&mut resumed, meta.step, 20, None, None).unwrap();

    assert_same_weights(&snapshot(&straight.vs), &snapshot(&resumed.vs));
    for ((na, a), (nb, b)) in straight
        .opt
        .state_tensors()
        .iter()
        .zip(resumed.opt.state_tensors())
    {
        assert_eq!(*na, nb);
        assert!(a.equal(&b), "optimiser state {na} differs");
    }

    // Dropout is live, so the seeding contract matters: an unseeded resume differs.
    let mut unseeded = build(99, 16);
    Checkpoint::load_latest(dir.path(), &mut unseeded.vs, &mut unseeded.opt).unwrap();
    tch::manual_seed(5);
    let (x, y) = data();
    for step in 7..20 {
        let loss = unseeded
            .net
            .forward_t(&x, true)
            .cross_entropy_for_logits(&y);
        unseeded.opt.set_lr(SCHEDULE.lr_at(step));
        loss.backward();
        unseeded.opt.step().unwrap();
        unseeded.opt.zero_grad();
    }
    let differs = snapshot(&straight.vs)
        .iter()
        .zip(snapshot(&unseeded.vs))
        .any(|((_, a), (_, b))| !a.equal(&b));
    assert!(differs, "dropout randomness should matter");
}

#[test]
fn crash_leftovers_keep_previous_checkpoint_loadable() {
    let _rng = test_support::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut run = build(1, 16);
    let saved = train(&mut run, 0, 7, None, Some((dir.path(), 7))).unwrap();
    let real = dir.path().join("ckpt-00000007.safetensors");
    let bytes = std::fs::read(&real).unwrap();

    // A newer complete checkpoint from a save that died before latest.json was renamed.
    let other = tempfile::tempdir().unwrap();
    train(&mut run, 7, 9, None, Some((other.path(), 9))).unwrap();
    std::fs::copy(
        other.path().join("ckpt-00000009.safetensors"),
        dir.path().join("ckpt-00000009.safetensors"),
    )
    .unwrap();
    // A newer truncated one, a torn temp checkpoint and a torn temp index.
    std::fs::write(
        dir.path().join("ckpt-00000011.safetensors"),
        &bytes[..bytes.len() / 3],
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".tmp-4242-ckpt-00000012.safetensors"),
        &bytes[..100],
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".tmp-4242-latest.json"),
        "{\"format\": 1, \"fi",
    )
    .unwrap();

    let mut fresh = build(99, 16);
    let meta = Checkpoint::load_latest(dir.path(), &mut fresh.vs, &mut fresh.opt)
        .unwrap()
        .unwrap();
    assert_eq!(meta.step, 7);
    assert_same_weights(&saved[0].1, &snapshot(&fresh.vs));

    // The next save cleans every leftover up.
    Checkpoint::save(
        dir.path(),
        &fresh.vs,
        &fresh.opt,
        &CheckpointMeta {
            step: 8,
            ..meta.clone()
        },
    )
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ckpt-00000008.safetensors", "latest.json"]);
    // Re-saving the same step never overwrites the file latest.json names.
    Checkpoint::save(
        dir.path(),
        &fresh.vs,
        &fresh.opt,
        &CheckpointMeta { step: 8, ..meta },
    )
    .unwrap();
    assert_eq!(Checkpoint::read_meta(dir.path()).unwrap().unwrap().step, 8);
    assert!(dir.path().join("ckpt-00000008-1.safetensors").is_file());

    // No latest.json at all: nothing to resume.
    let empty = tempfile::tempdir().unwrap();
    assert!(
        Checkpoint::load_latest(empty.path(), &mut fresh.vs, &mut fresh.opt)
            .unwrap()
            .is_none()
    );
}

#[test]
fn corrupt_or_mismatched_checkpoints_are_errors() {
    let _rng = test_support::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut run = build(1, 16);
    train(&mut run, 0, 3, None, Some((dir.path(), 3))).unwrap();
    let file = dir.path().join("ckpt-00000003.safetensors");
    let good = std::fs::read(&file).unwrap();
    let mut fresh = build(2, 16);
    let before = snapshot(&fresh.vs);

    std::fs::write(&file, &good[..good.len() - 10]).unwrap();
    let e = Checkpoint::load_latest(dir.path(), &mut fresh.vs, &mut fresh.opt)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ckpt-00000003.safetensors")
            && e.contains(&format!("expected {} bytes", good.len())),
        "{e}"
    );

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(&file, &flipped).unwrap();
    let e = Checkpoint::load_latest(dir.path(), &mut fresh.vs, &mut fresh.opt)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ckpt-00000003.safetensors") && e.contains("sha256"),
        "{e}"
    );
    assert_same_weights(&before, &snapshot(&fresh.vs)); // nothing was changed

    std::fs::write(&file, &good).unwrap();
    let latest = dir.path().join("latest.json");
    let index = std::fs::read_to_string(&latest).unwrap();
    std::fs::write(&latest, &index[..index.len() / 2]).unwrap();
    let e = Checkpoint::load_latest(dir.path(), &mut fresh.vs, &mut fresh.opt)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("latest.json") && e.contains("expected a JSON index"),
        "{e}"
    );
    std::fs::write(&latest, &index).unwrap();

    // A file with the right size and hash that is not safetensors.
    let junk = vec![7u8; 64];
    std::fs::write(&file, &junk).unwrap();
    let hex: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&junk)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut v: serde_json::Value = serde_json::from_str(&index).unwrap();
    v["bytes"] = json!(64);
    v["sha256"] = json!(hex);
    std::fs::write(&latest, v.to_string()).unwrap();
    let e = Checkpoint::load_latest(dir.path(), &mut fresh.vs, &mut fresh.opt)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ckpt-00000003.safetensors") && e.contains("expected a safetensors file"),
        "{e}"
    );
    std::fs::write(&latest, &index).unwrap();
    std::fs::write(&file, &good).unwrap();

    // Shape mismatch names the tensor, expected and actual shapes.
    let mut wider = build(2, 32);
    let e = Checkpoint::load_latest(dir.path(), &mut wider.vs, &mut wider.opt).unwrap_err();
    assert!(
        matches!(&e, TrainError::ShapeMismatch { name, expected, actual } if name == "model/fc1.bias" && expected == &vec![32] && actual == &vec![16]),
        "{e}"
    );
    // A tensor the file lacks.
    let mut bigger = build(2, 16);
    let _extra = bigger.vs.root().var("extra", &[2], nn::Init::Const(0.0));
    let mut bigger_opt = AdamW::new(
        &bigger.vs,
        ParamGroup::single(&bigger.vs, 0.0),
        AdamWConfig::default(),
    )
    .unwrap();
    let e = Checkpoint::load_latest(dir.path(), &mut bigger.vs, &mut bigger_opt)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model/extra") && e.contains("missing"), "{e}");

    assert!(
        Checkpoint::load_latest(dir.path(), &mut fresh.vs, &mut fresh.opt)
            .unwrap()
            .is_some()
    );
}

#[test]
fn nan_stops_training_and_last_checkpoint_is_intact() {
    let _rng = test_support::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut run = build(1, 16);
    let mut saved = Vec::new();
    let result = (|| -> Result<()> {
        for chunk in [(0, 2), (2, 4), (4, 6), (6, 8)] {
            saved.extend(train(
                &mut run,
                chunk.0,
                chunk.1,
                Some(5),
                Some((dir.path(), 2)),
            )?);
        }
        Ok(())
    })();
    let e = result.unwrap_err();
    assert!(
        matches!(e, TrainError::NonFinite { step: 5, value } if value.is_nan()),
        "{e}"
    );
    assert!(e.to_string().contains("step 5"), "{e}");

    let mut fresh = build(7, 16);
    let meta = Checkpoint::load_latest(dir.path(), &mut fresh.vs, &mut fresh.opt)
        .unwrap()
        .unwrap();
    assert_eq!(meta.step, 4);
    let last = &saved.last().unwrap().1;
    assert_same_weights(last, &snapshot(&fresh.vs));
    assert!(snapshot(&fresh.vs)
        .iter()
        .all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1));
}
