//! Helpers shared by the integration tests: deterministic parameters and losses from
//! formulas (no RNG), and comparisons.
#![allow(dead_code)]

use serde_json::Value;
use tch::{nn, Device, Kind, Tensor};

/// Deterministic values `sin(freq * i + phase) * scale` of the given shape.
pub fn formula(shape: &[i64], freq: f64, phase: f64, scale: f64, kind: Kind) -> Tensor {
    let n: i64 = shape.iter().product();
    ((Tensor::arange(n, (Kind::Double, Device::Cpu)) * freq + phase).sin() * scale)
        .view(shape)
        .to_kind(kind)
}

/// A small ViT-shaped set of variables (names follow timm: cls_token, pos_embed,
/// blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.{weight,bias}, norm, head).
pub fn vit_like(vs: &nn::VarStore, d: i64, depth: i64, kind: Kind) -> Vec<(String, Tensor)> {
    let mut specs: Vec<(String, Vec<i64>)> = vec![
        ("patch_embed.proj.weight".into(), vec![d, 3 * 4 * 4]),
        ("patch_embed.proj.bias".into(), vec![d]),
        ("cls_token".into(), vec![1, 1, d]),
        ("pos_embed".into(), vec![1, 5, d]),
    ];
    for b in 0..depth {
        let p = format!("blocks.{b}");
        for (n, s) in [
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.proj.weight", vec![d, d]),
            ("attn.proj.bias", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
            ("mlp.fc1.weight", vec![4 * d, d]),
            ("mlp.fc1.bias", vec![4 * d]),
            ("mlp.fc2.weight", vec![d, 4 * d]),
            ("mlp.fc2.bias", vec![d]),
        ] {
            specs.push((format!("{p}.{n}"), s));
        }
    }
    specs.push(("norm.weight".into(), vec![d]));
    specs.push(("norm.bias".into(), vec![d]));
    specs.push(("head.weight".into(), vec![10, d]));
    specs.push(("head.bias".into(), vec![10]));
    specs
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let init = formula(&shape, 0.013 * (k as f64 + 1.0), 0.1 * k as f64, 0.2, kind);
            let t = var_at(&vs.root(), &name, &init);
            (name, t)
        })
        .collect()
}

/// `sum_k sum(0.15 p^2 + p * sin(0.37 i + 0.11 t + k))`: grad = 0.3 p + sin(...).
pub fn formula_loss(params: &[(String, Tensor)], t: i64) -> Tensor {
    let mut loss = Tensor::zeros([], (params[0].1.kind(), Device::Cpu));
    for (k, (_, p)) in params.iter().enumerate() {
        let idx =
            Tensor::arange(p.numel() as i64, (Kind::Double, Device::Cpu)).view(p.size().as_slice());
        let s = (idx * 0.37 + 0.11 * t as f64 + k as f64)
            .sin()
            .to_kind(p.kind());
        loss += (p * p * 0.15 + p * s).sum(p.kind());
    }
    loss
}

/// Max |a - b| over all elements.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// Snapshot (deep copies) of variables by name.
pub fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, deep_copy(&t)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A copy with its own storage, detached from autograd.
pub fn deep_copy(t: &Tensor) -> Tensor {
    let mut c = t.detach().empty_like();
    c.copy_(&t.detach());
    c
}

/// `var_copy` of a dotted name (`a.b.c`) through sub-paths.
pub fn var_at(root: &nn::Path, name: &str, init: &Tensor) -> Tensor {
    fn go(p: &nn::Path, parts: &[&str], init: &Tensor) -> Tensor {
        match parts {
            [last] => p.var_copy(last, init),
            [first, rest @ ..] => go(&p.sub(*first), rest, init),
            [] => unreachable!(),
        }
    }
    go(root, &name.split('.').collect::<Vec<_>>(), init)
}

/// The parity scripts' three tensors, in their order.
pub const PARITY_ORDER: [&str; 3] = ["w1", "b1", "w3"];

/// Initial value `i` of the parity problem's tensor `name` (the scripts' `INIT` formulas).
fn parity_init(name: &str, i: f64) -> f64 {
    match name {
        "w1" => (0.1 * i + 0.3).sin(),
        "b1" => (0.2 * i).cos(),
        _ => 0.05 * i - 0.3,
    }
}

/// Builds the parity scripts' problem (shapes from `doc["shapes"]`) in a float64 VarStore.
pub fn parity_problem(doc: &Value) -> (nn::VarStore, Vec<(String, Tensor)>) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    let mut params = Vec::new();
    for name in PARITY_ORDER {
        let shape: Vec<i64> = doc["shapes"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_i64().unwrap())
            .collect();
        let n: i64 = shape.iter().product();
        let vals: Vec<f64> = (0..n).map(|i| parity_init(name, i as f64)).collect();
        let t = vs
            .root()
            .var_copy(name, &Tensor::from_slice(&vals).view(shape.as_slice()));
        assert_eq!(t.kind(), Kind::Double);
        params.push((name.to_owned(), t));
    }
    (vs, params)
}
