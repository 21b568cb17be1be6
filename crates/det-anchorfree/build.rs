//! Build script: libtorch link arguments (rpath, libtorch_cuda) from the torch-build crate.
fn main() {
    torch_build::link();
}
