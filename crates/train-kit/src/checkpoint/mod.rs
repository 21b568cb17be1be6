//! Checkpoints: model weights and [`Optimizer`] state in ONE safetensors file plus a JSON index,
//! written so that a crash at any point leaves the previous checkpoint loadable.
//!
//! Layout of a checkpoint folder:
//! - `ckpt-<step:08>.safetensors`: tensors `model/<var name>` (every VarStore variable) and
//!   `optim/<name>` ([`Optimizer::state_tensors`]);
//! - `latest.json`: `{format, file, bytes, sha256, meta}` naming that file, its size and hash,
//!   and the [`CheckpointMeta`].
//!
//! Save order: the safetensors file is written to a temp file, fsynced and renamed; then
//! `latest.json` likewise; only then are older `ckpt-*` files and temp leftovers deleted.
//! `latest.json` is the single source of truth: a newer `ckpt-*` it does not name, or a temp
//! file, is an interrupted save and is ignored (and removed by the next save). Load checks
//! size and SHA-256, so a truncated or altered file is an error naming the file and what was
//! expected. One writer per folder.
//!
//! Exact resume contract: tch exposes no getter for torch's RNG state, so randomness during
//! training (dropout, masking, augmentation on the torch side) must come from
//! [`seed_step`]`(seed, step)` = `tch::manual_seed(seed + step)` called at the start of each
//! step; `seed` is stored in the meta. With that, N straight steps and k + resume + (N - k)
//! steps give bitwise equal weights on CPU. torch's generator is process-global, so this
//! holds for one training loop per process (tests that train share a lock). `rng_state` in
//! the meta is free for the caller's own generators (e.g. a data-order RNG).

mod atomic;

use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Tensor};

/// The file naming the current checkpoint.
pub const LATEST: &str = "latest.json";
const FORMAT: u32 = 1;

/// Run state stored next to the tensors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The micro-iteration the run goes on at.
    pub step: u64,
    /// The epoch of `step`.
    pub epoch: u64,
    /// The run's seed (per-step seeding: `seed + step`).
    pub seed: u64,
    /// Free for the caller's own generators (e.g. a data-order RNG).
    pub rng_state: serde_json::Value,
    /// The recipe the run was started with.
    pub config: serde_json::Value,
    /// The loop's own state (running losses, history).
    pub metrics: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    format: u32,
    file: String,
    bytes: u64,
    sha256: String,
    meta: CheckpointMeta,
}

/// Seeds torch's generators (CPU and CUDA) for training step `step`: the per-step randomness
/// contract that makes resume exact (see the module docs).
pub fn seed_step(seed: u64, step: u64) {
    tch::manual_seed(seed.wrapping_add(step) as i64);
}

/// Save / load of checkpoint folders (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint;

fn ckpt_name(step: u64, k: u32) -> String {
    if k == 0 {
        format!("ckpt-{step:08}.safetensors")
    } else {
        format!("ckpt-{step:08}-{k}.safetensors")
    }
}

fn is_ckpt_file(name: &str) -> bool {
    name.starts_with("ckpt-") && name.ends_with(".safetensors")
}

fn read_index(dir: &Path) -> Result<Option<Index>> {
    let path = dir.join(LATEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::io(&path, e)),
    };
    let index: Index = serde_json::from_str(&text).map_err(|e| TrainError::CorruptCheckpoint {
        path: path.clone(),
        expected: "a JSON index {format, file, bytes, sha256, meta}".into(),
        found: e.to_string(),
    })?;
    let plain = !index.file.contains(['/', '\\']) && is_ckpt_file(&index.file);
    if index.format != FORMAT || !plain {
        return Err(TrainError::CorruptCheckpoint {
            path,
            expected: format!(
                "format {FORMAT} naming a ckpt-*.safetensors file in the same folder"
            ),
            found: format!("format {} naming `{}`", index.format, index.file),
        });
    }
    Ok(Some(index))
}

fn to_cpu(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_to_device(Device::Cpu)?.f_contiguous()?)
}

impl Checkpoint {
    /// Writes `vs`'s variables and `opt`'s state as `ckpt-<step>.safetensors`, then
    /// `latest.json`, then deletes older checkpoint files. `dir` is created if missing.
    pub fn save<O: Optimizer + ?Sized>(
        dir: &Path,
        vs: &nn::VarStore,
        opt: &O,
        meta: &CheckpointMeta,
    ) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors = Vec::with_capacity(vars.len() * 3 + 1);
        for (name, t) in vars {
            tensors.push((format!("model/{name}"), to_cpu(&t)?));
        }
        for (name, t) in opt.state_tensors() {
            tensors.push((format!("optim/{name}"), to_cpu(&t)?));
        }

        // Never overwrite the file latest.json names (re-saving the same step).
        let current = read_index(dir).ok().flatten().map(|i| i.file);
        let file = (0..)
            .map(|k| ckpt_name(meta.step, k))
            .find(|n| Some(n) != current.as_ref())
            .unwrap_or_else(|| ckpt_name(meta.step, 0));
        let staged = atomic::staged(dir, &file)?;
        Tensor::write_safetensors(&tensors, staged.tmp_path())?;
        let (bytes, sha256) = atomic::hash_file(staged.tmp_path())?;
        atomic::commit(staged)?;

        let index = Index {
            format: FORMAT,
            file: file.clone(),
            bytes,
            sha256,
            meta: meta.clone(),
        };
        let json = serde_json::to_vec_pretty(&index).map_err(|e| TrainError::Json {
            path: dir.join(LATEST),
            source: e,
        })?;
        atomic::write_atomic(dir, LATEST, &json)?;

        let entries = std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (is_ckpt_file(&name) && name != file) || name.starts_with(atomic::TMP_PREFIX) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// The meta of the checkpoint `latest.json` names, without loading tensors.
    pub fn read_meta(dir: &Path) -> Result<Option<CheckpointMeta>> {
        Ok(read_index(dir)?.map(|i| i.meta))
    }

    /// Loads the checkpoint named by `dir/latest.json` into `vs` and `opt`. `Ok(None)` when
    /// there is no `latest.json` (nothing saved yet, or the first save was interrupted).
    /// Everything is checked (file size and hash, every tensor's presence and shape, no
    /// unexpected tensors) before the model is changed.
    pub fn load_latest<O: Optimizer + ?Sized>(
        dir: &Path,
        vs: &mut nn::VarStore,
        opt: &mut O,
    ) -> Result<Option<CheckpointMeta>> {
        let Some(index) = read_index(dir)? else {
            return Ok(None);
        };
        let path = dir.join(&index.file);
        let corrupt = |expected: String, found: String| TrainError::CorruptCheckpoint {
            path: path.clone(),
            expected,
            found,
        };
        if !path.is_file() {
            return Err(corrupt(
                format!("the file named by {LATEST}"),
                "no such file".into(),
            ));
        }
        let (bytes, sha256) = atomic::hash_file(&path)?;
        if bytes != index.bytes {
            return Err(corrupt(
                format!("{} bytes (from {LATEST})", index.bytes),
                format!("{bytes} bytes (truncated or replaced)"),
            ));
        }
        if sha256 != index.sha256 {
            return Err(corrupt(
                format!("sha256 {} (from {LATEST})", index.sha256),
                format!("sha256 {sha256}"),
            ));
        }
        let tensors = Tensor::read_safetensors(&path)
            .map_err(|e| corrupt("a safetensors file".into(), e.to_string()))?;

        let context = format!("checkpoint {}", path.display());
        let mut model: HashMap<String, Tensor> = HashMap::new();
        let mut optim = Vec::new();
        for (name, t) in tensors {
            if let Some(n) = name.strip_prefix("model/") {
                model.insert(n.to_owned(), t);
            } else if let Some(n) = name.strip_prefix("optim/") {
                optim.push((n.to_owned(), t));
            } else {
                return Err(TrainError::UnexpectedTensor { name, context });
            }
        }
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in &vars {
            let t = model.get(name).ok_or_else(|| TrainError::MissingTensor {
                name: format!("model/{name}"),
                context: context.clone(),
            })?;
            if t.size() != var.size() {
                return Err(TrainError::ShapeMismatch {
                    name: format!("model/{name}"),
                    expected: var.size(),
                    actual: t.size(),
                });
            }
        }
        if model.len() != vars.len() {
            let known: std::collections::HashSet<&str> =
                vars.iter().map(|(n, _)| n.as_str()).collect();
            if let Some(extra) = model.keys().find(|n| !known.contains(n.as_str())) {
                return Err(TrainError::UnexpectedTensor {
                    name: format!("model/{extra}"),
                    context,
                });
            }
        }
        opt.load_state_tensors(&optim).map_err(|e| match e {
            TrainError::MissingTensor { name, .. } => TrainError::MissingTensor {
                name: format!("optim/{name}"),
                context: context.clone(),
            },
            TrainError::UnexpectedTensor { name, .. } => TrainError::UnexpectedTensor {
                name: format!("optim/{name}"),
                context: context.clone(),
            },
            TrainError::ShapeMismatch {
                name,
                expected,
                actual,
            } => TrainError::ShapeMismatch {
                name: format!("optim/{name}"),
                expected,
                actual,
            },
            other => other,
        })?;
        let _guard = tch::no_grad_guard();
        for (name, mut var) in vars {
            if let Some(t) = model.get(&name) {
                var.f_copy_(t)?;
            }
        }
        Ok(Some(index.meta))
    }
}
