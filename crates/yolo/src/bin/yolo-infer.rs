//! `yolo-infer`: boxes drawn on any image by a trained YOLO model.
//!
//! ```text
//! yolo-infer --checkpoint DIR --image IN.png --out OUT.png [--thresh 0.2] [--device cpu]
//! ```
//!
//! `DIR` is a train-kit checkpoint folder written by a yolo training run (`latest.json`; the
//! repro claims `yolo.digits` / `yolo.trees` leave one under their output folder). The image
//! is letterboxed to the model's input, detected, and the boxes mapped back and drawn with
//! their class names and class-specific confidences; they are also printed as JSON lines.

use std::path::PathBuf;
use std::process::ExitCode;

use det_core::draw::{save_boxes_png, Annotated};
use det_core::transforms::letterbox;
use yolo::train::load_trained;
use yolo::{DecodeConfig, YoloDetector};

struct Args {
    checkpoint: PathBuf,
    image: PathBuf,
    out: PathBuf,
    thresh: f64,
    device: String,
}

const USAGE: &str = "usage: yolo-infer --checkpoint DIR --image IN --out OUT.png \
                     [--thresh 0.2] [--device cpu|cuda]";

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut checkpoint, mut image, mut out) = (None, None, None);
    let mut thresh = 0.2;
    let mut device = "cpu".to_string();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--checkpoint" => checkpoint = Some(PathBuf::from(val()?)),
            "--image" => image = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--thresh" => {
                let v = val()?;
                thresh = v
                    .parse()
                    .map_err(|_| format!("--thresh: expected a number, got `{v}`"))?;
            }
            "--device" => device = val()?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}")),
        }
    }
    let need =
        |v: Option<PathBuf>, name: &str| v.ok_or_else(|| format!("{name} is required\n{USAGE}"));
    Ok(Args {
        checkpoint: need(checkpoint, "--checkpoint")?,
        image: need(image, "--image")?,
        out: need(out, "--out")?,
        thresh,
        device,
    })
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let device = train_kit::parse_device(&a.device)?;
    let (_vs, model, recipe) = load_trained(&a.checkpoint, device)?;
    let img = image::open(&a.image)
        .map_err(|e| format!("{}: {e}", a.image.display()))?
        .to_rgb8();
    let n = model.config().input as u32;
    let (boxed, map) = letterbox(&img, n, n)?;
    let x = det_core::data::rgb_to_tensor(&boxed)?
        .unsqueeze(0)
        .to_device(device);
    let det = YoloDetector {
        model: &model,
        cfg: DecodeConfig {
            score_thresh: a.thresh,
            ..Default::default()
        },
    };
    let found = det.run(&x)?;
    let mut shown = Vec::new();
    for d in &found {
        for (b, score, class) in d.to_vecs()? {
            let bbox = map.inverse(b);
            let label = recipe
                .classes
                .get(class as usize)
                .cloned()
                .unwrap_or_else(|| class.to_string());
            println!(
                "{}",
                serde_json::json!({"bbox": bbox, "score": score, "class": class, "label": label})
            );
            shown.push(Annotated {
                bbox,
                label,
                score: Some(score),
                color: class as usize,
            });
        }
    }
    save_boxes_png(&img, &shown, &a.out)?;
    eprintln!("{} boxes -> {}", shown.len(), a.out.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yolo-infer: {e}");
            ExitCode::FAILURE
        }
    }
}
