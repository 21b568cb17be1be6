//! `nce.moco-queue`: on the task of `nce.simclr-mnist` ([`super::ssl`]), MoCo at a small batch
//! with a queue of negatives against SimCLR at that batch and at a large one: the probe accuracy
//! against the negatives each anchor sees.

use anyhow::{ensure, Result};
use serde_json::json;

use train_kit::Series;

use super::ssl::{random_init_probe, run_arm, Arm, ArmResult, Images, Method};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::Mode;

const ID: &str = "nce.moco-queue";
const REACH: &str =
    "probe accuracy of MoCo (small batch, largest queue) minus SimCLR (large batch)";
const SMALL_GAP: &str = "probe accuracy of MoCo minus SimCLR at the same small batch";

/// The shared temperature (MoCo v2's 0.2) and key-encoder momentum.
const TAU: f64 = 0.2;
const MOMENTUM: f64 = 0.99;

/// The claim.
pub fn claim() -> Claim {
    Claim {
        id: ID,
        claim: "MoCo's queue of momentum-encoded keys lets a small batch reach the linear-probe \
                accuracy that SimCLR needs a large batch (many in-batch negatives) for",
        source: "He et al. 2020, Momentum Contrast, arXiv 1911.05722, Sec. 3.2 and Fig. 3 \
                 (queue vs end-to-end vs memory bank against K); Chen et al. 2020 (SimCLR), \
                 Fig. 9 (SimCLR gains from larger batches)",
        paper_value: "ImageNet: MoCo at batch 256 with K = 65536 matches end-to-end at large K",
        tolerance: Tolerance::new([Bound::at_least(REACH, -0.01).percent()])
            .note("MoCo batch 32 with K = 4096 vs SimCLR batch 256; same epochs, tau 0.2, m 0.99"),
        smoke_tolerance: Some(
            Tolerance::new([]).note("one epoch on 1,024 images: it only has to run"),
        ),
        full_needs: None,
        run,
    }
}

/// (training images, test images, epochs, small batch, large batch, queues) per mode.
fn budget(mode: Mode) -> (usize, usize, usize, i64, i64, Vec<i64>) {
    match mode {
        Mode::Smoke => (1024, 512, 1, 32, 128, vec![128]),
        Mode::Quick => (20_000, 10_000, 5, 32, 256, vec![256, 4096]),
        Mode::Full => (60_000, 10_000, 30, 32, 1024, vec![256, 4096, 16384]),
    }
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let (train, test, epochs, small, large, queues) = budget(ctx.mode);
    let images = Images::mnist(ctx, train, test)?;
    // Small kernels: one thread avoids the synchronisation cost that dominates on a shared
    // machine; restored when the claim ends.
    let _threads = crate::experiments::OneThread::on(ctx.device);
    let random = random_init_probe(&images, ctx.seed, ctx.device)?;
    let arm = |label: String, method, batch| Arm {
        label,
        method,
        batch,
        temperature: TAU,
        epochs,
        lr: 2e-3,
    };
    let mut simclr: Vec<ArmResult> = Vec::new();
    for b in [small, large] {
        simclr.push(run_arm(
            ctx,
            ID,
            &images,
            &arm(format!("SimCLR b={b}"), Method::SimClr, b),
        )?);
    }
    let mut moco: Vec<ArmResult> = Vec::new();
    for &k in &queues {
        let m = Method::Moco {
            queue: k,
            momentum: MOMENTUM,
        };
        moco.push(run_arm(
            ctx,
            ID,
            &images,
            &arm(format!("MoCo b={small} K={k}"), m, small),
        )?);
    }
    let (Some(sim_small), Some(sim_large), Some(moco_big)) =
        (simclr.first(), simclr.last(), moco.last())
    else {
        anyhow::bail!("nce.moco-queue ran no arm");
    };
    ensure!(
        simclr.len() == 2,
        "expected a small and a large SimCLR batch"
    );
    let reach = moco_big.probe_accuracy - sim_large.probe_accuracy;
    let small_gap = moco_big.probe_accuracy - sim_small.probe_accuracy;
    let plot = "probe_vs_negatives.png".to_owned();
    let points = |rs: &[ArmResult]| {
        rs.iter()
            .map(|r| ((r.negatives as f64).log2(), r.probe_accuracy))
            .collect::<Vec<_>>()
    };
    let all: Vec<f64> = simclr
        .iter()
        .chain(&moco)
        .map(|r| (r.negatives as f64).log2())
        .collect();
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    train_kit::line_plot(
        &ctx.out_dir.join(&plot),
        "nce.moco-queue: linear-probe test accuracy against the negatives per anchor",
        "log2 negatives per anchor (SimCLR: 2b - 2 in the batch; MoCo: the queue K)",
        "probe accuracy (MNIST test)",
        &[
            Series::new(
                format!("SimCLR, batch {small} and {large}"),
                points(&simclr),
            ),
            Series::new(format!("MoCo, batch {small}, by queue K"), points(&moco)),
            Series::new("random-init encoder", vec![(lo, random), (hi, random)]),
        ],
    )?;
    let all_rows: Vec<&ArmResult> = simclr.iter().chain(&moco).collect();
    Ok(Outcome {
        value: reach,
        value_text: format!(
            "MoCo b={small} K={} {:.2}% vs SimCLR b={large} {:.2}% ({:+.2} points) and b={small} {:.2}%; random-init {:.2}%",
            moco_big.negatives,
            100.0 * moco_big.probe_accuracy,
            100.0 * sim_large.probe_accuracy,
            100.0 * reach,
            100.0 * sim_small.probe_accuracy,
            100.0 * random,
        ),
        measured: Measured::new().number(REACH, reach).number(SMALL_GAP, small_gap),
        skipped: None,
        plots: vec![plot],
        details: json!({
            "train_images": train, "test_images": test, "epochs": epochs,
            "temperature": TAU, "momentum": MOMENTUM,
            "random_init_probe_accuracy": random,
            "arms": all_rows,
        }),
    })
}
