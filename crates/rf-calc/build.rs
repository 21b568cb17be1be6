//! Build script: with the `erf` feature (which links libtorch through tch), the libtorch link
//! arguments (rpath, libtorch_cuda) from the torch-build crate. The plain core links nothing.
fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_ERF");
    if std::env::var_os("CARGO_FEATURE_ERF").is_some() {
        torch_build::link();
    }
}
