//! Build script: libtorch link arguments (rpath, libtorch_cuda) from the torch-build crate, and
//! the libtorch version the reports record.
fn main() {
    torch_build::link();
    torch_build::expose_libtorch_version();
}
