//! Loading and saving timm-named weights as safetensors, with a report of what did not fit.
//! Convert a timm checkpoint or a `.pth` state_dict with `tools/convert_timm.py`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tch::{nn, Tensor};

use crate::error::{Result, ViTError};
use crate::model::VisionTransformer;
use crate::pos_embed;

/// How strictly a checkpoint must match the model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Fail on any missing or unexpected tensor (after `skip`).
    pub strict: bool,
    /// Names, or prefixes ending in `.`, left as initialised, e.g. `head.` to fine-tune a
    /// pre-trained trunk on other classes.
    pub skip: Vec<String>,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Loaded from the file, by name.
    pub loaded: Vec<String>,
    /// In the model, not loaded (absent from the file or skipped).
    pub missing: Vec<String>,
    /// In the file, not in the model.
    pub unexpected: Vec<String>,
    /// `pos_embed` resampled from the checkpoint's grid to the model's: (from, to).
    pub resampled: Option<((i64, i64), (i64, i64))>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tensors loaded, {} missing, {} unexpected",
            self.loaded.len(),
            self.missing.len(),
            self.unexpected.len()
        )?;
        if let Some((a, b)) = self.resampled {
            write!(
                f,
                ", pos_embed resampled {}x{} -> {}x{}",
                a.0, a.1, b.0, b.1
            )?;
        }
        for (what, names) in [("missing", &self.missing), ("unexpected", &self.unexpected)] {
            if !names.is_empty() {
                write!(f, "\n  {what}: {}", names.join(", "))?;
            }
        }
        Ok(())
    }
}

/// A patch grid (rows, columns).
type Grid = (i64, i64);

fn skipped(name: &str, skip: &[String]) -> bool {
    skip.iter()
        .any(|s| name == s || (s.ends_with('.') && name.starts_with(s.as_str())))
}

impl VisionTransformer {
    /// Loads a safetensors file into the variables of `vs` (which this model was built in, at
    /// its root). A `pos_embed` made for another square grid is resampled (bicubic, prefix
    /// rows kept); any other shape difference is an error naming the tensor and both shapes.
    pub fn load_safetensors(
        &self,
        vs: &nn::VarStore,
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<LoadReport> {
        let path = path.as_ref();
        let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| ViTError::Checkpoint {
                path: path.into(),
                message: format!("not a readable safetensors file: {e}"),
            })?
            .into_iter()
            .collect();
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        let mut report = LoadReport::default();
        let mut updates = Vec::new();
        for (name, var) in &vars {
            let Some(src) = file.get(name).filter(|_| !skipped(name, &opts.skip)) else {
                report.missing.push(name.clone());
                continue;
            };
            let (want, got) = (var.size(), src.size());
            let src = if want == got {
                src.shallow_clone()
            } else if name == "pos_embed" {
                let (t, from, to) = self.resample_loaded(path, src)?;
                report.resampled = Some((from, to));
                t
            } else {
                return Err(mismatch(path, name, want, got));
            };
            updates.push((var.shallow_clone(), src));
            report.loaded.push(name.clone());
        }
        report.unexpected = file
            .keys()
            .filter(|k| !vars.contains_key(*k))
            .cloned()
            .collect();
        report.unexpected.sort();
        if opts.strict && (!report.missing.is_empty() || !report.unexpected.is_empty()) {
            return Err(ViTError::Checkpoint {
                path: path.into(),
                message: format!("strict load failed: {report}"),
            });
        }
        // Only once everything fits: a failed load leaves the model untouched.
        tch::no_grad(|| {
            for (mut var, src) in updates {
                var.f_copy_(&src)?;
            }
            Ok::<_, tch::TchError>(())
        })?;
        Ok(report)
    }

    fn resample_loaded(&self, path: &Path, src: &Tensor) -> Result<(Tensor, Grid, Grid)> {
        let cfg = self.config();
        let want = vec![1, cfg.pos_embed_len(), cfg.embed_dim];
        let got = src.size();
        let prefix = cfg.pos_embed_len() - cfg.num_patches();
        let n = got.get(1).copied().unwrap_or(0) - prefix;
        let side = (n.max(0) as f64).sqrt().round() as i64;
        if got.len() != 3 || got[0] != 1 || got[2] != cfg.embed_dim || side * side != n || n == 0 {
            return Err(mismatch(path, "pos_embed", want, got));
        }
        let to = cfg.grid_size();
        let t = pos_embed::resample(src, (side, side), to, prefix, cfg.pos_resample)?;
        Ok((t, (side, side), to))
    }
}

fn mismatch(path: &Path, name: &str, expected: Vec<i64>, got: Vec<i64>) -> ViTError {
    ViTError::ShapeMismatch {
        path: path.into(),
        name: name.into(),
        expected,
        got,
    }
}

/// Writes every variable of `vs` to `path` as safetensors, atomically
/// ([`cvlab_util::AtomicFile`]: a temporary file in the same folder, fsync, rename, fsync of the
/// folder), so an interrupted save never leaves a truncated file.
pub fn save_safetensors(vs: &nn::VarStore, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let io = |e: std::io::Error| ViTError::Checkpoint {
        path: path.into(),
        message: e.to_string(),
    };
    let file = cvlab_util::AtomicFile::new(path).map_err(io)?;
    Tensor::write_safetensors(&named, file.tmp_path())?;
    file.commit().map_err(io)
}
