//! Checking a named optimiser state against what an optimiser expects, before anything is
//! loaded: the per-parameter optimisers ([`super::Sgd`], [`super::Lars`],
//! [`super::PerParamAdamW`]) share it.

use crate::error::{Result, TrainError};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// `step/<name>`-style counters are one int64 each.
pub(crate) fn read_count(t: &Tensor, name: &str) -> Result<i64> {
    if t.numel() != 1 || t.kind() != Kind::Int64 {
        return Err(TrainError::InvalidConfig(format!(
            "optimiser state `{name}`: expected one int64, found {:?} of shape {:?}",
            t.kind(),
            t.size()
        )));
    }
    Ok(t.f_reshape([-1])?.f_int64_value(&[0])?)
}

/// Maps `state` by name after checking that it holds exactly the `expected` names with the
/// expected shapes (`None`: any shape, e.g. scalars checked by the caller).
pub(crate) fn check_state<'a>(
    state: &'a [(String, Tensor)],
    expected: &[(String, Option<Vec<i64>>)],
) -> Result<HashMap<&'a str, &'a Tensor>> {
    let context = || "optimiser state".to_owned();
    let map: HashMap<&str, &Tensor> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
    for (name, shape) in expected {
        let t = map
            .get(name.as_str())
            .ok_or_else(|| TrainError::MissingTensor {
                name: name.clone(),
                context: context(),
            })?;
        if let Some(shape) = shape {
            if &t.size() != shape {
                return Err(TrainError::ShapeMismatch {
                    name: name.clone(),
                    expected: shape.clone(),
                    actual: t.size(),
                });
            }
        }
    }
    if map.len() != expected.len() {
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        if let Some((name, _)) = state.iter().find(|(n, _)| !known.contains(n.as_str())) {
            return Err(TrainError::UnexpectedTensor {
                name: name.clone(),
                context: context(),
            });
        }
    }
    Ok(map)
}
