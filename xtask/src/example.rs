//! The `example` stage of `cargo xtask test`: `examples/use-vit-core`, a project outside the
//! workspace that uses vit-core as a newcomer would (the `Cargo.toml` and `build.rs` the README
//! shows), copied to a temporary folder with its path dependencies pointed at this checkout,
//! built and run without `LD_LIBRARY_PATH`. It shares the workspace's `target/` and release
//! profile, so torch-sys (libtorch's C++ wrapper, the long part) is not built again.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::doctor::parse_readelf;
use crate::env::Env;
use crate::util::{self, cargo_program};

/// The example project, relative to the workspace root.
pub const DIR: &str = "examples/use-vit-core";
/// What its run must print: timm's parameter count of `vit_tiny_patch16_224`, built and counted.
pub const EXPECTED: &[&str] = &["logits [2, 1000]", "parameters 5717416"];

/// The example's `Cargo.toml` with each `path = "../../…"` made absolute under `root`.
pub fn rewrite_paths(manifest: &str, root: &Path) -> String {
    let root = root.display().to_string();
    manifest.replace("path = \"../../", &format!("path = \"{root}/"))
}

/// The settings of the workspace manifest's `[profile.release]` and its sub-tables
/// (`[profile.release.package."*"]`, `build-override`) as `--config` arguments
/// (`profile.release.debug="line-tables-only"`, `profile.release.package."*".debug=false`): a
/// project outside the workspace gets none of them, and any difference would rebuild every
/// dependency, torch-sys's C++ wrapper with it.
pub fn release_profile(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut table: Option<&str> = None;
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let name = header.trim_end_matches(']').trim();
            table =
                (name == "profile.release" || name.starts_with("profile.release.")).then_some(name);
        } else if let Some(t) = table.filter(|_| !line.is_empty() && !line.starts_with('#')) {
            if let Some((k, v)) = line.split_once('=') {
                out.push(format!("{t}.{}={}", k.trim(), v.trim()));
            }
        }
    }
    out
}

/// Copies the example, builds and runs it; fails when it does not print [`EXPECTED`].
pub fn run(env: &Env, root: &Path) -> Result<()> {
    let src = root.join(DIR);
    let tmp = std::env::temp_dir().join(format!("cvlab-use-vit-core-{}", std::process::id()));
    let result = copy(&src, &tmp, root).and_then(|()| build_and_run(env, root, &tmp));
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn copy(src: &Path, tmp: &Path, root: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(tmp);
    fs::create_dir_all(tmp.join("src")).with_context(|| format!("creating {}", tmp.display()))?;
    let read =
        |p: PathBuf| fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()));
    let write = |p: PathBuf, text: &str| {
        fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write(
        tmp.join("Cargo.toml"),
        &rewrite_paths(&read(src.join("Cargo.toml"))?, root),
    )?;
    write(tmp.join("build.rs"), &read(src.join("build.rs"))?)?;
    write(tmp.join("src/main.rs"), &read(src.join("src/main.rs"))?)?;
    // The workspace's lock: the same versions of tch's dependencies, so nothing is rebuilt.
    write(tmp.join("Cargo.lock"), &read(root.join("Cargo.lock"))?)
}

fn build_and_run(env: &Env, root: &Path, tmp: &Path) -> Result<()> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let mut cmd = Command::new(cargo_program());
    env.apply(&mut cmd)
        .current_dir(tmp)
        .env("CARGO_TARGET_DIR", util::target_dir(root))
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ]);
    for setting in release_profile(&manifest) {
        cmd.args(["--config", &setting]);
    }
    let json = util::run_stdout(&mut cmd).context("building the example")?;
    let exe = util::bin_executable(&json, "use-vit-core")
        .context("cargo reported no `use-vit-core` executable")?;
    check_linkage(env, &exe)?;
    // Without LD_LIBRARY_PATH: the rpath from torch-build must find libtorch.
    let out = util::run_stdout(Command::new(&exe).env_remove("LD_LIBRARY_PATH"))
        .context("running the example")?;
    eprint!("{out}");
    let missing: Vec<_> = EXPECTED.iter().filter(|e| !out.contains(*e)).collect();
    if !missing.is_empty() {
        bail!("{DIR} printed no {missing:?}");
    }
    Ok(())
}

/// Where the libtorch in use has `libtorch_cuda.so`, the binary must need it (torch-build's
/// `--no-as-needed`), or CUDA would read unavailable on a GPU machine.
fn check_linkage(env: &Env, exe: &Path) -> Result<()> {
    let Some(lib) = env.get("LIBTORCH").map(|t| Path::new(t).join("lib")) else {
        return Ok(()); // the user's LIBTORCH_USE_PYTORCH: the folder is not known here
    };
    if !lib.join("libtorch_cuda.so").exists() {
        return Ok(());
    }
    let Ok(out) = Command::new("readelf").arg("-d").arg(exe).output() else {
        eprintln!("xtask: readelf not found (binutils): libtorch_cuda linkage not checked");
        return Ok(());
    };
    let dynamic = parse_readelf(&String::from_utf8_lossy(&out.stdout));
    if !dynamic.needed.iter().any(|n| n == "libtorch_cuda.so") {
        bail!(
            "{} does not need libtorch_cuda.so although {} has it: the example's build.rs \
             must call torch_build::link()",
            exe.display(),
            lib.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fenced block that follows `label` in `text` (the README's copyable files).
    fn block_after<'a>(text: &'a str, label: &str) -> Option<&'a str> {
        let rest = &text[text.find(label)? + label.len()..];
        let body = &rest[rest.find("```")?..];
        let body = &body[body.find('\n')? + 1..];
        Some(&body[..body.find("```")?])
    }

    /// `text` without its leading `//!` header and `#` comment lines and the blank line after them.
    fn without_header(text: &str) -> String {
        let mut lines = text
            .lines()
            .skip_while(|l| l.starts_with("//!") || l.starts_with('#') && !l.starts_with("#["))
            .peekable();
        if lines.peek() == Some(&"") {
            lines.next();
        }
        lines.map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn paths_point_at_the_checkout() {
        let m = "vit-core = { path = \"../../crates/vit-core\" }\ntch = \"=0.24.0\"\n";
        assert_eq!(
            rewrite_paths(m, Path::new("/w")),
            "vit-core = { path = \"/w/crates/vit-core\" }\ntch = \"=0.24.0\"\n"
        );
    }

    #[test]
    fn the_release_profile_becomes_config_arguments() {
        let m = "[workspace]\nresolver = \"2\"\n\n[profile.release]\n# why\ndebug = \"line-tables-only\"\n\n[profile.bench]\nlto = true\n\n[profile.release.package.\"*\"]\ndebug = false\n\n[profile.release.build-override]\nopt-level = 0\n";
        assert_eq!(
            release_profile(m),
            [
                "profile.release.debug=\"line-tables-only\"",
                "profile.release.package.\"*\".debug=false",
                "profile.release.build-override.opt-level=0"
            ]
        );
    }

    #[test]
    #[ignore = "builds vit-core and tch in release (minutes): the `example` stage of `cargo xtask test`"]
    fn the_example_builds_and_runs() {
        let env = crate::setup::setup(crate::setup::Opts {
            install: false,
            ..Default::default()
        })
        .unwrap();
        run(&env, &util::workspace_root().unwrap()).unwrap();
    }

    #[test]
    fn the_readme_shows_the_example_files() {
        let root = util::workspace_root().unwrap();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        let file = |name: &str| fs::read_to_string(root.join(DIR).join(name)).unwrap();
        for (label, name) in [
            ("`src/main.rs`:", "src/main.rs"),
            ("`build.rs`:", "build.rs"),
        ] {
            let shown = block_after(&readme, label).unwrap_or_else(|| panic!("README: {label}"));
            assert_eq!(
                shown,
                without_header(&file(name)),
                "README's {name} vs {DIR}/{name}"
            );
        }
        // Cargo.toml: the same dependencies, with the checkout at ../cvlab instead of ../..
        let shown = block_after(&readme, "outside the workspace. `Cargo.toml`:").unwrap();
        let deps = |t: &str| t[t.find("[dependencies]").unwrap()..].to_owned();
        assert_eq!(
            deps(shown).replace("../cvlab/", "../../"),
            deps(&file("Cargo.toml")),
            "README's Cargo.toml vs {DIR}/Cargo.toml"
        );
    }

    #[test]
    fn the_example_uses_relative_paths_the_rewrite_knows() {
        let root = util::workspace_root().unwrap();
        let manifest = fs::read_to_string(root.join(DIR).join("Cargo.toml")).unwrap();
        let rewritten = rewrite_paths(&manifest, &root);
        assert!(!rewritten.contains("\"../"), "{rewritten}");
        for dep in ["crates/vit-core", "crates/torch-build"] {
            assert!(
                rewritten.contains(&format!("{}/{dep}", root.display())),
                "{dep}"
            );
        }
    }
}
