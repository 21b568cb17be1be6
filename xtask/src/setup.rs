//! `cargo xtask setup`: PyTorch 2.11.0 in a venv under the cache folder, for libtorch (tch links
//! the wheel's `torch/lib`) and for the parity tests (`CVLAB_PYTHON`).
//!
//! A user's own `LIBTORCH` or `LIBTORCH_USE_PYTORCH`, and `CVLAB_PYTHON`, win over the venv.
//!
//! Only `setup`, `test`, `reproduce`, `bench` and `bundle` install; `env` reads what is there and,
//! when the venv is missing or incomplete, says what `setup` would install and fails.

use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::util::find_on_path;
use crate::venv::{self, VenvInfo, VenvState};

/// The user's variables that decide where libtorch and the python come from (non-empty only).
#[derive(Debug, Clone, Default)]
pub struct UserVars {
    /// `LIBTORCH`: a libtorch folder.
    pub libtorch: Option<String>,
    /// `LIBTORCH_USE_PYTORCH`: take libtorch from the python's torch.
    pub use_pytorch: Option<String>,
    /// `LIBTORCH_CXX11_ABI`.
    pub cxx11_abi: Option<String>,
    /// `CVLAB_PYTHON`: the python of the parity tests.
    pub cvlab_python: Option<String>,
}

impl UserVars {
    /// The variables as this process sees them.
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        UserVars {
            libtorch: get("LIBTORCH"),
            use_pytorch: get("LIBTORCH_USE_PYTORCH"),
            cxx11_abi: get("LIBTORCH_CXX11_ABI"),
            cvlab_python: get("CVLAB_PYTHON"),
        }
    }

    fn own_libtorch(&self) -> bool {
        self.libtorch.is_some() || self.use_pytorch.is_some()
    }
}

/// What comes from the venv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The venv is needed at all.
    pub venv: bool,
    /// `LIBTORCH` points into the venv.
    pub libtorch_from_venv: bool,
    /// `CVLAB_PYTHON` is the venv's python.
    pub python_from_venv: bool,
}

/// The user's libtorch wins; then the venv serves only a python with torch, and only when the
/// parity tests or the references are asked for. The user's `CVLAB_PYTHON` always wins.
pub fn plan(user: &UserVars, parity: bool, references: bool) -> Plan {
    let libtorch_from_venv = !user.own_libtorch();
    let python_from_venv =
        user.cvlab_python.is_none() && (libtorch_from_venv || parity || references);
    Plan {
        venv: libtorch_from_venv || python_from_venv || references,
        libtorch_from_venv,
        python_from_venv,
    }
}

/// The [`Env`] for a plan (pure: the venv and `python3` from `PATH` are given).
pub fn build_env(
    user: &UserVars,
    plan: &Plan,
    venv: Option<&VenvInfo>,
    path_python3: Option<&Path>,
) -> Env {
    let mut env = Env::default();
    let venv = venv.filter(|_| plan.venv);
    match venv.filter(|_| plan.libtorch_from_venv) {
        Some(v) => {
            env.vars
                .push(("LIBTORCH", v.libtorch.display().to_string()));
            env.vars.push((
                "LIBTORCH_CXX11_ABI",
                if v.cxx11_abi { "1" } else { "0" }.to_owned(),
            ));
        }
        None => {
            let own = [
                ("LIBTORCH", &user.libtorch),
                ("LIBTORCH_USE_PYTORCH", &user.use_pytorch),
                ("LIBTORCH_CXX11_ABI", &user.cxx11_abi),
            ];
            env.kept
                .extend(own.into_iter().filter_map(|(k, v)| Some((k, v.clone()?))));
        }
    }
    match (&user.cvlab_python, venv.filter(|_| plan.python_from_venv)) {
        (Some(p), _) => env.kept.push(("CVLAB_PYTHON", p.clone())),
        (None, Some(v)) => env
            .vars
            .push(("CVLAB_PYTHON", v.python.display().to_string())),
        (None, None) => {
            if let Some(p) = path_python3 {
                env.vars.push(("CVLAB_PYTHON", p.display().to_string()));
            }
        }
    }
    env
}

/// What [`setup`] is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// Also the reference packages (torchvision, timm, …).
    pub references: bool,
    /// The parity tests will run: a python with torch is needed even with the user's libtorch.
    pub parity: bool,
    /// Print the one-line hint about `cargo xtask env`.
    pub announce: bool,
    /// Create the venv and `pip install` what it lacks; when false, a missing or incomplete
    /// venv is an error that says what would be installed (`cargo xtask env`).
    pub install: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            references: false,
            parity: false,
            announce: false,
            install: true,
        }
    }
}

/// Makes sure the venv is there (quick when it is) and returns the [`Env`]; with
/// `install: false` only reads it.
pub fn setup(opts: Opts) -> Result<Env> {
    let user = UserVars::from_env();
    let plan = plan(&user, opts.parity, opts.references);
    let dir = venv::dir();
    let venv = match (plan.venv, opts.install) {
        (false, _) => None,
        (true, true) => {
            Some(venv::ensure(&dir, opts.references).context("setting up the PyTorch venv")?)
        }
        (true, false) => match venv::inspect(&dir, opts.references)? {
            VenvState::Ready(info) => Some(info),
            VenvState::Lacking { missing } => bail!("{}", not_set_up(&dir, &missing)),
        },
    };
    let python3 = find_on_path("python3");
    let mut env = build_env(&user, &plan, venv.as_ref(), python3.as_deref());
    gloo_headers(&mut env, opts.install);
    if plan.libtorch_from_venv {
        if let Some(v) = &venv {
            cuda_headers(&mut env, v, opts.install);
        }
    }
    if !plan.libtorch_from_venv {
        check_user_libtorch(&user);
    }
    if env.get("CVLAB_PYTHON").is_none() {
        eprintln!("xtask: warning: no python3 on PATH and no CVLAB_PYTHON: parity tests will fail");
    }
    if opts.announce {
        eprintln!(
            "xtask: env: {}  (same in your shell: eval \"$(cargo xtask env)\")",
            env.summary()
        );
    }
    Ok(env)
}

/// Where `setup` puts gloo's headers: `<cache>/gloo-headers`, the folder that `CVLAB_GLOO_INCLUDE`
/// then names is its `usr/include` (it holds `gloo/`).
pub fn gloo_dir() -> PathBuf {
    datasets_fetch::cache_root().join("gloo-headers")
}

/// The Debian package with gloo's headers (only headers are used: gloo itself is inside
/// libtorch_cpu).
const GLOO_PACKAGE: &str = "libgloo-dev";

fn has_gloo(include: &Path) -> bool {
    include.join("gloo").join("algorithm.h").is_file()
}

/// The dist crate compiles c10d's `ProcessGroupGloo.hpp`, which includes gloo's headers; the
/// PyTorch wheel does not ship them. The user's `CVLAB_GLOO_INCLUDE` wins; else the cache
/// folder's copy is exported (installed first with `apt-get download` + `dpkg-deb -x`, no root
/// needed, when `install` and the system has none). A failure is a warning: only the dist
/// crate needs them, and its build says what to do.
fn gloo_headers(env: &mut Env, install: bool) {
    if let Some(own) = std::env::var("CVLAB_GLOO_INCLUDE")
        .ok()
        .filter(|v| !v.is_empty())
    {
        env.kept.push(("CVLAB_GLOO_INCLUDE", own));
        return;
    }
    let dir = gloo_dir();
    let include = dir.join("usr").join("include");
    if !has_gloo(&include) && install && !has_gloo(Path::new("/usr/include")) {
        if let Err(e) = install_gloo_headers(&dir) {
            eprintln!(
                "xtask: warning: gloo's headers (for the dist crate) not installed: {e:#}; \
                 install the {GLOO_PACKAGE} package or set CVLAB_GLOO_INCLUDE to a folder that \
                 holds gloo/"
            );
        }
    }
    if has_gloo(&include) {
        env.vars
            .push(("CVLAB_GLOO_INCLUDE", include.display().to_string()));
    }
}

/// `apt-get download libgloo-dev` and `dpkg-deb -x` into `dir` (through a temporary folder
/// next to it, renamed at the end so that a broken run leaves no half folder).
fn install_gloo_headers(dir: &Path) -> Result<()> {
    for tool in ["apt-get", "dpkg-deb"] {
        if find_on_path(tool).is_none() {
            bail!("no {tool} on PATH (a Debian or Ubuntu system has it)");
        }
    }
    eprintln!(
        "xtask: gloo's headers (the {GLOO_PACKAGE} package, unpacked without root) into {}",
        dir.display()
    );
    let tmp = dir.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    crate::util::run(
        std::process::Command::new("apt-get")
            .args(["download", GLOO_PACKAGE])
            .stdout(crate::util::to_stderr())
            .current_dir(&tmp),
    )?;
    let deb = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", tmp.display()))?;
    let unpacked = tmp.join("root");
    crate::util::run(
        std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&unpacked),
    )?;
    if !has_gloo(&unpacked.join("usr").join("include")) {
        bail!("{} holds no usr/include/gloo/algorithm.h", deb.display());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::rename(&unpacked, dir)
        .with_context(|| format!("moving the headers to {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Where `setup` puts CUDA's crt and CCCL headers for the dist crate's `nccl` feature.
pub fn cuda_headers_dir() -> PathBuf {
    datasets_fetch::cache_root().join("cuda-headers")
}

/// The pip packages with the CUDA 13.0 headers that c10d's `ProcessGroupNCCL.hpp` includes
/// through `cuda_runtime.h` and the wheel's `nvidia-cuda-runtime` lacks (`crt/`, `nv/target`).
const CUDA_HEADER_PACKAGES: [&str; 2] = ["nvidia-cuda-crt==13.0.*", "nvidia-cuda-cccl==13.0.*"];

/// For the dist crate's `nccl` feature (clippy's `--all-features` builds it too): when the
/// venv's torch is a CUDA 13 wheel whose headers lack `crt/host_config.h`, installs the two
/// header packages into `<cache>/cuda-headers` (`pip install --target`, not into the venv) and
/// exports `CVLAB_CUDA_INCLUDE`. The user's own value wins; a failure is a warning (the
/// feature's build then says what is missing).
fn cuda_headers(env: &mut Env, venv: &VenvInfo, install: bool) {
    if let Some(own) = std::env::var("CVLAB_CUDA_INCLUDE")
        .ok()
        .filter(|v| !v.is_empty())
    {
        env.kept.push(("CVLAB_CUDA_INCLUDE", own));
        return;
    }
    let Some(nvidia) = venv.libtorch.parent().map(|p| p.join("nvidia")) else {
        return;
    };
    let runtime = nvidia.join("cu13").join("include");
    if !runtime.join("cuda_runtime.h").is_file() || runtime.join("crt/host_config.h").is_file() {
        return;
    }
    let dir = cuda_headers_dir();
    let include = dir.join("nvidia").join("cu13").join("include");
    let ready = |i: &Path| i.join("crt/host_config.h").is_file() && i.join("nv/target").is_file();
    if !ready(&include) && install {
        eprintln!(
            "xtask: CUDA's crt and CCCL headers (for the dist crate's nccl feature) into {}",
            dir.display()
        );
        let mut cmd = std::process::Command::new(&venv.python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--upgrade",
            "--target",
        ])
        .arg(&dir)
        .args(CUDA_HEADER_PACKAGES)
        .stdin(std::process::Stdio::null())
        .stdout(crate::util::to_stderr());
        if let Err(e) = crate::util::run(&mut cmd) {
            eprintln!("xtask: warning: CUDA headers not installed: {e:#}");
        }
    }
    if ready(&include) {
        env.vars
            .push(("CVLAB_CUDA_INCLUDE", include.display().to_string()));
    }
}

/// Warns (only) about a user `LIBTORCH` that does not look like libtorch 2.11.
fn check_user_libtorch(user: &UserVars) {
    let Some(dir) = user.libtorch.as_deref().map(Path::new) else {
        return;
    };
    if !dir.join("lib").is_dir() {
        eprintln!(
            "xtask: warning: LIBTORCH={} has no lib/ folder",
            dir.display()
        );
    }
    if let Ok(v) = std::fs::read_to_string(dir.join("build-version")) {
        if !v.trim().starts_with(venv::TORCH_VERSION) {
            eprintln!(
                "xtask: warning: LIBTORCH={} is libtorch {}, tch 0.24 needs {}",
                dir.display(),
                v.trim(),
                venv::TORCH_VERSION
            );
        }
    }
}

/// Why `cargo xtask env` printed nothing: what `setup` would install, and where.
pub fn not_set_up(dir: &Path, missing: &[String]) -> String {
    let torch = if missing.iter().any(|m| m.starts_with("torch==")) {
        " (PyTorch with its CUDA dependencies is about 4.6 GB, a few minutes once)"
    } else {
        ""
    };
    format!(
        "the PyTorch venv {} lacks: {}{torch}. `cargo xtask env` installs nothing: run \
         `cargo xtask setup` first (or set LIBTORCH to your own libtorch {} folder)",
        dir.display(),
        missing.join(", "),
        venv::TORCH_VERSION
    )
}

/// `cargo xtask setup`.
pub fn cmd(references: bool) -> Result<()> {
    setup(Opts {
        references,
        parity: references,
        announce: true,
        install: true,
    })?;
    eprintln!(
        "xtask: setup done (cache {})",
        datasets_fetch::cache_root().display()
    );
    Ok(())
}

/// `cargo xtask env`: `export` lines for `eval "$(cargo xtask env)"`. Installs nothing: without
/// a complete venv it fails naming what `cargo xtask setup` would install.
pub fn env_cmd(references: bool) -> Result<()> {
    let env = setup(Opts {
        references,
        parity: references,
        announce: false,
        install: false,
    });
    match env {
        Ok(env) => Ok(cvlab_util::pipe::out(&env.exports())?),
        Err(e) => {
            // Read by `eval "$(cargo xtask env)" && cargo build`: make the `&&` stop there
            // instead of a minute of compiling that ends in torch-sys's "Cannot find a libtorch
            // install".
            if !std::io::stdout().is_terminal() {
                cvlab_util::pipe::out("false # cargo xtask env failed: see its error\n")?;
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venv() -> VenvInfo {
        VenvInfo {
            python: "/c/venv/bin/python".into(),
            torch_version: "2.11.0+cu130".into(),
            libtorch: "/c/venv/lib/python3.11/site-packages/torch".into(),
            cxx11_abi: true,
        }
    }

    fn user(libtorch: bool, use_pytorch: bool, python: bool) -> UserVars {
        UserVars {
            libtorch: libtorch.then(|| "/opt/libtorch".into()),
            use_pytorch: use_pytorch.then(|| "1".into()),
            cxx11_abi: None,
            cvlab_python: python.then(|| "/usr/bin/mypython".into()),
        }
    }

    fn flags(p: &Plan) -> (bool, bool, bool) {
        (p.venv, p.libtorch_from_venv, p.python_from_venv)
    }

    #[test]
    fn no_user_vars_means_everything_from_the_venv() {
        let u = user(false, false, false);
        let p = plan(&u, false, false);
        assert_eq!(flags(&p), (true, true, true));
        let env = build_env(&u, &p, Some(&venv()), Some(Path::new("/usr/bin/python3")));
        assert_eq!(
            env.get("LIBTORCH"),
            Some("/c/venv/lib/python3.11/site-packages/torch")
        );
        assert_eq!(env.get("LIBTORCH_CXX11_ABI"), Some("1"));
        assert_eq!(env.get("CVLAB_PYTHON"), Some("/c/venv/bin/python"));
        assert!(env.kept.is_empty());
    }

    #[test]
    fn user_libtorch_wins_and_skips_the_venv_without_parity() {
        for u in [user(true, false, false), user(false, true, false)] {
            let p = plan(&u, false, false);
            assert_eq!(flags(&p), (false, false, false));
            let env = build_env(&u, &p, None, Some(Path::new("/usr/bin/python3")));
            assert!(
                env.vars.iter().all(|(k, _)| !k.starts_with("LIBTORCH")),
                "{env:?}"
            );
            assert_eq!(env.get("CVLAB_PYTHON"), Some("/usr/bin/python3"));
        }
        let u = user(true, false, false);
        let env = build_env(&u, &plan(&u, false, false), None, None);
        assert_eq!(env.kept, vec![("LIBTORCH", "/opt/libtorch".to_owned())]);
    }

    #[test]
    fn user_libtorch_with_parity_uses_the_venv_python_only() {
        let u = user(true, false, false);
        for (parity, references) in [(true, false), (false, true)] {
            let p = plan(&u, parity, references);
            assert_eq!(flags(&p), (true, false, true));
            let env = build_env(&u, &p, Some(&venv()), Some(Path::new("/usr/bin/python3")));
            assert_eq!(env.get("LIBTORCH"), Some("/opt/libtorch"));
            assert!(env.vars.iter().all(|(k, _)| !k.starts_with("LIBTORCH")));
            assert_eq!(env.get("CVLAB_PYTHON"), Some("/c/venv/bin/python"));
        }
    }

    #[test]
    fn user_cvlab_python_always_wins() {
        let u = user(true, false, true);
        let p = plan(&u, true, false);
        assert!(!p.venv);
        let env = build_env(&u, &p, None, Some(Path::new("/usr/bin/python3")));
        assert_eq!(env.get("CVLAB_PYTHON"), Some("/usr/bin/mypython"));
        assert!(env.vars.is_empty());
        // Without a user libtorch the venv still gives libtorch, not the python.
        let u = user(false, false, true);
        let p = plan(&u, true, true);
        assert_eq!(flags(&p), (true, true, false));
        let env = build_env(&u, &p, Some(&venv()), None);
        assert_eq!(env.get("CVLAB_PYTHON"), Some("/usr/bin/mypython"));
        assert!(env.get("LIBTORCH").is_some());
    }
}
