//! Build script: compiles `src/shim.cpp` (the C ABI over c10d's TCPStore and ProcessGroupGloo)
//! against the headers of the libtorch that torch-sys found, plus gloo's headers, which the
//! PyTorch wheel does not ship (`cargo xtask setup` installs them into the cache folder), then
//! the libtorch link arguments from torch-build.
//!
//! Gloo's headers are looked for in `CVLAB_GLOO_INCLUDE` (a folder holding `gloo/`), then in
//! `<cache>/gloo-headers/usr/include` (the cache folder of `cargo xtask setup`:
//! `$XDG_CACHE_HOME/cvlab`, else `~/.cache/cvlab`), then in the system's include folder.
//!
//! With the `nccl` feature, `src/shim_nccl.cpp` (c10d's ProcessGroupNCCL) is compiled too when
//! libtorch has `libtorch_cuda` and the CUDA / NCCL headers are found: in `CVLAB_CUDA_INCLUDE`
//! (folders separated by `:`), the wheel's `nvidia/*/include` folders next to torch, and
//! `<cache>/cuda-headers/nvidia/*/include` (CUDA's crt and CCCL headers, which the wheel lacks,
//! installed by `cargo xtask setup`). The crate then has `cfg(dist_nccl)`; without them the build
//! warns and `Backend::Nccl` reports what was missing (`DIST_NCCL_MISSING`).
//!
//! Under clippy (`RUSTC_WORKSPACE_WRAPPER` is clippy's driver) nothing is linked, so the C++ is
//! not compiled: the headers are still looked for and the same cfg and messages emitted, so the
//! lint sees the crate as a build would, a minute sooner on two cores.

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

/// The include folders of the NCCL shim, or what is missing.
fn nccl_includes(lib: &Path) -> Result<Vec<PathBuf>, String> {
    if !lib.join("libtorch_cuda.so").exists() {
        return Err(format!(
            "libtorch at {} has no libtorch_cuda.so (a CPU-only libtorch)",
            lib.display()
        ));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("CVLAB_CUDA_INCLUDE")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let nvidia_roots = [
        lib.parent()
            .and_then(Path::parent)
            .map(|p| p.join("nvidia")),
        Some(cache_root().join("cuda-headers").join("nvidia")),
    ];
    for root in nvidia_roots.into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("include")))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    let needed = ["nccl.h", "cuda_runtime.h", "crt/host_config.h", "nv/target"];
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|h| !dirs.iter().any(|d| d.join(h).exists()))
        .collect();
    if missing.is_empty() {
        Ok(dirs)
    } else {
        Err(format!(
            "the NCCL shim needs {} in CVLAB_CUDA_INCLUDE or the nvidia/*/include folders (the \
             wheel's nccl and cuda-runtime packages; crt/ and nv/ come from the nvidia-cuda-crt \
             and nvidia-cuda-cccl packages, which `cargo xtask setup` installs into \
             <cache>/cuda-headers)",
            missing.join(", ")
        ))
    }
}

/// A C++17 build of `file` against libtorch's headers with the wheel's ABI.
fn torch_cpp(file: &str, torch_include: &Path, abi: &str) -> cc::Build {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file(file)
        .std("c++17")
        .include(torch_include)
        .include(
            torch_include
                .join("torch")
                .join("csrc")
                .join("api")
                .join("include"),
        )
        .define("_GLIBCXX_USE_CXX11_ABI", abi)
        .warnings(false)
        .debug(false);
    build
}

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-env-changed=CVLAB_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=RUSTC_WORKSPACE_WRAPPER");
    let lint_only =
        std::env::var("RUSTC_WORKSPACE_WRAPPER").is_ok_and(|w| w.contains("clippy-driver"));
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
    let mut shim = torch_cpp("src/shim.cpp", &torch_include, abi);
    shim.include(&gloo)
        .define("USE_C10D_GLOO", None)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations");
    if !lint_only {
        shim.compile("cvlab_dist_shim");
    }
    println!("cargo::rustc-check-cfg=cfg(dist_nccl)");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/shim_nccl.cpp");
    println!("cargo:rerun-if-env-changed=CVLAB_CUDA_INCLUDE");
    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        match nccl_includes(&lib) {
            Ok(dirs) => {
                let mut build = torch_cpp("src/shim_nccl.cpp", &torch_include, abi);
                build
                    .includes(&dirs)
                    .define("USE_C10D_NCCL", None)
                    .define("USE_CUDA", None);
                if !lint_only {
                    build.compile("cvlab_dist_shim_nccl");
                }
                println!("cargo:rustc-cfg=dist_nccl");
                println!("cargo:rustc-link-lib=torch_cuda");
            }
            Err(why) => {
                println!("cargo:warning=dist: feature `nccl` without NCCL: {why}");
                println!("cargo:rustc-env=DIST_NCCL_MISSING={why}");
            }
        }
    }
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=torch_cpu");
    println!("cargo:rustc-link-lib=c10");
    torch_build::link();
}
