//! Link arguments for a binary on libtorch: keep libtorch_cuda, rpath to libtorch (torch-build).

fn main() {
    torch_build::link();
}
