//! Test helpers: seeded float64 inputs and a central finite-difference gradient check.

use tch::{Device, Kind, Tensor};

/// Uniform-free standard normal `[shape]` float64 values from a fixed seed.
pub(crate) fn rand64(shape: &[i64], seed: i64) -> Tensor {
    let _g = test_support::rng_lock();
    tch::manual_seed(seed);
    Tensor::randn(shape, (Kind::Double, Device::Cpu))
}

/// Checks autograd's gradient of the scalar `f(x)` against central finite differences
/// (step 1e-6, float64) at every element of `x`.
pub(crate) fn fd_check(name: &str, x: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let xg = x.detach().copy().set_requires_grad(true);
    let y = f(&xg);
    let grad = Tensor::run_backward(&[&y], &[&xg], false, false)
        .into_iter()
        .next()
        .unwrap();
    let flat = x.detach().copy().view([-1]);
    let g = Vec::<f64>::try_from(&grad.contiguous().view([-1])).unwrap();
    let h = 1e-6;
    let mut max_err = 0f64;
    for (i, &gi) in g.iter().enumerate() {
        let probe = |delta: f64| {
            let p = flat.copy();
            let _ = p
                .get(i as i64)
                .fill_(flat.double_value(&[i as i64]) + delta);
            f(&p.view(x.size().as_slice())).double_value(&[])
        };
        let fd = (probe(h) - probe(-h)) / (2.0 * h);
        let err = (fd - gi).abs() / (1.0 + fd.abs());
        max_err = max_err.max(err);
    }
    assert!(
        max_err < 1e-5,
        "{name}: gradient vs finite differences: max rel error {max_err:e}"
    );
}
