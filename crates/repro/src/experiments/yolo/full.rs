//! `yolo.full`: the paper's VOC recipe (needs VOC 2007 + 2012 and a GPU; not run by this
//! release), with the paper network's and Fast YOLO's inference speed measured on whatever
//! device runs the claim (448 x 448, batch 1, random weights: speed does not depend on them).

use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use tch::{nn, Kind, Tensor};
use yolo::{parameter_count, Yolo, YoloConfig};

use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::{Mode, Verdict};

const FULL_MAP: &str = "mAP on VOC 2007 test";

const FULL_COMMAND: &str = "cargo run --release -p repro -- run yolo.full --full --device cuda \
     --data-root DIR (DIR/VOCdevkit/VOC2007, DIR/VOCdevkit/VOC2012: trainval of both, test of \
     2007)";

pub(super) fn claims() -> Vec<Claim> {
    vec![Claim {
        id: "yolo.full",
        claim: "YOLO v1 trained on VOC 2007+2012 reaches the paper's 63.4 mAP on VOC 2007 at \
                real-time speed (Fast YOLO 52.7 mAP)",
        source: "Redmon et al. 2016, arXiv 1506.02640, Table 1 (YOLO 63.4 mAP at 45 FPS, Fast \
                 YOLO 52.7 at 155 FPS, Titan X) and Sec. 2.2 (135 epochs, batch 64, momentum \
                 0.9, decay 5e-4)",
        paper_value: "63.4 mAP, 45 FPS (Fast YOLO 52.7, 155 FPS)",
        tolerance: Tolerance::new([Bound::within(FULL_MAP, 63.4, 2.0).unit(" mAP")]),
        smoke_tolerance: None,
        full_needs: Some("GPU + VOC 2007 and 2012"),
        run: run_full,
    }]
}

/// Images/s of `cfg`'s network on batch-1 inputs: `warm` untimed forwards, then `timed`.
fn fps(ctx: &Ctx, cfg: &YoloConfig, warm: usize, timed: usize) -> Result<(f64, i64)> {
    let vs = nn::VarStore::new(ctx.device);
    let m = Yolo::new(&vs.root(), cfg)?;
    let x = Tensor::rand([1, 3, cfg.input, cfg.input], (Kind::Float, ctx.device));
    let run = || -> Result<()> {
        let y = tch::no_grad(|| m.forward_t(&x, false))?;
        let _ = y.sum(Kind::Float).double_value(&[]);
        Ok(())
    };
    for _ in 0..warm {
        run()?;
    }
    let t0 = Instant::now();
    for _ in 0..timed {
        run()?;
    }
    Ok((
        timed as f64 / t0.elapsed().as_secs_f64(),
        parameter_count(&vs),
    ))
}

fn run_full(ctx: &Ctx) -> Result<Outcome> {
    let have = ctx.data_root.as_ref().is_some_and(|r| {
        r.join("VOCdevkit/VOC2007/JPEGImages").is_dir()
            && r.join("VOCdevkit/VOC2012/JPEGImages").is_dir()
    });
    let smoke = ctx.mode == Mode::Smoke;
    let (fast_fps, fast_params) = fps(ctx, &YoloConfig::fast(), 1, if smoke { 2 } else { 5 })?;
    let paper = if smoke {
        None
    } else {
        Some(fps(ctx, &YoloConfig::paper(), 1, 3)?)
    };
    let device = train_kit::device_name(ctx.device);
    let paper_text = paper.map_or_else(
        || "paper network not timed in smoke mode".to_string(),
        |(f, _)| format!("paper network {f:.2} img/s"),
    );
    Ok(Outcome {
        value: f64::NAN,
        value_text: format!(
            "needs: VOC 2007 + 2012 and a GPU, the 135-epoch loop is not part of this release \
             (VOC found: {have}); measured here on {device} at 448 px, batch 1: {paper_text}, \
             Fast YOLO {fast_fps:.1} img/s (paper: 45 and 155 FPS on a Titan X); meant for: \
             {FULL_COMMAND}"
        ),
        measured: Measured::new(),
        skipped: Some(Verdict::NeedsData),
        plots: vec![],
        details: json!({
            "command": FULL_COMMAND,
            "device": device,
            "paper_network": {"parameters": paper.map(|p| p.1), "images_per_s": paper.map(|p| p.0),
                              "output": [1, 7, 7, 30], "convs": 24},
            "fast_yolo": {"parameters": fast_params, "images_per_s": fast_fps,
                          "output": [1, 7, 7, 30], "convs": 8},
            "paper": {"map": 63.4, "fps": 45, "fast_map": 52.7, "fast_fps": 155},
            "recipe": "YoloConfig::paper() with ImageNet-pretrained first 20 convs (not shipped), \
                       LossConfig::darknet(), SGD momentum 0.9 decay 5e-4 batch 64, lr 1e-3 -> \
                       1e-2 warm-up, 75 epochs 1e-2, 30 1e-3, 30 1e-4, dropout 0.5, scale / \
                       translate 20 %, HSV exposure / saturation 1.5, VocFolder",
        }),
    })
}
