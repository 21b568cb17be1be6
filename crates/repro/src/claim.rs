//! A claim: what a paper says, where, the number, the tolerance, and the experiment that checks it.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

use crate::report::{self, ClaimResult, Mode, Verdict, Versions};

/// What the context of a run offers an experiment.
pub struct Ctx {
    pub mode: Mode,
    pub device: Device,
    /// `--data-root`: files placed by hand; `None` fetches into the cache on first use.
    pub data_root: Option<PathBuf>,
    /// `reports/<id>/`, created before the experiment runs: plots and logs go here.
    pub out_dir: PathBuf,
    pub seed: u64,
}

/// What an experiment measured.
pub struct Outcome {
    pub value: f64,
    pub value_text: String,
    pub verdict: Verdict,
    pub plots: Vec<String>,
    pub details: serde_json::Value,
}

/// A claim and its experiment.
pub struct Claim {
    pub id: &'static str,
    pub claim: &'static str,
    pub source: &'static str,
    pub paper_value: &'static str,
    pub tolerance: &'static str,
    /// What the `--full` recipe needs beyond this machine, if anything (e.g. `GPU + ImageNet`).
    pub full_needs: Option<&'static str>,
    pub run: fn(&Ctx) -> Result<Outcome>,
}

/// Every claim, in report order.
pub fn registry() -> Vec<Claim> {
    use crate::experiments::{basics_bias, mae, rf, vit};
    let mut all = vec![basics_bias::perceptron(), basics_bias::mnist()];
    all.extend(vit::claims());
    all.extend(mae::claims());
    all.extend(rf::claims());
    all
}

/// Selects claims by id or id prefix (`basics` selects `basics.bias` and `basics.bias.mnist`).
pub fn select<'a>(all: &'a [Claim], ids: &[String]) -> Result<Vec<&'a Claim>> {
    if ids.is_empty() {
        return Ok(all.iter().collect());
    }
    let mut out = Vec::new();
    for id in ids {
        let hits: Vec<_> = all
            .iter()
            .filter(|c| c.id == id || c.id.starts_with(&format!("{id}.")))
            .collect();
        if hits.is_empty() {
            let known: Vec<_> = all.iter().map(|c| c.id).collect();
            bail!("no claim `{id}`; known claims: {}", known.join(", "));
        }
        for h in hits {
            if !out.iter().any(|c: &&Claim| c.id == h.id) {
                out.push(h);
            }
        }
    }
    Ok(out)
}

/// Parses `auto|cpu|cuda|cuda:N`; `auto` is CUDA when present.
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda(n),
            _ => bail!("unknown device `{s}`: expected auto, cpu, cuda or cuda:N"),
        },
    }
}

fn cuda(n: usize) -> Result<Device> {
    let count = tch::Cuda::device_count() as usize;
    if n >= count {
        bail!(
            "device cuda:{n} requested but libtorch sees {count} CUDA device(s) \
             (run `cargo xtask doctor`)"
        );
    }
    Ok(Device::Cuda(n))
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".to_owned(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Runs one claim and writes its `result.json`. An experiment's error is returned (and the
/// result is not written); a missed claim is a result with `not_reproduced`.
pub fn run_claim(
    claim: &Claim,
    mode: Mode,
    device: Device,
    data_root: Option<&Path>,
    reports: &Path,
    seed: u64,
) -> Result<ClaimResult> {
    let out_dir = reports.join(claim.id);
    std::fs::create_dir_all(&out_dir)?;
    let start = Instant::now();
    let base = |verdict, value, value_text: String, needs, plots, details| ClaimResult {
        id: claim.id.to_owned(),
        claim: claim.claim.to_owned(),
        source: claim.source.to_owned(),
        paper_value: claim.paper_value.to_owned(),
        value,
        value_text,
        tolerance: claim.tolerance.to_owned(),
        verdict,
        needs,
        mode,
        device: device_name(device),
        versions: Versions::current(),
        git_revision: report::git_revision(),
        seed,
        wall_seconds: start.elapsed().as_secs_f64(),
        finished_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        plots,
        details,
    };
    let result = match (mode, claim.full_needs) {
        (Mode::Full, Some(needs)) if device == Device::Cpu => base(
            Verdict::NeedsGpu,
            None,
            String::new(),
            Some(format!(
                "{needs}: cargo xtask reproduce {} --full --device cuda --data-root DIR",
                claim.id
            )),
            vec![],
            serde_json::json!({}),
        ),
        _ => {
            let ctx = Ctx {
                mode,
                device,
                data_root: data_root.map(Path::to_path_buf),
                out_dir: out_dir.clone(),
                seed,
            };
            let o = (claim.run)(&ctx)?;
            base(
                o.verdict,
                Some(o.value),
                o.value_text,
                None,
                o.plots,
                o.details,
            )
        }
    };
    report::write_result(&out_dir, &result)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_by_prefix_and_reject_unknown() {
        let all = registry();
        let sel = select(&all, &["basics".to_owned()]).unwrap();
        assert!(sel.iter().any(|c| c.id == "basics.bias"));
        let one = select(&all, &["basics.bias".to_owned()]).unwrap();
        assert!(one.iter().all(|c| c.id.starts_with("basics.bias")));
        let err = select(&all, &["nope".to_owned()])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("nope") && err.contains("basics.bias"), "{err}");
    }

    #[test]
    fn devices_parse_and_bad_ones_are_named() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
        if tch::Cuda::device_count() == 0 {
            assert!(parse_device("cuda:0").is_err());
        }
    }

    #[test]
    fn registry_ids_are_unique() {
        let all = registry();
        let mut ids: Vec<_> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }
}
