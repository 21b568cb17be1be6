//! PNG output of `line_plot` / `loss_curve_png` decodes with the requested size.

use serde_json::json;
use train_kit::{line_plot, loss_curve_png, register_fonts, MetricsLog, Series};

#[test]
fn line_plot_writes_a_png() {
    register_fonts();
    register_fonts(); // idempotent
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("curves.png");
    let train: Vec<(f64, f64)> = (0..50)
        .map(|i| (i as f64, (-(i as f64) / 15.0).exp()))
        .collect();
    let val: Vec<(f64, f64)> = (0..50)
        .step_by(5)
        .map(|i| (i as f64, 0.1 + (-(i as f64) / 20.0).exp()))
        .collect();
    line_plot(
        &png,
        "loss",
        "step",
        "loss",
        &[Series::new("train", train), Series::new("val", val)],
    )
    .unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (960, 600));
    // Not a blank canvas: some non-white pixels (lines, text).
    let rgb = img.to_rgb8();
    let ink = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(ink > 1000, "{ink} non-white pixels");

    // Degenerate inputs still render.
    line_plot(&dir.path().join("empty.png"), "empty", "x", "y", &[]).unwrap();
    line_plot(
        &dir.path().join("flat.png"),
        "flat",
        "x",
        "y",
        &[Series::new("c", vec![(1.0, 2.0), (1.0, f64::NAN)])],
    )
    .unwrap();
}

#[test]
fn loss_curve_from_metrics_log() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("metrics.jsonl");
    let log = MetricsLog::create(&jsonl).unwrap();
    for step in 0..20 {
        log.log(&json!({"step": step * 10, "loss": 2.0 / (1.0 + step as f64), "lr": 1e-3}))
            .unwrap();
    }
    log.log(&json!({"event": "eval", "acc": 0.5})).unwrap();
    let png = dir.path().join("loss.png");
    loss_curve_png(&jsonl, &png, "loss").unwrap();
    let img = image::open(&png).unwrap();
    assert!(img.width() > 0 && img.height() > 0);
}
