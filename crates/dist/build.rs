//! Build script: compiles `src/shim.cpp` (the C ABI over c10d's TCPStore and ProcessGroupGloo)
//! against the headers of the libtorch that torch-sys found, plus gloo's headers, which the
//! PyTorch wheel does not ship (`cargo xtask setup` installs them into the cache folder), then
//! the libtorch link arguments from torch-build.
//!
//! Gloo's headers are looked for in `CVLAB_GLOO_INCLUDE` (a folder holding `gloo/`), then in
//! `<cache>/gloo-headers/usr/include` (the cache folder of `cargo xtask setup`:
//! `$XDG_CACHE_HOME/cvlab`, else `~/.cache/cvlab`), then in the system's include folder.

use std::path::{Path, PathBuf};

fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("cvlab")
}

fn gloo_include() -> Result<PathBuf, String> {
    let has_gloo = |d: &Path| d.join("gloo").join("algorithm.h").is_file();
    if let Some(dir) = std::env::var_os("CVLAB_GLOO_INCLUDE").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_gloo(&dir) {
            return Ok(dir);
        }
        return Err(format!(
            "CVLAB_GLOO_INCLUDE={} holds no gloo/algorithm.h: expected the folder that contains \
             gloo's headers folder `gloo/`",
            dir.display()
        ));
    }
    let candidates = [
        cache_root()
            .join("gloo-headers")
            .join("usr")
            .join("include"),
        PathBuf::from("/usr/include"),
    ];
    candidates
        .iter()
        .find(|d| has_gloo(d))
        .cloned()
        .ok_or_else(|| {
            format!(
                "gloo's headers (gloo/algorithm.h, needed by c10d's ProcessGroupGloo.hpp and not \
             shipped with the PyTorch wheel) are in none of {}: run `cargo xtask setup` (it \
             installs them into the cache folder) and `eval \"$(cargo xtask env)\"`, or set \
             CVLAB_GLOO_INCLUDE to a folder that holds `gloo/`",
                candidates
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-env-changed=CVLAB_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: torch-sys found no libtorch");
        std::process::exit(1);
    };
    let torch_include = lib
        .parent()
        .map(|root| root.join("include"))
        .unwrap_or_else(|| PathBuf::from("include"));
    let gloo = match gloo_include() {
        Ok(dir) => dir,
        Err(message) => {
            eprintln!("error: {message}");
            println!("cargo:warning={message}");
            std::process::exit(1);
        }
    };
    let abi = match std::env::var("LIBTORCH_CXX11_ABI").as_deref() {
        Ok("0") => "0",
        _ => "1",
    };
    cc::Build::new()
        .cpp(true)
        .file("src/shim.cpp")
        .std("c++17")
        .include(&torch_include)
        .include(
            torch_include
                .join("torch")
                .join("csrc")
                .join("api")
                .join("include"),
        )
        .include(&gloo)
        .define("_GLIBCXX_USE_CXX11_ABI", abi)
        .define("USE_C10D_GLOO", None)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(false)
        .debug(false)
        .compile("cvlab_dist_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=torch_cpu");
    println!("cargo:rustc-link-lib=c10");
    torch_build::link();
}
