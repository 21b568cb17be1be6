fn main() {
    torch_build::link();
    torch_build::expose_libtorch_version();
}
