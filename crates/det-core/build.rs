//! Build script: with the `tch` feature (tensor IoU/NMS, which links libtorch through tch), the
//! libtorch link arguments (rpath, libtorch_cuda) from the torch-build crate. The plain core
//! links nothing.
fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_TCH");
    if std::env::var_os("CARGO_FEATURE_TCH").is_some() {
        torch_build::link();
    }
}
