//! `nce.simclr-mnist`: SimCLR (Chen et al. 2020) pre-trained on MNIST without labels, at
//! several temperatures; a linear probe on the frozen encoder's features against the same
//! probe on a random-init encoder (the set-up of [`super::ssl`]).

use anyhow::Result;
use serde_json::json;

use train_kit::Series;

use super::ssl::{random_init_probe, run_arm, Arm, Images, Method};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::Mode;

const ID: &str = "nce.simclr-mnist";
const GAIN: &str = "probe accuracy gain of SimCLR (best temperature) over a random-init encoder";
const BEST: &str = "probe accuracy of SimCLR (best temperature)";

/// The claim.
pub fn claim() -> Claim {
    Claim {
        id: ID,
        claim: "SimCLR pre-trained on MNIST without labels gives features on which a linear probe \
                classifies the digits far better than on a random-init encoder; probe accuracy \
                against the NT-Xent temperature",
        source: "Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual \
                 Representations, arXiv 2002.05709, Sec. 2.1 (NT-Xent, probe before the head), \
                 Sec. 5.1 / Table 5 (the temperature matters; 0.1-0.5 best)",
        paper_value: "ImageNet ResNet-50 probe 69.3% vs random-init far below; tau 0.1-0.5 best",
        tolerance: Tolerance::new([
            Bound::at_least(GAIN, 0.03).percent(),
            Bound::at_least(BEST, 0.90).percent(),
        ])
        .note("20,000 training images, 5 epochs a temperature, batch 256; test on the 10,000 test images"),
        smoke_tolerance: Some(
            Tolerance::new([]).note("one temperature, one epoch on 1,024 images: it only has to run"),
        ),
        full_needs: None,
        run,
    }
}

/// (training images, test images, epochs, batch, temperatures) per mode.
fn budget(mode: Mode) -> (usize, usize, usize, i64, Vec<f64>) {
    match mode {
        Mode::Smoke => (1024, 512, 1, 128, vec![0.5]),
        Mode::Quick => (20_000, 10_000, 5, 256, vec![0.1, 0.2, 0.5, 1.0]),
        Mode::Full => (60_000, 10_000, 30, 512, vec![0.05, 0.1, 0.2, 0.5, 1.0]),
    }
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let (train, test, epochs, batch, temperatures) = budget(ctx.mode);
    let images = Images::mnist(ctx, train, test)?;
    // Small kernels: one thread avoids the synchronisation cost that dominates on a shared
    // machine; restored when the claim ends.
    let _threads = crate::experiments::OneThread::on(ctx.device);
    let random = random_init_probe(&images, ctx.seed, ctx.device)?;
    let mut rows = Vec::new();
    for &tau in &temperatures {
        let arm = Arm {
            label: format!("tau={tau}"),
            method: Method::SimClr,
            batch,
            temperature: tau,
            epochs,
            lr: 2e-3,
        };
        rows.push((tau, run_arm(ctx, ID, &images, &arm)?));
    }
    let best = rows
        .iter()
        .map(|r| r.1.probe_accuracy)
        .fold(f64::NEG_INFINITY, f64::max);
    let best_tau = rows
        .iter()
        .find(|r| r.1.probe_accuracy == best)
        .map_or(f64::NAN, |r| r.0);
    let plot = "probe_vs_temperature.png".to_owned();
    train_kit::line_plot(
        &ctx.out_dir.join(&plot),
        "nce.simclr-mnist: linear-probe test accuracy",
        "NT-Xent temperature",
        "probe accuracy (MNIST test)",
        &[
            Series::new(
                "SimCLR features",
                rows.iter().map(|r| (r.0, r.1.probe_accuracy)).collect(),
            ),
            Series::new(
                "random-init encoder",
                rows.iter().map(|r| (r.0, random)).collect(),
            ),
        ],
    )?;
    Ok(Outcome {
        value: best,
        value_text: format!(
            "probe {:.2}% (tau={best_tau}) vs {:.2}% random-init; by tau: {}",
            100.0 * best,
            100.0 * random,
            rows.iter()
                .map(|r| format!("{} {:.2}%", r.0, 100.0 * r.1.probe_accuracy))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        measured: Measured::new()
            .number(GAIN, best - random)
            .number(BEST, best),
        skipped: None,
        plots: vec![plot],
        details: json!({
            "train_images": train, "test_images": test, "epochs": epochs, "batch": batch,
            "random_init_probe_accuracy": random,
            "by_temperature": rows.iter().map(|r| json!({"temperature": r.0, "result": r.1})).collect::<Vec<_>>(),
        }),
    })
}
