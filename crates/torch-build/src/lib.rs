//! Build-script helper for every crate of the workspace that produces binaries, tests or benches
//! linking libtorch.
//!
//! Two problems of a plain `tch` build are fixed here:
//! - the linker drops `libtorch_cuda` because no symbol of it is referenced directly, so
//!   `Cuda::is_available()` reads false on a GPU machine (tch-rs issues 177 and 907). `-C link-arg`
//!   flags land after the libraries, where `--no-as-needed` does nothing; a build script's
//!   `rustc-link-arg` pair `-Wl,--no-as-needed -ltorch_cuda` keeps it;
//! - binaries would need `LD_LIBRARY_PATH` to find libtorch: an rpath to the lib folder that
//!   torch-sys linked against removes that need.
//!
//! `rustc-link-arg` does not propagate from a dependency, so each crate calls [`link`] from its own
//! `build.rs` and names `torch-sys` as a direct dependency (which makes cargo pass
//! `DEP_TCH_LIBTORCH_LIB`, the folder torch-sys found).

use std::path::PathBuf;

/// Emits the link arguments described in the crate docs. Call from `build.rs`.
pub fn link() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        println!(
            "cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: add `torch-sys` to [dependencies] \
             of this crate so that its build script sees the libtorch folder"
        );
        return;
    };
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    if target_os == "linux" && lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Exposes the libtorch version found by torch-sys to the crate as the compile-time env var
/// `CVLAB_LIBTORCH_VERSION` (read from the python package's `version.py` or a standalone
/// libtorch's `build-version`; `unknown` when neither is there). Call from `build.rs`.
pub fn expose_libtorch_version() {
    let version = std::env::var_os("DEP_TCH_LIBTORCH_LIB")
        .map(PathBuf::from)
        .and_then(|lib| {
            let root = lib.parent()?.to_path_buf();
            let from_py = std::fs::read_to_string(root.join("version.py"))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("__version__"))
                        .map(|v| {
                            v.trim_matches(|c: char| c == ' ' || c == '=' || c == '\'' || c == '"')
                                .to_owned()
                        })
                });
            from_py.or_else(|| {
                std::fs::read_to_string(root.join("build-version"))
                    .ok()
                    .map(|t| t.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CVLAB_LIBTORCH_VERSION={version}");
}
