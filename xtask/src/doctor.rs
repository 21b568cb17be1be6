//! `cargo xtask doctor`: what PyTorch sees, what our build sees, how the repro binary links, and
//! the state of the cache and the data. Installs nothing.

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::data;
use crate::setup::UserVars;
use crate::util::{self, find_on_path, say};
use crate::venv;

const TORCH_VIEW: &str = r#"
import os, sys, warnings
warnings.simplefilter("ignore")
print("  python  %s (%s)" % (sys.executable, sys.version.split()[0]))
try:
    import torch
except Exception as e:
    print("  torch   does not import: %s: %s" % (type(e).__name__, e)); sys.exit(0)
print("  torch   %s at %s (CXX11 ABI %d)" % (torch.__version__, os.path.dirname(torch.__file__), torch._C._GLIBCXX_USE_CXX11_ABI))
print("  built for CUDA %s" % torch.version.cuda if torch.version.cuda else "  built without CUDA (CPU wheel)")
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
print("  CUDA    %s, %d device(s)" % ("available" if n else "not available", n))
for i in range(n):
    print("    cuda:%d %s" % (i, torch.cuda.get_device_name(i)))
try:
    print("  cuDNN   %s" % torch.backends.cudnn.version())
except Exception as e:
    print("  cuDNN   unknown (%s)" % e)
"#;

/// The dynamic section of an ELF file as `readelf -d` prints it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub needed: Vec<String>,
    pub runpath: Vec<String>,
}

pub fn parse_readelf(text: &str) -> Dynamic {
    let mut d = Dynamic::default();
    for line in text.lines() {
        let value = || {
            line.split_once('[')
                .and_then(|(_, r)| r.rsplit_once(']'))
                .map(|(v, _)| v)
        };
        if line.contains("(NEEDED)") {
            d.needed.extend(value().map(str::to_owned));
        } else if line.contains("(RUNPATH)") || line.contains("(RPATH)") {
            d.runpath.extend(
                value()
                    .into_iter()
                    .flat_map(|v| v.split(':'))
                    .map(str::to_owned),
            );
        }
    }
    d
}

/// `ldd` lines as (library, where it resolved; `None` = not found).
pub fn parse_ldd(text: &str) -> Vec<(String, Option<String>)> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.split(" (").next().unwrap_or(rest).trim();
            Some((
                name.to_owned(),
                (path != "not found" && !path.is_empty()).then(|| path.to_owned()),
            ))
        })
        .collect()
}

fn section(title: &str) -> Result<()> {
    Ok(say!("\n{title}")?)
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

pub fn cmd() -> Result<()> {
    let root = util::workspace_root()?;
    let cache = datasets_fetch::cache_root();
    say!(
        "workspace {}\ncache     {}",
        root.display(),
        cache.display()
    )?;

    section("environment")?;
    let user = UserVars::from_env();
    for (k, v) in [
        ("LIBTORCH", &user.libtorch),
        ("LIBTORCH_USE_PYTORCH", &user.use_pytorch),
        ("CVLAB_PYTHON", &user.cvlab_python),
    ] {
        match v {
            Some(v) => say!("  {k}={v} (yours: wins over the venv)")?,
            None => say!("  {k} not set")?,
        }
    }
    if let Some(dir) = user.libtorch.as_deref().map(Path::new) {
        let version = std::fs::read_to_string(dir.join("build-version")).unwrap_or_default();
        let lib = dir.join("lib/libtorch.so").exists();
        let cuda = dir.join("lib/libtorch_cuda.so").exists();
        say!(
            "  your libtorch: version {}, lib/libtorch.so {}, lib/libtorch_cuda.so {}",
            if version.trim().is_empty() {
                "unknown"
            } else {
                version.trim()
            },
            if lib { "present" } else { "MISSING" },
            if cuda { "present" } else { "absent (CPU only)" }
        )?;
    }

    section("PyTorch (python's view)")?;
    match any_python() {
        Some(py) => match output(Command::new(&py).args(["-c", TORCH_VIEW])) {
            Some(text) => cvlab_util::pipe::out(&text)?,
            None => say!("  {} does not run", py.display())?,
        },
        None => say!("  no python: `cargo xtask setup` makes the venv (needs python3)")?,
    }

    let repro = util::target_dir(&root).join("release/repro");
    section(&format!("our build ({})", repro.display()))?;
    if repro.is_file() {
        let mut cmd = Command::new(&repro);
        cmd.arg("doctor").env_remove("LD_LIBRARY_PATH");
        match output(&mut cmd) {
            Some(text) => {
                for l in text.lines() {
                    say!("  {l}")?;
                }
            }
            None => say!("  `repro doctor` did not start")?,
        }
        linkage(&repro)?;
    } else {
        say!("  not built: `cargo xtask reproduce --list` builds it")?;
        say!("  (or: eval \"$(cargo xtask env)\" && cargo build --release -p repro)")?;
    }

    section("cache")?;
    let venv_dir = venv::dir();
    if venv_dir.join("bin/python").exists() {
        say!(
            "  venv  {} ({})",
            venv_dir.display(),
            human(dir_size(&venv_dir))
        )?;
    } else {
        say!(
            "  venv  {} absent (`cargo xtask setup` makes it)",
            venv_dir.display()
        )?;
    }
    match std::fs::read_to_string(venv::stamp_path(&venv_dir)) {
        Ok(text) => {
            let fresh = venv::read_stamp(&venv_dir, false).is_some();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            say!(
                "  stamp torch {}, references {}, {}",
                v["torch_version"].as_str().unwrap_or("?"),
                v["references"].as_bool().unwrap_or(false),
                if fresh {
                    "matches the venv"
                } else {
                    "stale (next setup re-checks)"
                }
            )?;
        }
        Err(_) => say!("  stamp none (setup writes it)")?,
    }

    let data_root = datasets_fetch::default_data_root();
    section(&format!("data ({})", data_root.display()))?;
    for spec in datasets_fetch::ALL {
        say!("  {:<14} {}", spec.name, data::status(spec, &data_root))?;
    }
    Ok(())
}

/// NEEDED list and library resolution of the repro binary, without `LD_LIBRARY_PATH`.
fn linkage(bin: &Path) -> Result<()> {
    match output(Command::new("readelf").arg("-d").arg(bin)) {
        Some(text) => {
            let d = parse_readelf(&text);
            let torch: Vec<_> = d
                .needed
                .iter()
                .filter(|n| n.contains("torch") || n.contains("c10"))
                .collect();
            say!(
                "  NEEDED (torch) {}",
                torch
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )?;
            if d.needed.iter().any(|n| n == "libtorch_cuda.so") {
                say!("  libtorch_cuda.so is NEEDED: CUDA is usable where the driver is")?;
            } else {
                say!("  libtorch_cuda.so is NOT needed: CUDA reads unavailable (CPU libtorch, or a link without torch-build)")?;
            }
            say!(
                "  runpath {}",
                if d.runpath.is_empty() {
                    "none".into()
                } else {
                    d.runpath.join(":")
                }
            )?;
        }
        None => say!("  readelf not found (binutils): NEEDED list unknown")?,
    }
    match output(Command::new("ldd").arg(bin).env_remove("LD_LIBRARY_PATH")) {
        Some(text) => {
            let libs = parse_ldd(&text);
            let missing: Vec<_> = libs
                .iter()
                .filter(|(_, p)| p.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            let torch = libs
                .iter()
                .find(|(n, _)| n == "libtorch_cpu.so" || n == "libtorch.so");
            match torch {
                Some((n, Some(p))) => say!("  without LD_LIBRARY_PATH {n} resolves to {p}")?,
                Some((n, None)) => say!("  without LD_LIBRARY_PATH {n} is NOT found")?,
                None => say!("  ldd lists no libtorch")?,
            }
            if !missing.is_empty() {
                say!("  not found: {}", missing.join(" "))?;
            }
        }
        None => say!("  ldd not found")?,
    }
    Ok(())
}

/// The python used to describe PyTorch when nothing is installed: venv, `CVLAB_PYTHON`, `python3`.
fn any_python() -> Option<PathBuf> {
    let venv_python = venv::dir().join("bin/python");
    let user = UserVars::from_env();
    if user.cvlab_python.is_none() && venv_python.exists() {
        return Some(venv_python);
    }
    user.cvlab_python
        .map(PathBuf::from)
        .or_else(|| find_on_path("python3"))
}

fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

fn human(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readelf_needed_and_runpath() {
        let text = " 0x0000000000000001 (NEEDED)             Shared library: [libtorch_cuda.so]\n \
                    0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n \
                    0x000000000000001d (RUNPATH)            Library runpath: [/v/torch/lib:$ORIGIN]\n";
        let d = parse_readelf(text);
        assert_eq!(d.needed, ["libtorch_cuda.so", "libc.so.6"]);
        assert_eq!(d.runpath, ["/v/torch/lib", "$ORIGIN"]);
    }

    #[test]
    fn ldd_resolved_and_missing() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibtorch_cpu.so => /v/torch/lib/libtorch_cpu.so (0x00007f)\n\tlibc10.so => not found\n";
        assert_eq!(
            parse_ldd(text),
            [
                (
                    "libtorch_cpu.so".to_owned(),
                    Some("/v/torch/lib/libtorch_cpu.so".to_owned())
                ),
                ("libc10.so".to_owned(), None)
            ]
        );
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
