//! Build script: with the `torch` feature, the libtorch link arguments (rpath, libtorch_cuda)
//! from the torch-build crate; the plain-Rust build links nothing.
fn main() {
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        torch_build::link();
    }
}
