//! `oad.full`: OadTR on THUMOS'14 with the official recipe (`config.py`, `main.py`): windows of
//! 64 with stride 1 and ambiguous targets dropped, batch 128, lr 1e-4 dropped x0.1 every epoch
//! (`StepLR(lr_drop=1)`), weight decay 1e-4, clipping at 1.0, epochs 1..4 (`range(start_epoch
//! 1, epochs 5)`), then the per-frame mAP over the 20 actions on the test videos.
//!
//! The features come from the official release, converted once by
//! `crates/oad-transformer/tools/thumos_to_npy.py` into `DIR/thumos/{train,test}/<video>.
//! {features,labels}.npy`. Differences from the official run: AdamW's decoupled weight decay
//! instead of Adam's L2 term, and no random start offset per training video.

use std::path::Path;

use anyhow::{ensure, Result};
use serde_json::json;
use tch::nn;

use oad_transformer::{FeatureStream, OadConfig, OadTR, WindowSet, WindowSpec};

use super::{fit, Detector, Recipe};
use crate::claim::{Ctx, Measured, Outcome};
use crate::report::{Mode, Verdict};

pub(crate) const MAP: &str = "THUMOS'14 test mAP";

/// The command that runs the claim at paper scale.
pub(crate) const FULL_COMMAND: &str = "python crates/oad-transformer/tools/thumos_to_npy.py \
     <official pickles, data_info_new.json> DIR && cargo xtask reproduce oad.full --full \
     --device cuda --data-root DIR";

fn thumos_dirs(root: Option<&Path>) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let r = root?.join("thumos");
    let (train, test) = (r.join("train"), r.join("test"));
    (train.is_dir() && test.is_dir()).then_some((train, test))
}

pub(crate) fn run(ctx: &Ctx) -> Result<Outcome> {
    let dirs = thumos_dirs(ctx.data_root.as_deref());
    let (Mode::Full, tch::Device::Cuda(_), Some((train_dir, test_dir))) =
        (ctx.mode, ctx.device, dirs)
    else {
        return Ok(Outcome {
            value: f64::NAN,
            value_text: format!(
                "needs: the THUMOS'14 features of the official OadTR release (Kinetics, 4096-d) \
                 converted to DIR/thumos/{{train,test}} + a GPU: {FULL_COMMAND}"
            ),
            measured: Measured::new(),
            skipped: Some(Verdict::NeedsData),
            plots: vec![],
            details: json!({"paper_map": 65.2, "paper_map_anet_features": 58.3, "command": FULL_COMMAND}),
        });
    };
    let cfg0 = OadConfig::thumos_kinetics();
    let train = FeatureStream::read_dir(&train_dir, cfg0.num_classes)?;
    let test = FeatureStream::read_dir(&test_dir, cfg0.num_classes)?;
    let width = train.first().map_or(0, FeatureStream::width);
    ensure!(
        width == 4096 || width == 3072,
        "THUMOS features are {width}-d: expected 4096 (Kinetics) or 3072 (TSN-ANet)"
    );
    let cfg = OadConfig {
        feature_dim: width,
        ..cfg0
    };
    let spec = WindowSpec::official(&cfg, cfg.num_queries());
    let train_set = WindowSet::new(&train, spec, cfg.num_classes, cfg.ambiguous_class)?;
    let test_set = WindowSet::new(&test, spec, cfg.num_classes, cfg.ambiguous_class)?;
    tch::manual_seed(20 + ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let det = Detector::Oad(Box::new(OadTR::new(&vs.root(), &cfg)?));
    let recipe = Recipe {
        epochs: 4,
        batch_size: 128,
        lr: 1e-4,
        weight_decay: 1e-4,
        clip: 1.0,
        cosine: false,
        seed: 20 + ctx.seed,
        label: "oad.full THUMOS'14".into(),
        eval_every_epoch: true,
    };
    let f = fit(&mut vs, &det, &cfg, &train_set, &test_set, &recipe)?;
    let map = 100.0 * f.metrics.current.map;
    train_kit::line_plot(
        &ctx.out_dir.join("thumos_map.png"),
        "OadTR on THUMOS'14: test per-frame mAP",
        "epoch",
        "mAP (%)",
        &[train_kit::Series::new("OadTR", f.curve.clone())],
    )?;
    Ok(Outcome {
        value: map,
        value_text: format!(
            "{map:.1} mAP, {:.1} mcAP ({width}-d features; paper 65.2 with Kinetics features)",
            100.0 * f.metrics.current.cap
        ),
        measured: Measured::new().number(MAP, map),
        skipped: None,
        plots: vec!["thumos_map.png".into()],
        details: json!({
            "metrics": f.metrics, "train_windows": train_set.len(), "test_windows": test_set.len(),
            "seconds": f.seconds, "config": cfg,
        }),
    })
}
