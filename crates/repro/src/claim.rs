//! A claim: what a paper says, where, the number, the tolerance, and the experiment that checks it.
//!
//! The tolerance is data ([`Tolerance`]): a list of [`Bound`]s on named measurements. The
//! report's tolerance text ([`Tolerance::text`]) and the verdict ([`Tolerance::verdict`], on
//! the values an [`Outcome`] carries in [`Outcome::measured`]) are both derived from it, so they
//! cannot disagree. This module knows no experiment: the registry lives in
//! [`crate::experiments::registry`].

use anyhow::{bail, Result};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

use crate::report::{self, ClaimResult, Mode, Verdict, Versions};

pub use train_kit::{device_name, parse_device};

/// What the context of a run offers an experiment.
pub struct Ctx {
    /// How much of the recipe runs (`--smoke`, the quick default, `--full`).
    pub mode: Mode,
    /// Where tensors live (`--device`).
    pub device: Device,
    /// `--data-root`: files placed by hand; `None` fetches into the cache on first use.
    pub data_root: Option<PathBuf>,
    /// `reports/<id>/`, created before the experiment runs: plots and logs go here.
    pub out_dir: PathBuf,
    /// `--seed`: seeds torch's generator, the loaders and the data samplers.
    pub seed: u64,
}

/// What an experiment measured.
pub struct Outcome {
    /// The headline number (`value` in `result.json`).
    pub value: f64,
    /// The headline as the report prints it, with its unit and the secondary numbers.
    pub value_text: String,
    /// The named values the claim's [`Tolerance`] checks.
    pub measured: Measured,
    /// Set when the recipe could not run here (`NeedsData`, `NeedsGpu`): the verdict is this
    /// one and the tolerance is not checked.
    pub skipped: Option<Verdict>,
    /// Plots written into [`Ctx::out_dir`], by file name; the first is the claim's main plot.
    pub plots: Vec<String>,
    /// Everything else the claim measured.
    pub details: serde_json::Value,
}

/// A claim and its experiment.
pub struct Claim {
    /// Stable id, `<group>.<name>` (an id prefix selects a group).
    pub id: &'static str,
    /// What the paper claims, in a sentence.
    pub claim: &'static str,
    /// Where it says so: paper, arXiv id, table or figure, or the reference code.
    pub source: &'static str,
    /// The published number.
    pub paper_value: &'static str,
    /// How close counts, stated before the run; the verdict of quick and full runs.
    pub tolerance: Tolerance,
    /// The relaxed tolerance of `--smoke` runs (seconds on small subsets), when the claim has
    /// one; without it a smoke run is judged by [`Claim::tolerance`].
    pub smoke_tolerance: Option<Tolerance>,
    /// What the `--full` recipe needs beyond this machine, if anything (e.g. `GPU + ImageNet`).
    pub full_needs: Option<&'static str>,
    /// The experiment.
    pub run: fn(&Ctx) -> Result<Outcome>,
}

impl Claim {
    /// The tolerance a run in `mode` is judged by.
    pub fn tolerance_for(&self, mode: Mode) -> &Tolerance {
        match (mode, &self.smoke_tolerance) {
            (Mode::Smoke, Some(smoke)) => smoke,
            _ => &self.tolerance,
        }
    }

    /// The tolerance text of a run in `mode`, as `result.json` and the report show it; a smoke
    /// tolerance is marked `smoke: `.
    pub fn tolerance_text(&self, mode: Mode) -> String {
        match (mode, &self.smoke_tolerance) {
            (Mode::Smoke, Some(smoke)) => format!("smoke: {}", smoke.text()),
            _ => self.tolerance.text(),
        }
    }
}

// ------------------------------------------------------------------ the tolerance

/// What a [`Bound`] requires of its measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// `x >= min`.
    AtLeast(f64),
    /// `x > min` (strictly).
    Above(f64),
    /// `x <= max`.
    AtMost(f64),
    /// `x < max` (strictly).
    Below(f64),
    /// `x == value` (exactly).
    Equals(f64),
    /// `|x - target| <= abs`.
    Within {
        /// The paper's value.
        target: f64,
        /// The largest accepted absolute difference.
        abs: f64,
    },
    /// `lo <= x <= hi`.
    InRange(f64, f64),
    /// A statement the experiment checked holds (a flag: the name says what).
    Holds,
}

/// One condition of a [`Tolerance`]: the measurement named `name` passes `check`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// The measurement, in the words the report shows; the key of [`Measured`].
    pub name: &'static str,
    /// What it must satisfy.
    pub check: Check,
    /// Numbers of the check are shown multiplied by this (100 for a fraction shown in %).
    pub scale: f64,
    /// Unit shown after each number (`%`, ` points`, `x`).
    pub suffix: &'static str,
}

impl Bound {
    fn new(name: &'static str, check: Check) -> Self {
        Bound {
            name,
            check,
            scale: 1.0,
            suffix: "",
        }
    }

    /// `name >= min`.
    pub fn at_least(name: &'static str, min: f64) -> Self {
        Bound::new(name, Check::AtLeast(min))
    }

    /// `name > min`.
    pub fn above(name: &'static str, min: f64) -> Self {
        Bound::new(name, Check::Above(min))
    }

    /// `name <= max`.
    pub fn at_most(name: &'static str, max: f64) -> Self {
        Bound::new(name, Check::AtMost(max))
    }

    /// `name < max`.
    pub fn below(name: &'static str, max: f64) -> Self {
        Bound::new(name, Check::Below(max))
    }

    /// `name == value`.
    pub fn equals(name: &'static str, value: f64) -> Self {
        Bound::new(name, Check::Equals(value))
    }

    /// `|name - target| <= abs`.
    pub fn within(name: &'static str, target: f64, abs: f64) -> Self {
        Bound::new(name, Check::Within { target, abs })
    }

    /// `lo <= name <= hi`.
    pub fn in_range(name: &'static str, lo: f64, hi: f64) -> Self {
        Bound::new(name, Check::InRange(lo, hi))
    }

    /// The statement `name` holds.
    pub fn holds(name: &'static str) -> Self {
        Bound::new(name, Check::Holds)
    }

    /// The measurement is a fraction shown in percent.
    pub fn percent(self) -> Self {
        Bound {
            scale: 100.0,
            suffix: "%",
            ..self
        }
    }

    /// Numbers shown with `suffix` (`%` for a value already in percent, ` points`, `x`).
    pub fn unit(self, suffix: &'static str) -> Self {
        Bound { suffix, ..self }
    }

    /// Whether `m` passes; an error when `m` is not the kind the check needs.
    pub fn accepts(&self, m: Measure) -> Result<bool> {
        Ok(match (self.check, m) {
            (Check::Holds, Measure::Flag(b)) => b,
            (Check::Holds, Measure::Number(x)) => {
                bail!(
                    "`{}`: expected a flag (holds or not), got the number {x}",
                    self.name
                )
            }
            (_, Measure::Flag(b)) => {
                bail!("`{}`: expected a number, got the flag {b}", self.name)
            }
            (Check::AtLeast(min), Measure::Number(x)) => x >= min,
            (Check::Above(min), Measure::Number(x)) => x > min,
            (Check::AtMost(max), Measure::Number(x)) => x <= max,
            (Check::Below(max), Measure::Number(x)) => x < max,
            (Check::Equals(v), Measure::Number(x)) => x == v,
            (Check::Within { target, abs }, Measure::Number(x)) => (x - target).abs() <= abs,
            (Check::InRange(lo, hi), Measure::Number(x)) => lo <= x && x <= hi,
        })
    }

    /// `name >= 98%`, `name = 17.6 +- 0.05`, `name in [0.3, 0.7]`, or the statement itself.
    pub fn text(&self) -> String {
        let n = |x: f64| format!("{}{}", number(x * self.scale), self.suffix);
        match self.check {
            Check::AtLeast(x) => format!("{} >= {}", self.name, n(x)),
            Check::Above(x) => format!("{} > {}", self.name, n(x)),
            Check::AtMost(x) => format!("{} <= {}", self.name, n(x)),
            Check::Below(x) => format!("{} < {}", self.name, n(x)),
            Check::Equals(x) => format!("{} = {}", self.name, n(x)),
            Check::Within { target, abs } => format!("{} = {} +- {}", self.name, n(target), n(abs)),
            Check::InRange(lo, hi) => format!("{} in [{}, {}]", self.name, n(lo), n(hi)),
            Check::Holds => self.name.to_owned(),
        }
    }
}

/// `98`, `0.015`, `1e-9`: the shortest spelling of a tolerance's number.
fn number(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e7) {
        return format!("{x:e}");
    }
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// How close counts: every bound must hold for `Reproduced`. No bound at all (a smoke run
/// that only has to run) is `Reproduced` when the experiment ran.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tolerance {
    /// The conditions, in the order the text shows them.
    pub bounds: Vec<Bound>,
    /// Why the bounds are what they are, shown after them in parentheses.
    pub note: Option<&'static str>,
}

impl Tolerance {
    /// A tolerance of `bounds`.
    pub fn new(bounds: impl IntoIterator<Item = Bound>) -> Self {
        Tolerance {
            bounds: bounds.into_iter().collect(),
            note: None,
        }
    }

    /// This tolerance with a note.
    pub fn note(self, note: &'static str) -> Self {
        Tolerance {
            note: Some(note),
            ..self
        }
    }

    /// What the report shows: the bounds joined by `; `, the note in parentheses.
    pub fn text(&self) -> String {
        let bounds: Vec<String> = self.bounds.iter().map(Bound::text).collect();
        match (bounds.is_empty(), self.note) {
            (true, Some(note)) => note.to_owned(),
            (true, None) => "none (the experiment only has to run)".to_owned(),
            (false, Some(note)) => format!("{} ({note})", bounds.join("; ")),
            (false, None) => bounds.join("; "),
        }
    }

    /// Each bound's name and whether it holds on `measured`; an error names a bound whose
    /// value is missing or of the wrong kind.
    pub fn check(&self, measured: &Measured) -> Result<Vec<(&'static str, bool)>> {
        self.bounds
            .iter()
            .map(|b| {
                let Some(m) = measured.get(b.name) else {
                    bail!(
                        "the tolerance bound `{}` has no measured value (measured: {})",
                        b.name,
                        measured.names().join(", ")
                    );
                };
                Ok((b.name, b.accepts(m)?))
            })
            .collect()
    }

    /// `Reproduced` when every bound holds on `measured`, else `NotReproduced`; an error when
    /// a bound's value is missing or of the wrong kind.
    pub fn verdict(&self, measured: &Measured) -> Result<Verdict> {
        let checks = self.check(measured)?;
        Ok(Verdict::from_ok(checks.iter().all(|(_, ok)| *ok)))
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// One measured value a [`Bound`] checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A number, in the unit the bound's check is written in.
    Number(f64),
    /// Whether a statement holds.
    Flag(bool),
}

/// The named values an experiment measured for its tolerance, in the order it added them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Measured(Vec<(&'static str, Measure)>);

impl Measured {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Measured::default()
    }

    /// With the number `x` named `name`.
    pub fn number(mut self, name: &'static str, x: f64) -> Self {
        self.0.push((name, Measure::Number(x)));
        self
    }

    /// With the flag `holds` named `name`.
    pub fn flag(mut self, name: &'static str, holds: bool) -> Self {
        self.0.push((name, Measure::Flag(holds)));
        self
    }

    /// The value named `name` (the last one added under that name).
    pub fn get(&self, name: &str) -> Option<Measure> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
    }

    /// The names measured.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|(n, _)| *n).collect()
    }
}

// ------------------------------------------------------------------ selecting and running

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

/// Runs one claim and writes its `result.json`. An experiment's error is returned (and the
/// result is not written); a missed claim is a result with `not_reproduced`. The verdict is
/// the claim's tolerance for `mode` checked on what the experiment measured.
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
        tolerance: claim.tolerance_text(mode),
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
            let verdict = match o.skipped {
                Some(v) => v,
                None => claim.tolerance_for(mode).verdict(&o.measured)?,
            };
            base(
                verdict,
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
    use crate::experiments::registry;

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

    #[test]
    fn every_registered_claim_states_its_tolerance() {
        for c in registry() {
            for mode in [Mode::Smoke, Mode::Quick, Mode::Full] {
                let text = c.tolerance_text(mode);
                assert!(
                    !text.trim().is_empty(),
                    "{} ({mode:?}) has no tolerance",
                    c.id
                );
            }
            assert!(!c.tolerance.bounds.is_empty(), "{} checks nothing", c.id);
            let names: Vec<_> = c.tolerance.bounds.iter().map(|b| b.name).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{}: a bound name twice", c.id);
        }
    }

    #[test]
    fn tolerance_text_renders_every_kind() {
        let t = Tolerance::new([
            Bound::at_least("accuracy", 0.98).percent(),
            Bound::above("gain", 15.0).unit("%"),
            Bound::at_most("gap", 0.015).percent(),
            Bound::below("mass outside", 1e-9),
            Bound::equals("with bias", 1.0).percent(),
            Bound::within("GMACs", 17.6, 0.05),
            Bound::in_range("slope", 0.3, 0.7),
            Bound::at_least("speed-up", 1.3).unit("x"),
            Bound::holds("every row exact"),
        ])
        .note("one-sided");
        assert_eq!(
            t.text(),
            "accuracy >= 98%; gain > 15%; gap <= 1.5%; mass outside < 1e-9; with bias = 100%; \
             GMACs = 17.6 +- 0.05; slope in [0.3, 0.7]; speed-up >= 1.3x; every row exact \
             (one-sided)"
        );
        assert_eq!(t.to_string(), t.text());
        assert_eq!(Tolerance::new([]).note("runs").text(), "runs");
        assert!(!Tolerance::default().text().is_empty());
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-0.0), "0");
    }

    #[test]
    fn each_bound_kind_accepts_and_rejects() {
        let n = Measure::Number;
        let cases = [
            (Check::AtLeast(0.98), 0.98, 0.9799),
            (Check::Above(0.2), 0.2001, 0.2),
            (Check::AtMost(0.015), 0.015, 0.0151),
            (Check::Below(1.0), 0.9999, 1.0),
            (Check::Equals(1.0), 1.0, 0.9999),
            (
                Check::Within {
                    target: 17.6,
                    abs: 0.05,
                },
                17.64,
                17.66,
            ),
            (Check::InRange(0.3, 0.7), 0.7, 0.71),
            (Check::InRange(0.3, 0.7), 0.3, 0.29),
        ];
        for (check, pass, fail) in cases {
            let b = Bound::new("x", check);
            assert!(b.accepts(n(pass)).unwrap(), "{check:?} rejects {pass}");
            assert!(!b.accepts(n(fail)).unwrap(), "{check:?} accepts {fail}");
            assert!(!b.accepts(n(f64::NAN)).unwrap(), "{check:?} accepts NaN");
            assert!(
                b.accepts(Measure::Flag(true)).is_err(),
                "{check:?} takes a flag"
            );
        }
        let holds = Bound::holds("monotone");
        assert!(holds.accepts(Measure::Flag(true)).unwrap());
        assert!(!holds.accepts(Measure::Flag(false)).unwrap());
        let err = holds.accepts(n(1.0)).unwrap_err().to_string();
        assert!(err.contains("monotone") && err.contains("flag"), "{err}");
    }

    #[test]
    fn the_verdict_needs_every_bound_and_every_value() {
        let t = Tolerance::new([Bound::at_least("accuracy", 0.98), Bound::holds("monotone")]);
        let m = Measured::new()
            .number("accuracy", 0.985)
            .flag("monotone", true);
        assert_eq!(t.verdict(&m).unwrap(), Verdict::Reproduced);
        let m = Measured::new()
            .number("accuracy", 0.985)
            .flag("monotone", false);
        assert_eq!(t.verdict(&m).unwrap(), Verdict::NotReproduced);
        assert_eq!(
            t.check(&m).unwrap(),
            vec![("accuracy", true), ("monotone", false)]
        );
        let m = Measured::new().number("accuracy", 0.985);
        let err = t.verdict(&m).unwrap_err().to_string();
        assert!(
            err.contains("`monotone`") && err.contains("accuracy"),
            "{err}"
        );
        assert_eq!(
            Tolerance::new([]).verdict(&Measured::new()).unwrap(),
            Verdict::Reproduced
        );
    }

    #[test]
    fn a_smoke_tolerance_judges_and_names_smoke_runs_only() {
        let c = registry()
            .into_iter()
            .find(|c| c.id == "vit.mnist")
            .unwrap();
        let m = Measured::new().number(c.tolerance.bounds[0].name, 0.5);
        assert_eq!(
            c.tolerance_for(Mode::Smoke).verdict(&m).unwrap(),
            Verdict::Reproduced
        );
        assert_eq!(
            c.tolerance_for(Mode::Quick).verdict(&m).unwrap(),
            Verdict::NotReproduced
        );
        assert!(c.tolerance_text(Mode::Smoke).starts_with("smoke: "));
        assert_eq!(c.tolerance_text(Mode::Full), c.tolerance.text());
        assert!(c.tolerance_text(Mode::Quick).contains(">= 98%"));
    }
}
