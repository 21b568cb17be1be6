//! `clip_grad_norm` against hand-computed values and `GradAccumulator`: k micro-batches of
//! size b give the update of one batch of size k*b.

mod common;

use common::{formula, max_abs_diff, snapshot};
use tch::{nn, nn::Module, Device, Kind, Tensor};
use train_kit::{
    clip_grad_norm, try_clip_grad_norm, AdamW, AdamWConfig, GradAccumulator, ParamGroup,
};

#[test]
fn clip_grad_norm_hand_values() {
    let a = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
    let b = Tensor::from_slice(&[5.0f32]).set_requires_grad(true);
    let c = Tensor::from_slice(&[1.0f32]).set_requires_grad(true); // never gets a grad
    let set_grads = || {
        // grad a = [3, 4], grad b = [12]: total norm 13.
        (a.dot(&Tensor::from_slice(&[3.0f32, 4.0])) + &b * 12.0)
            .sum(Kind::Float)
            .backward();
    };
    set_grads();
    let params = vec![a.shallow_clone(), b.shallow_clone(), c.shallow_clone()];
    assert_eq!(clip_grad_norm(&params, 100.0), 13.0);
    assert!(
        a.grad().equal(&Tensor::from_slice(&[3.0f32, 4.0])),
        "no clipping below max_norm"
    );
    let norm = clip_grad_norm(&params[..], 6.5);
    assert!((norm - 13.0).abs() < 1e-6);
    let coef = 6.5 / (13.0 + 1e-6);
    assert!(max_abs_diff(&a.grad(), &Tensor::from_slice(&[3.0 * coef, 4.0 * coef])) < 1e-6);
    assert!(max_abs_diff(&b.grad(), &Tensor::from_slice(&[12.0 * coef])) < 1e-6);
    let total = clip_grad_norm(&params, 6.5);
    assert!((total - 6.5).abs() < 1e-5, "{total}");

    assert!(clip_grad_norm(&params, f64::NAN).is_nan());
    assert!(try_clip_grad_norm(&params, -1.0).is_err());
    assert_eq!(clip_grad_norm(&vec![c], 1.0), 0.0);
}

fn model(kind: Kind) -> (nn::VarStore, nn::Linear) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(kind);
    let lin = nn::linear(vs.root() / "lin", 6, 3, Default::default());
    tch::no_grad(|| {
        let mut w = lin.ws.shallow_clone();
        w.copy_(&formula(&[3, 6], 0.7, 0.1, 0.5, kind));
        let mut b = lin.bs.as_ref().unwrap().shallow_clone();
        b.copy_(&formula(&[3], 1.3, 0.2, 0.1, kind));
    });
    (vs, lin)
}

fn accumulate_equals_big_batch(kind: Kind, tol: f64) {
    let (k, b) = (4i64, 8i64);
    let cfg = AdamWConfig {
        lr: 1e-2,
        ..Default::default()
    };
    let (vs_big, lin_big) = model(kind);
    let (vs_acc, lin_acc) = model(kind);
    let mut opt_big = AdamW::new(&vs_big, ParamGroup::decay_no_decay(&vs_big, 0.05), cfg).unwrap();
    let mut opt_acc = AdamW::new(&vs_acc, ParamGroup::decay_no_decay(&vs_acc, 0.05), cfg).unwrap();
    let mut acc = GradAccumulator::new(k as usize).unwrap();
    let mut worst = 0.0f64;
    for step in 0..3 {
        let x = formula(&[k * b, 6], 0.31, step as f64, 1.0, kind);
        let y = formula(&[k * b, 3], 0.17, 1.0 + step as f64, 1.0, kind);
        lin_big
            .forward(&x)
            .mse_loss(&y, tch::Reduction::Mean)
            .backward();
        opt_big.step().unwrap();
        opt_big.zero_grad();
        for j in 0..k {
            let (xj, yj) = (x.narrow(0, j * b, b), y.narrow(0, j * b, b));
            let stepped = acc
                .backward_step(
                    &lin_acc.forward(&xj).mse_loss(&yj, tch::Reduction::Mean),
                    &mut opt_acc,
                )
                .unwrap();
            assert_eq!(stepped, j == k - 1);
        }
        for ((n, a), (_, c)) in snapshot(&vs_big).iter().zip(snapshot(&vs_acc)) {
            let d = max_abs_diff(a, &c);
            assert!(d <= tol, "{kind:?} step {step} {n}: {d:e}");
            worst = worst.max(d);
        }
    }
    println!(
        "accumulation (k={k}, b={b}) vs batch {} ({kind:?}): max abs diff {worst:e}",
        k * b
    );
    assert_eq!(opt_acc.step_count(), 3);
}

#[test]
fn grad_accumulation_matches_big_batch() {
    accumulate_equals_big_batch(Kind::Double, 1e-6);
    accumulate_equals_big_batch(Kind::Float, 1e-6);
    assert!(GradAccumulator::new(0).is_err());
}
