fn main() {
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        torch_build::link();
    }
}
