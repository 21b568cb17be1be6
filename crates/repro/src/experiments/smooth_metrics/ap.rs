//! `smooth.ap`: Smooth-AP fine-tuning of an embedding after a contrastive loss, against the
//! contrastive loss alone, on Fashion-MNIST retrieval (every test image a query against the
//! other test images): mAP and recall at 1 and 4.

use anyhow::Result;
use serde_json::json;
use tch::{nn, nn::Module, Tensor};

use losses_smooth_metrics::{self as lsm, Recipe, SMOOTH_AP_TAU};

use super::{
    fit, load, mean, mean_series, mlp, paired, seeds, series, smoke_tolerance, Budget, PAIRED_NOTE,
};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};

const MAP_GAIN: &str = "Smooth-AP fine-tuning: test mAP gain over contrastive (mean over seeds)";
const R1_GAIN: &str =
    "Smooth-AP fine-tuning: test recall@1 gain over contrastive (mean over seeds)";

/// Fashion-MNIST training-set mean and std of the [0, 1] pixels.
const MEAN: f64 = 0.2860;
const STD: f64 = 0.3530;

/// The contrastive baseline's margin on unit-norm embeddings (distances in [0, 2]).
const MARGIN: f64 = 1.0;

pub(super) fn claim() -> Claim {
    Claim {
        id: "smooth.ap",
        claim: "Fine-tuning an embedding with Smooth-AP (tau 0.01) after a contrastive loss \
                raises retrieval mAP and recall@1 over the contrastive loss trained as long",
        source: "Brown, Xie, Kalogeiton, Zisserman 2020, Smooth-AP, ECCV (arXiv 2007.12163), \
                 Sec. 3-4, Tables 2-3 (Smooth-AP above pairwise losses on SOP, VehicleID, INaturalist)",
        paper_value: "e.g. SOP recall@1 80.1 (Smooth-AP) vs 73.7-79.x for pairwise/contrastive baselines",
        tolerance: Tolerance::new([
            Bound::above(MAP_GAIN, 0.0).percent(),
            Bound::at_least(R1_GAIN, 0.0).percent(),
        ])
        .note(PAIRED_NOTE),
        smoke_tolerance: smoke_tolerance(),
        full_needs: None,
        run,
    }
}

/// (train, test, cross-entropy epochs, metric epochs) in smoke, quick and full mode.
const BUDGETS: [[usize; 4]; 3] = [
    [2048, 1000, 2, 1],
    [20_000, 2000, 4, 3],
    [60_000, 5000, 8, 4],
];

const BATCH: usize = 128;

/// The contrastive loss (Hadsell, Chopra, LeCun 2006) over every pair of the batch, on
/// L2-normalised embeddings: `y d^2 + (1 - y) relu(m - d)^2`, mean over pairs `i < j`.
fn contrastive(z: &Tensor, y: &Tensor) -> Tensor {
    let e = z / z
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12);
    let d2 = (e.matmul(&e.transpose(0, 1)) * -2.0 + 2.0).clamp_min(0.0);
    let d = (&d2 + 1e-12).sqrt();
    let same = y.unsqueeze(1).eq_tensor(&y.unsqueeze(0)).to_kind(z.kind());
    let b = z.size()[0];
    let upper = Tensor::ones([b, b], (z.kind(), z.device())).triu(1);
    let apart = (-d + MARGIN).relu().square();
    let per_pair = &same * &d2 + (-&same + 1.0) * apart;
    (per_pair * &upper).sum(z.kind()) / upper.sum(z.kind())
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let b = Budget::pick(ctx.mode, BUDGETS);
    let data = load(ctx, "fashion-mnist", b.train, b.test)?;
    let flat = |x: &Tensor| ((x - MEAN) / STD).view([x.size()[0], -1]);
    let (x_train, y_train) = (flat(&data.train_images), data.train_labels.shallow_clone());
    let (x_test, y_test) = (flat(&data.test_images), data.test_labels.shallow_clone());
    let n = x_train.size()[0];
    let epochs = b.first_epochs + b.metric_epochs;
    let arms = [
        ("contrastive", Recipe::CrossEntropy),
        (
            "contrastive then Smooth-AP",
            Recipe::Sequential {
                switch_epoch: b.first_epochs as u64,
            },
        ),
    ];
    let mut map: [Vec<f64>; 2] = Default::default();
    let mut r1: [Vec<f64>; 2] = Default::default();
    let mut r4: [Vec<f64>; 2] = Default::default();
    let mut curves: [Vec<Vec<(f64, f64)>>; 2] = Default::default();
    for s in 0..seeds(ctx.mode) {
        let seed = ctx.seed + s as u64;
        for (a, (arm, recipe)) in arms.iter().enumerate() {
            tch::manual_seed(seed as i64);
            let mut vs = nn::VarStore::new(ctx.device);
            let model = mlp(&vs.root(), &[784, 256, 64]);
            // The recipe's first term is the early-phase loss: here the contrastive one.
            let step = |idx: &Tensor, info: &train_kit::StepInfo| {
                let z = model.forward(&x_train.index_select(0, idx));
                let y = y_train.index_select(0, idx);
                Ok(recipe.combine(
                    info.epoch,
                    || Ok(contrastive(&z, &y)),
                    || lsm::smooth_ap_loss(&z, &y, SMOOTH_AP_TAU),
                )?)
            };
            let eval = |_| -> Result<train_kit::EvalMetrics> {
                let z = tch::no_grad(|| model.forward(&x_test));
                Ok(vec![
                    (
                        "test_map".into(),
                        lsm::mean_average_precision(&z, &y_test, false)?,
                    ),
                    ("test_recall_at_1".into(), lsm::recall_at_k(&z, &y_test, 1)?),
                    ("test_recall_at_4".into(), lsm::recall_at_k(&z, &y_test, 4)?),
                ])
            };
            let label = format!("smooth.ap {arm} seed {seed}");
            let report = fit(
                ctx,
                &mut vs,
                n,
                BATCH,
                epochs,
                1e-3,
                seed,
                &format!("runs/{a}_{s}"),
                &label,
                step,
                eval,
            )?;
            let last = |k: &str| series(&report, k).last().map(|p| p.1).unwrap_or(f64::NAN);
            map[a].push(last("test_map"));
            r1[a].push(last("test_recall_at_1"));
            r4[a].push(last("test_recall_at_4"));
            curves[a].push(series(&report, "test_map"));
        }
    }
    let (g_map, g_r1, g_r4) = (
        paired(&map[1], &map[0]),
        paired(&r1[1], &r1[0]),
        paired(&r4[1], &r4[0]),
    );
    let plot = "map.png";
    let s: Vec<train_kit::Series> = arms
        .iter()
        .enumerate()
        .map(|(a, (name, _))| train_kit::Series::new(*name, mean_series(&curves[a], 100.0)))
        .collect();
    train_kit::line_plot(
        &ctx.out_dir.join(plot),
        "smooth.ap: Fashion-MNIST retrieval, MLP embedding, mean over seeds",
        "epoch",
        "test mAP (%)",
        &s,
    )?;
    Ok(Outcome {
        value: g_map.mean,
        value_text: format!(
            "test mAP {:.2}% (contrastive) vs {:.2}% (then Smooth-AP): {}; recall@1 {:.2}% vs {:.2}%: {}; \
             recall@4 {}; {} seeds",
            100.0 * mean(&map[0]), 100.0 * mean(&map[1]), g_map.points(),
            100.0 * mean(&r1[0]), 100.0 * mean(&r1[1]), g_r1.points(), g_r4.points(), seeds(ctx.mode)
        ),
        measured: Measured::new().number(MAP_GAIN, g_map.mean).number(R1_GAIN, g_r1.mean),
        skipped: None,
        plots: vec![plot.into()],
        details: json!({
            "per_seed": {"map": map, "recall_at_1": r1, "recall_at_4": r4, "arms": ["contrastive", "contrastive_then_smooth_ap"]},
            "map_gain": g_map.json(), "recall_at_1_gain": g_r1.json(), "recall_at_4_gain": g_r4.json(),
            "recipe": {"model": "MLP 784 -> 256 -> 64, ReLU, cosine similarity", "optimizer": "AdamW lr 1e-3, no decay, warmup + cosine",
                       "batch": BATCH, "contrastive_epochs": b.first_epochs, "smooth_ap_epochs": b.metric_epochs,
                       "contrastive_margin": MARGIN, "smooth_ap_tau": SMOOTH_AP_TAU, "train": b.train, "test": b.test,
                       "retrieval": "each test image a query against the other test images"},
        }),
    })
}
