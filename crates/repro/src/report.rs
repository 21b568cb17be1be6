//! The report format: `reports/<id>/result.json` per claim and `reports/REPORT.md` over all.
//!
//! A result names the claim, its source, the paper's value, ours, the tolerance and a verdict,
//! plus what is needed to rerun it exactly (git revision, device, versions, seed, mode).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// The outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Our value is within the tolerance of the paper's.
    Reproduced,
    /// We ran it and missed.
    NotReproduced,
    /// The run needs a data set that is not here (the result says which and how to get it).
    NeedsData,
    /// The run needs a GPU (the result says the exact command).
    NeedsGpu,
}

impl Verdict {
    /// `Reproduced` when the claim's tolerance holds, else `NotReproduced`.
    pub fn from_ok(ok: bool) -> Verdict {
        if ok {
            Verdict::Reproduced
        } else {
            Verdict::NotReproduced
        }
    }

    /// The spelling `result.json` and the report use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not_reproduced",
            Verdict::NeedsData => "needs_data",
            Verdict::NeedsGpu => "needs_gpu",
        }
    }
}

/// How much of a recipe ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Seconds, for CI: small subsets, verdicts not comparable with the paper's.
    Smoke,
    /// The default: CPU, real packaged data, minutes per claim.
    Quick,
    /// Paper-scale recipe: GPU and `--data-root`.
    Full,
}

impl Mode {
    /// The spelling `result.json` and the report use.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Versions of what produced a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// This crate's version.
    pub repro: String,
    /// The `tch` binding's version.
    pub tch: String,
    /// The libtorch version the binary was built against.
    pub libtorch: String,
}

impl Versions {
    /// The versions of this build.
    pub fn current() -> Self {
        Versions {
            repro: env!("CARGO_PKG_VERSION").to_owned(),
            tch: "0.24.0".to_owned(),
            libtorch: env!("CVLAB_LIBTORCH_VERSION").to_owned(),
        }
    }
}

/// One claim's `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    /// The claim's id.
    pub id: String,
    /// What the paper claims.
    pub claim: String,
    /// Where it says so.
    pub source: String,
    /// The published number.
    pub paper_value: String,
    /// Our headline number (JSON null when the claim did not run here).
    pub value: Option<f64>,
    /// The headline number as the report prints it, with its unit.
    pub value_text: String,
    /// The tolerance the verdict was judged by, as text.
    pub tolerance: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What the claim still needs when it did not run (`needs: dataset X + GPU`, the command).
    pub needs: Option<String>,
    /// How much of the recipe ran.
    pub mode: Mode,
    /// Where it ran (`cpu`, `cuda:N`, with CPU threads).
    pub device: String,
    /// What produced it.
    pub versions: Versions,
    /// The revision of the working tree (`-dirty` with local changes).
    pub git_revision: String,
    /// The run's seed.
    pub seed: u64,
    /// Wall time of the run.
    pub wall_seconds: f64,
    /// When it finished (seconds since 1970).
    pub finished_at_unix: u64,
    /// Plots written beside the result, by file name.
    pub plots: Vec<String>,
    /// Everything else the claim measured.
    pub details: serde_json::Value,
}

/// Writes `dir/result.json` atomically (temp file, then rename).
pub fn write_result(dir: &Path, result: &ClaimResult) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = serde_json::to_string_pretty(result)?;
    write_atomic(&dir.join("result.json"), text.as_bytes())
}

/// `cvlab_util`'s crash-safe write, naming the file on failure.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    cvlab_util::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Reads every `<reports>/<id>/result.json`, sorted by id. Unreadable files are errors that name
/// the file, so a corrupt report is noticed rather than dropped from the summary.
pub fn read_all(reports: &Path) -> Result<Vec<ClaimResult>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(reports) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let path = entry.path().join("result.json");
        if !path.is_file() {
            continue;
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let r: ClaimResult = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a result.json of this version", path.display()))?;
        out.push(r);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Renders `REPORT.md`: the verdict counts, then one row per claim with its main plot (the
/// first it wrote) inline under the row, linked relative to the report (`<id>/<plot>.png`).
pub fn render_markdown(results: &[ClaimResult]) -> String {
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let mut s = format!(
        "# Reproduction report\n\n**{} claims: {} reproduced, {} not reproduced, {} need data, \
         {} need a GPU.**\n\nWritten by `cargo xtask reproduce`; one row per claim with its main \
         plot under it, details and every plot in `<id>/`. Mode `smoke` runs on small subsets \
         for CI and is not comparable with the paper.\n\n",
        results.len(),
        count(Verdict::Reproduced),
        count(Verdict::NotReproduced),
        count(Verdict::NeedsData),
        count(Verdict::NeedsGpu),
    );
    s.push_str(
        "| id | claim | paper | ours | tolerance | verdict | mode | device | wall s | revision |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let ours = match &r.needs {
            Some(needs) if r.value.is_none() => format!("needs: {needs}"),
            _ => r.value_text.clone(),
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | **{}** | {} | {} | {:.1} | {} |\n",
            r.id,
            cell(&r.claim),
            cell(&r.paper_value),
            cell(&ours),
            cell(&r.tolerance),
            r.verdict.as_str(),
            r.mode.as_str(),
            r.device,
            r.wall_seconds,
            short_rev(&r.git_revision),
        ));
        if let Some(plot) = r.plots.first() {
            s.push_str(&format!(
                "| | <img src=\"{}/{}\" alt=\"{}: {}\" width=\"480\"> | | | | | | | | |\n",
                r.id,
                plot,
                r.id,
                cell(plot)
            ));
        }
    }
    s
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The first 10 hex digits, keeping a `-dirty` mark: a table must not hide local changes.
fn short_rev(rev: &str) -> String {
    let (hash, dirty) = match rev.strip_suffix("-dirty") {
        Some(hash) => (hash, "-dirty"),
        None => (rev, ""),
    };
    format!("{}{dirty}", hash.get(..hash.len().min(10)).unwrap_or(hash))
}

/// Rewrites `reports/REPORT.md` from every result on disk.
pub fn write_summary(reports: &Path) -> Result<()> {
    let results = read_all(reports)?;
    write_atomic(
        &reports.join("REPORT.md"),
        render_markdown(&results).as_bytes(),
    )
}

/// The git revision of the working tree (with `-dirty` when it has changes), or `unknown`.
pub fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, verdict: Verdict) -> ClaimResult {
        ClaimResult {
            id: id.to_owned(),
            claim: "a | b".to_owned(),
            source: "src".to_owned(),
            paper_value: "100%".to_owned(),
            value: Some(1.0),
            value_text: "100.0%".to_owned(),
            tolerance: "exact".to_owned(),
            verdict,
            needs: None,
            mode: Mode::Quick,
            device: "cpu".to_owned(),
            versions: Versions::current(),
            git_revision: "0123456789abcdef".to_owned(),
            seed: 0,
            wall_seconds: 1.25,
            finished_at_unix: 0,
            plots: vec![],
            details: serde_json::json!({}),
        }
    }

    #[test]
    fn results_round_trip_and_summarise_sorted() {
        let dir = tempfile::tempdir().unwrap();
        write_result(
            &dir.path().join("z.claim"),
            &sample("z.claim", Verdict::NotReproduced),
        )
        .unwrap();
        write_result(
            &dir.path().join("a.claim"),
            &sample("a.claim", Verdict::Reproduced),
        )
        .unwrap();
        let all = read_all(dir.path()).unwrap();
        assert_eq!(
            all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a.claim", "z.claim"]
        );
        let mut with_plot = sample("m.claim", Verdict::NeedsGpu);
        with_plot.plots = vec!["curve.png".into(), "other.png".into()];
        write_result(&dir.path().join("m.claim"), &with_plot).unwrap();
        write_summary(dir.path()).unwrap();
        let md = fs::read_to_string(dir.path().join("REPORT.md")).unwrap();
        assert!(
            md.contains("3 claims: 1 reproduced, 1 not reproduced, 0 need data, 1 need a GPU"),
            "{md}"
        );
        let lines: Vec<_> = md.lines().collect();
        let m = lines
            .iter()
            .position(|l| l.starts_with("| `m.claim`"))
            .unwrap();
        assert!(
            lines[m + 1].contains("<img src=\"m.claim/curve.png\""),
            "{md}"
        );
        assert!(!md.contains("other.png"));
        let rows: Vec<_> = md
            .lines()
            .filter(|l| l.starts_with("| `") && !l.starts_with("| `m."))
            .collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].contains("**reproduced**") && rows[0].contains("a \\| b"));
        assert!(rows[1].contains("**not_reproduced**") && rows[1].contains("0123456789 |"));
        assert_eq!(short_rev("0123456789abcdef-dirty"), "0123456789-dirty");
        let json: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(dir.path().join("a.claim/result.json")).unwrap(),
        )
        .unwrap();
        for key in [
            "id",
            "claim",
            "source",
            "paper_value",
            "value",
            "tolerance",
            "verdict",
            "device",
            "versions",
            "git_revision",
            "seed",
            "wall_seconds",
        ] {
            assert!(json.get(key).is_some(), "result.json lacks {key}");
        }
        assert_eq!(json["verdict"], "reproduced");
    }

    #[test]
    fn corrupt_result_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("x")).unwrap();
        fs::write(dir.path().join("x/result.json"), "{ not json").unwrap();
        let err = format!("{:#}", read_all(dir.path()).unwrap_err());
        assert!(err.contains("x/result.json"), "{err}");
    }
}
