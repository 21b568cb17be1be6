//! Loading torchvision-named weights from safetensors into a module built under some
//! `nn::Path`, with a report of what did not fit. A torchvision state dict is written to
//! safetensors with `safetensors.torch.save_file(model.state_dict(), path)` (see
//! `tests/parity/pyramid_reference.py`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tch::{nn, Tensor};

use crate::error::{PyramidError, Result};

/// How strictly a checkpoint must match the model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Fail on any missing or unexpected tensor (after `skip`).
    pub strict: bool,
    /// Names, or prefixes ending in `.`, left as initialised (file names, e.g. `fc.`).
    pub skip: Vec<String>,
    /// A prefix of the file's names that belongs to this module (`backbone.body.` for the trunk
    /// inside a torchvision detector's state dict); names without it are unexpected.
    pub file_prefix: String,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Loaded from the file, by the module's own (unprefixed) name.
    pub loaded: Vec<String>,
    /// In the model, not loaded (absent from the file or skipped).
    pub missing: Vec<String>,
    /// In the file, not in the model (torchvision's `fc.` of a classifier, ...).
    pub unexpected: Vec<String>,
    /// In the file and deliberately not used: BatchNorm's `num_batches_tracked` counters.
    pub ignored: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tensors loaded, {} missing, {} unexpected, {} ignored",
            self.loaded.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.ignored.len()
        )?;
        for (what, names) in [("missing", &self.missing), ("unexpected", &self.unexpected)] {
            if !names.is_empty() {
                write!(f, "\n  {what}: {}", names.join(", "))?;
            }
        }
        Ok(())
    }
}

fn skipped(name: &str, skip: &[String]) -> bool {
    skip.iter()
        .any(|s| name == s || (s.ends_with('.') && name.starts_with(s.as_str())))
}

/// The `nn::Path` prefix (`a.b.`, or empty at the root) of variables built under `p`.
pub(crate) fn path_prefix(p: &nn::Path) -> String {
    let parts: Vec<&str> = p.components().collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}.", parts.join("."))
    }
}

/// Reads a safetensors file as a name -> tensor map.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path)
        .map_err(|e| PyramidError::Checkpoint {
            path: path.into(),
            message: format!("not a readable safetensors file: {e}"),
        })?
        .into_iter()
        .collect())
}

/// Copies the tensors of `file` into the variables of `vs` whose names start with
/// `var_prefix` (stripped before matching). Every shape is checked before anything is
/// written: a failed load leaves the model untouched.
pub(crate) fn load_named(
    vs: &nn::VarStore,
    var_prefix: &str,
    path: &Path,
    file: &HashMap<String, Tensor>,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let vars: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(var_prefix).map(|s| (s.to_string(), v)))
        .collect();
    let mut report = LoadReport::default();
    let mut updates = Vec::new();
    for (name, var) in &vars {
        let key = format!("{}{name}", opts.file_prefix);
        let Some(src) = file.get(&key).filter(|_| !skipped(&key, &opts.skip)) else {
            report.missing.push(name.clone());
            continue;
        };
        if var.size() != src.size() {
            return Err(PyramidError::ShapeMismatch {
                path: path.into(),
                name: key,
                expected: var.size(),
                got: src.size(),
            });
        }
        updates.push((var.shallow_clone(), src.shallow_clone()));
        report.loaded.push(name.clone());
    }
    for k in file.keys() {
        let Some(own) = k.strip_prefix(opts.file_prefix.as_str()) else {
            continue;
        };
        if vars.contains_key(own) {
            continue;
        }
        if own.ends_with("num_batches_tracked") {
            report.ignored.push(k.clone());
        } else if !k.starts_with("__") {
            report.unexpected.push(k.clone());
        }
    }
    report.unexpected.sort();
    report.ignored.sort();
    if opts.strict && (!report.missing.is_empty() || !report.unexpected.is_empty()) {
        return Err(PyramidError::Checkpoint {
            path: path.into(),
            message: format!("strict load failed: {report}"),
        });
    }
    tch::no_grad(|| {
        for (mut var, src) in updates {
            var.f_copy_(&src.to_device(var.device()).to_kind(var.kind()))?;
        }
        Ok::<_, tch::TchError>(())
    })?;
    Ok(report)
}
