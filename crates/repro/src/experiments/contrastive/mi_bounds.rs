//! `nce.mi-bounds`: the correlated-Gaussian benchmark of Poole et al. 2019 (Fig. 2), each
//! estimator's estimate against the true MI as it steps 2, 4, 6, 8, 10 nats.
//!
//! Modes. `--full` is the paper's recipe: 4,000 steps per level (20,000 per estimator), the
//! concat and the separable critic. The default runs the separable critic only with 1,000 steps
//! per level: the concat critic scores all 64^2 pairs through its MLP (about 300 ms a step on
//! two shared cores, 100 minutes per estimator), the separable one 2 x 64 (a few ms). `--smoke`
//! runs 120 steps at 2 and 8 nats.

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::json;

use contrastive_nce::benchmark::{self, BenchmarkConfig, LevelStats, Trace};
use contrastive_nce::{CriticConfig, CriticKind, Estimator};

use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::Mode;

const INFONCE_MAX: &str = "InfoNCE's largest estimate (nats)";
const INFONCE_TOP: &str = "InfoNCE's mean estimate at the top level (nats)";
const NWJ_BIAS_LOW: &str = "|NWJ bias| at 2 nats";
const TUBA_BIAS_LOW: &str = "|TUBA bias| at 2 nats";
const NWJ_VAR_GROWTH: &str = "NWJ variance at the top level / at 2 nats";
const ALPHA_BETWEEN: &str =
    "at the top level the interpolated bound (alpha=0.01) lies above InfoNCE with less variance than NWJ";
const SMILE_VS_MINE: &str = "SMILE (tau=1) variance / MINE variance at the top level";
const SKIPPED: &str = "share of steps whose estimate overflowed (update skipped)";

/// The fraction of each level's steps its bias and variance are measured on (the last ones:
/// the critic adapts after each jump of the MI).
const TAIL: f64 = 0.5;
/// The paper's smoothing of its plot (pandas `ewm(span=200)`).
const EMA_SPAN: f64 = 200.0;

/// The claim.
pub fn claim() -> Claim {
    let log64 = 64f64.ln();
    Claim {
        id: "nce.mi-bounds",
        claim: "On the correlated Gaussian (d = 20, batch 64, MI 2..10 nats), InfoNCE never exceeds \
                log 64 = 4.16 nats and saturates; NWJ and TUBA have low bias and a variance that \
                grows with the MI; the interpolated bound lies between them; SMILE with tau = 1 has \
                less variance than MINE",
        source: "Poole et al. 2019, On Variational Bounds of Mutual Information, arXiv 1905.06922, \
                 Sec. 4 / Fig. 2 (google-research/vbmi vbmi_demo.ipynb); Song & Ermon 2020, SMILE, \
                 arXiv 1910.06222, Fig. 1 (ermongroup/smile-mi-estimator)",
        paper_value: "InfoNCE <= log 64 = 4.16 (saturates); NWJ/TUBA unbiased, variance up with MI; \
                      SMILE (tau=1) variance < MINE's",
        tolerance: Tolerance::new([
            Bound::at_most(INFONCE_MAX, log64),
            Bound::in_range(INFONCE_TOP, 3.0, log64),
            Bound::at_most(NWJ_BIAS_LOW, 0.75),
            Bound::at_most(TUBA_BIAS_LOW, 0.75),
            Bound::at_least(NWJ_VAR_GROWTH, 2.0).unit("x"),
            Bound::holds(ALPHA_BETWEEN),
            Bound::below(SMILE_VS_MINE, 1.0).unit("x"),
        ])
        .note("bias and variance over the last half of each level's steps, separable critic"),
        smoke_tolerance: Some(
            Tolerance::new([
                Bound::at_most(INFONCE_MAX, log64),
                Bound::at_most(SKIPPED, 0.05).percent(),
            ])
                .note("120 steps at 2 and 8 nats: the bounds only have to run and stay bounded"),
        ),
        full_needs: Some("GPU (the concat critic scores 64^2 pairs a step, 20,000 steps per estimator)"),
        run,
    }
}

/// The estimators of the figure: vbmi's NWJ, TUBA, InfoNCE, JS and the interpolated bound
/// (alpha = 0.01, SMILE's `alpha_logit = -4.595`), SMILE's DV, MINE and SMILE at tau 1 and 5.
fn estimators() -> Vec<Estimator> {
    vec![
        Estimator::InfoNce,
        Estimator::Nwj,
        Estimator::Tuba,
        Estimator::Js,
        Estimator::Interpolated {
            alpha_logit: -4.595,
        },
        Estimator::Dv,
        Estimator::Mine { momentum: 0.9 },
        Estimator::Smile { clip: Some(1.0) },
        Estimator::Smile { clip: Some(5.0) },
    ]
}

fn configs(mode: Mode) -> Vec<BenchmarkConfig> {
    let with = |kind, levels: Vec<f64>, steps| BenchmarkConfig {
        levels,
        steps_per_level: steps,
        critic: CriticConfig {
            kind,
            ..Default::default()
        },
        ..Default::default()
    };
    let all = vec![2.0, 4.0, 6.0, 8.0, 10.0];
    match mode {
        Mode::Smoke => vec![with(CriticKind::Separable, vec![2.0, 8.0], 120)],
        Mode::Quick => vec![with(CriticKind::Separable, all, 1000)],
        Mode::Full => vec![
            with(CriticKind::Separable, all.clone(), 4000),
            with(CriticKind::Concat, all, 4000),
        ],
    }
}

struct Run {
    critic: CriticKind,
    trace: Trace,
    levels: Vec<LevelStats>,
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let cfgs = configs(ctx.mode);
    let ests = estimators();
    let total: usize = cfgs
        .iter()
        .map(|c| c.levels.len() * c.steps_per_level * ests.len())
        .sum();
    // The kernels of a 64-sample batch are too small to split: one thread avoids the
    // synchronisation cost (several-fold on a loaded machine); restored when the claim ends.
    let _threads = crate::experiments::OneThread::on(ctx.device);
    let bar = train_kit::progress_bar(total as u64, "nce.mi-bounds: training critics");
    let mut runs = Vec::new();
    let result = (|| -> Result<()> {
        for cfg in &cfgs {
            for (k, &est) in ests.iter().enumerate() {
                bar.set_message(format!(
                    "nce.mi-bounds: {} ({} critic)",
                    est.name(),
                    cfg.critic.kind.name()
                ));
                let seed = ctx.seed as i64 * 100 + k as i64;
                let trace = benchmark::run(cfg, est, ctx.device, seed, &mut |_| bar.inc(1))
                    .with_context(|| {
                        format!("{} with the {} critic", est.name(), cfg.critic.kind.name())
                    })?;
                let levels = trace.levels(cfg.steps_per_level, TAIL);
                runs.push(Run {
                    critic: cfg.critic.kind,
                    trace,
                    levels,
                });
            }
        }
        Ok(())
    })();
    bar.finish_and_clear();
    result?;

    let main = &runs
        .iter()
        .filter(|r| r.critic == CriticKind::Separable)
        .collect::<Vec<_>>();
    let by_name = |name: &str| {
        main.iter()
            .find(|r| r.trace.estimator == name)
            .with_context(|| format!("no run of {name}"))
    };
    let top = |r: &Run| *r.levels.last().unwrap_or(&r.levels[0]);
    let infonce = by_name("InfoNCE")?;
    let nwj = by_name("NWJ")?;
    let tuba = by_name("TUBA")?;
    let alpha = by_name("alpha=0.01")?;
    let mine = by_name("MINE")?;
    let smile1 = by_name("SMILE (tau=1)")?;
    let infonce_max = infonce
        .trace
        .estimates
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let steps: usize = runs.iter().map(|r| r.trace.estimates.len()).sum();
    let skipped = runs.iter().map(|r| r.trace.skipped).sum::<usize>() as f64 / steps.max(1) as f64;
    let nwj_growth = top(nwj).variance / nwj.levels[0].variance.max(1e-12);
    let alpha_between =
        top(alpha).mean > top(infonce).mean && top(alpha).variance < top(nwj).variance;
    let smile_ratio = top(smile1).variance / top(mine).variance.max(1e-12);

    let mut plots = Vec::new();
    for kind in [CriticKind::Separable, CriticKind::Concat] {
        let these: Vec<&Run> = runs.iter().filter(|r| r.critic == kind).collect();
        if these.is_empty() {
            continue;
        }
        let name = format!("mi_bounds_{}.png", kind.name());
        estimates_png(&ctx.out_dir.join(&name), &these, kind)?;
        plots.push(name);
    }
    let name = "bias_variance.png".to_owned();
    bias_variance_png(&ctx.out_dir.join(&name), main)?;
    plots.push(name);

    let table: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            json!({
                "estimator": r.trace.estimator,
                "critic": r.critic.name(),
                "skipped_steps": r.trace.skipped,
                "levels": r.levels,
            })
        })
        .collect();
    Ok(Outcome {
        value: top(infonce).mean,
        value_text: format!(
            "InfoNCE {:.2} at {} nats (max {:.2} <= 4.16); NWJ bias {:+.2} / TUBA {:+.2} at 2 nats; \
             NWJ variance x{:.1} from 2 nats to the top; SMILE/MINE variance {:.2}",
            top(infonce).mean,
            top(infonce).true_mi,
            infonce_max,
            nwj.levels[0].bias,
            tuba.levels[0].bias,
            nwj_growth,
            smile_ratio
        ),
        measured: Measured::new()
            .number(INFONCE_MAX, infonce_max)
            .number(INFONCE_TOP, top(infonce).mean)
            .number(NWJ_BIAS_LOW, nwj.levels[0].bias.abs())
            .number(TUBA_BIAS_LOW, tuba.levels[0].bias.abs())
            .number(NWJ_VAR_GROWTH, nwj_growth)
            .flag(ALPHA_BETWEEN, alpha_between)
            .number(SMILE_VS_MINE, smile_ratio)
            .number(SKIPPED, skipped),
        skipped: None,
        plots,
        details: json!({
            "batch_size": cfgs[0].batch_size,
            "steps_per_level": cfgs[0].steps_per_level,
            "tail_fraction": TAIL,
            "runs": table,
        }),
    })
}

const COLOURS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

/// One panel per estimator as the paper's Fig. 2: the raw estimates (light), their EMA, the
/// true MI and InfoNCE's ceiling log 64.
fn estimates_png(path: &std::path::Path, runs: &[&Run], kind: CriticKind) -> Result<()> {
    let file =
        cvlab_util::AtomicFile::new(path).with_context(|| format!("drawing {}", path.display()))?;
    draw_estimates(file.tmp_path(), runs, kind)
        .with_context(|| format!("drawing {}", path.display()))?;
    file.commit()
        .with_context(|| format!("writing {}", path.display()))
}

fn draw_estimates(path: &std::path::Path, runs: &[&Run], kind: CriticKind) -> Result<()> {
    cvlab_util::register_fonts();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let cols = 3usize;
    let rows = runs.len().div_ceil(cols);
    let root = BitMapBackend::new(path, (1200, 300 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(
            &format!(
                "MI estimates, {} critic, batch 64 (log 64 = 4.16 dashed)",
                kind.name()
            ),
            ("sans-serif", 22),
        )
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows, cols));
    for (i, (area, r)) in areas.iter().zip(runs).enumerate() {
        let steps = r.trace.estimates.len() as f64;
        let top = r.trace.true_mi.iter().cloned().fold(0.0, f64::max) + 2.0;
        let mut chart = ChartBuilder::on(area)
            .caption(&r.trace.estimator, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(36)
            .build_cartesian_2d(0.0..steps, -1.0..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("nats")
            .draw()
            .map_err(|e| err(&e))?;
        let colour = COLOURS[i % COLOURS.len()];
        let clamp = |v: f64| v.clamp(-1.0, top);
        chart
            .draw_series(LineSeries::new(
                r.trace
                    .estimates
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(t, &v)| (t as f64, clamp(v))),
                colour.mix(0.25).stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(
                r.trace
                    .ema(EMA_SPAN)
                    .into_iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(t, v)| (t as f64, clamp(v))),
                colour.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(
                r.trace
                    .true_mi
                    .iter()
                    .enumerate()
                    .map(|(t, &v)| (t as f64, v)),
                BLACK.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        let log64 = 64f64.ln();
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, log64), (steps, log64)],
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Bias (left) and variance (right, log scale) of each estimator against the true MI.
fn bias_variance_png(path: &std::path::Path, runs: &[&Run]) -> Result<()> {
    let file =
        cvlab_util::AtomicFile::new(path).with_context(|| format!("drawing {}", path.display()))?;
    draw_bias_variance(file.tmp_path(), runs)
        .with_context(|| format!("drawing {}", path.display()))?;
    file.commit()
        .with_context(|| format!("writing {}", path.display()))
}

fn draw_bias_variance(path: &std::path::Path, runs: &[&Run]) -> Result<()> {
    cvlab_util::register_fonts();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(600);
    let mis: Vec<f64> = runs
        .first()
        .map(|r| r.levels.iter().map(|l| l.true_mi).collect())
        .unwrap_or_default();
    let (x0, x1) = (
        mis.first().copied().unwrap_or(0.0) - 0.5,
        mis.last().copied().unwrap_or(1.0) + 0.5,
    );
    let finite = |v: f64| v.is_finite();
    let biases: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.levels.iter().map(|l| l.bias))
        .filter(|v| finite(*v))
        .collect();
    let (blo, bhi) = biases
        .iter()
        .fold((-1.0f64, 1.0f64), |(lo, hi), &b| (lo.min(b), hi.max(b)));
    let vars: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.levels.iter().map(|l| l.variance))
        .filter(|v| finite(*v) && *v > 0.0)
        .collect();
    let (vlo, vhi) = vars
        .iter()
        .fold((1e-3f64, 1.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let mut bias_chart = ChartBuilder::on(&left)
        .caption("bias (mean estimate - true MI)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(44)
        .build_cartesian_2d(x0..x1, (blo - 0.5)..(bhi + 0.5))
        .map_err(|e| err(&e))?;
    bias_chart
        .configure_mesh()
        .x_desc("true MI (nats)")
        .y_desc("nats")
        .draw()
        .map_err(|e| err(&e))?;
    let mut var_chart = ChartBuilder::on(&right)
        .caption("variance of the estimates", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .build_cartesian_2d(x0..x1, (vlo * 0.5..vhi * 2.0).log_scale())
        .map_err(|e| err(&e))?;
    var_chart
        .configure_mesh()
        .x_desc("true MI (nats)")
        .y_desc("nats^2")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, r) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let name = r.trace.estimator.clone();
        bias_chart
            .draw_series(LineSeries::new(
                r.levels
                    .iter()
                    .filter(|l| finite(l.bias))
                    .map(|l| (l.true_mi, l.bias)),
                colour.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        var_chart
            .draw_series(LineSeries::new(
                r.levels
                    .iter()
                    .filter(|l| finite(l.variance) && l.variance > 0.0)
                    .map(|l| (l.true_mi, l.variance)),
                colour.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
    }
    bias_chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
