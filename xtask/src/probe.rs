//! What a python holds: the packages xtask wants, and a probe that imports them and reports
//! versions, errors and torch's folder. A leaf: `venv` builds on it, it knows no venv.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A pip requirement and the module that proves it imports.
#[derive(Debug, Clone, Copy)]
pub struct Pkg {
    /// The requirement as pip takes it (`torch==2.11.0`).
    pub pip: &'static str,
    /// The module whose import proves it is there.
    pub module: &'static str,
}

const fn pkg(pip: &'static str, module: &'static str) -> Pkg {
    Pkg { pip, module }
}

/// What libtorch and the parity tests need.
pub const BASE: &[Pkg] = &[pkg("torch==2.11.0", "torch"), pkg("numpy", "numpy")];
/// The reference implementations the parity tests compare against.
pub const REFERENCES: &[Pkg] = &[
    pkg("torchvision==0.26.0", "torchvision"),
    pkg("timm==1.0.31", "timm"),
    pkg("pycocotools", "pycocotools.mask"),
    // The fastest COCO evaluators, twins of det-core's in `cargo xtask bench`.
    pkg("hotcoco==1.3.0", "hotcoco"),
    pkg("faster-coco-eval==1.8.0", "faster_coco_eval"),
    pkg("torchmetrics", "torchmetrics"),
    pkg("scikit-learn", "sklearn"),
    pkg("pytorch-metric-learning==2.9.0", "pytorch_metric_learning"),
    // Unpinned: the module carries no version for the probe to check (0.1.4 when written).
    pkg("info-nce-pytorch", "info_nce"),
    pkg(
        "segmentation-models-pytorch==0.6.0",
        "segmentation_models_pytorch",
    ),
];

/// [`BASE`], and [`REFERENCES`] when asked for.
pub fn wanted(references: bool) -> Vec<Pkg> {
    BASE.iter()
        .chain(if references { REFERENCES } else { &[] })
        .copied()
        .collect()
}
/// Imports the given modules in `python` and reports versions, errors and torch's folder.
const PROBE: &str = r#"
import importlib, json, os, sys, warnings
warnings.simplefilter("ignore")
r = {"python": "%d.%d" % sys.version_info[:2], "modules": {}, "errors": {}}
for name in sys.argv[1:]:
    try:
        m = importlib.import_module(name)
        r["modules"][name] = str(getattr(m, "__version__", ""))
    except Exception as e:
        r["errors"][name] = "%s: %s" % (type(e).__name__, e)
t = sys.modules.get("torch")
if t is not None:
    r["libtorch"] = os.path.dirname(t.__file__)
    r["cxx11_abi"] = bool(t._C._GLIBCXX_USE_CXX11_ABI)
print(json.dumps(r))
"#;

/// What the probe found in one python.
#[derive(Debug, Default)]
pub struct Probe {
    /// The python's `major.minor`.
    pub python: String,
    /// The modules that imported, with their `__version__`.
    pub modules: BTreeMap<String, String>,
    /// The modules that did not, with the exception.
    pub errors: BTreeMap<String, String>,
    /// torch's folder (libtorch), when torch imported.
    pub libtorch: Option<PathBuf>,
    /// Whether that torch uses the C++11 ABI.
    pub cxx11_abi: Option<bool>,
}

/// Imports the modules of `pkgs` in `python` and reports what it found.
pub fn probe(python: &Path, pkgs: &[Pkg]) -> Result<Probe> {
    let out = Command::new(python)
        .args(["-c", PROBE])
        .args(pkgs.iter().map(|p| p.module))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start {}", python.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_probe(text.lines().last().unwrap_or("")).with_context(|| {
        format!(
            "probing {} failed ({}): {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

pub fn parse_probe(line: &str) -> Result<Probe> {
    let v: serde_json::Value = serde_json::from_str(line).context("no probe result")?;
    let map = |k: &str| -> BTreeMap<String, String> {
        v[k].as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Probe {
        python: v["python"].as_str().unwrap_or("?").to_owned(),
        modules: map("modules"),
        errors: map("errors"),
        libtorch: v["libtorch"].as_str().map(PathBuf::from),
        cxx11_abi: v["cxx11_abi"].as_bool(),
    })
}

impl Probe {
    /// The packages that do not import, or import at another version than the pinned one.
    pub fn missing(&self, pkgs: &[Pkg]) -> Vec<String> {
        let mut out = Vec::new();
        for p in pkgs {
            let pin = p.pip.split_once("==").map(|(_, v)| v);
            match (self.modules.get(p.module), pin) {
                (None, _) => {
                    let why = self
                        .errors
                        .get(p.module)
                        .map(String::as_str)
                        .unwrap_or("not found");
                    out.push(format!("{} ({why})", p.pip));
                }
                (Some(v), Some(pin)) if !v.starts_with(pin) => {
                    out.push(format!("{} (found {v})", p.pip));
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = r#"{"python": "3.11", "modules": {"torch": "2.11.0+cu130", "torchvision": "0.25.0"}, "errors": {"numpy": "ModuleNotFoundError: No module named 'numpy'"}, "libtorch": "/v/lib/python3.11/site-packages/torch", "cxx11_abi": true}"#;

    #[test]
    fn probe_output_tells_what_is_missing_or_at_the_wrong_version() {
        let p = parse_probe(OUT).unwrap();
        assert!(p.missing(&BASE[..1]).is_empty());
        let missing = p.missing(&wanted(true));
        assert_eq!(
            missing[0],
            "numpy (ModuleNotFoundError: No module named 'numpy')"
        );
        assert_eq!(missing[1], "torchvision==0.26.0 (found 0.25.0)");
        assert_eq!(missing[2], "timm==1.0.31 (not found)");
        assert_eq!(
            missing.len(),
            1 + REFERENCES.len(),
            "numpy and every reference"
        );
        assert_eq!(
            p.libtorch,
            Some(PathBuf::from("/v/lib/python3.11/site-packages/torch"))
        );
        assert_eq!(p.cxx11_abi, Some(true));
    }

    #[test]
    fn a_probe_that_printed_no_json_is_an_error() {
        assert!(parse_probe("Traceback ...").is_err());
    }
}
