//! The `--full` path end to end on a tiny ImageNet-layout folder: JPEGs of several sizes decoded
//! by the parallel loader, pre-training, the encoder into a classifier, fine-tuning with the
//! official augmentations (RandAugment, mixup / CutMix, erasing) and the official evaluation
//! transform; then a second call resumes from the finished checkpoints instead of training again.

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use image::{Rgb, RgbImage};
use mae::recipe::{run_recipe, ImageNetRun, Recipe};
use mae::{FinetuneConfig, PretrainConfig};
use tch::Device;

mod common;

/// `n` images per class under `dir/{horizontal,vertical}`: stripes of period 8 in two colours,
/// sizes 40..61 x 36..57 so that both resizes and the aspect-keeping crop have work to do.
fn write_split(dir: &Path, n: u32) {
    for (class, vertical) in [("horizontal", false), ("vertical", true)] {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let (w, h) = (40 + (i * 7) % 21, 36 + (i * 5) % 21);
            let img = RgbImage::from_fn(w, h, |x, y| {
                let t = if vertical { x + i } else { y + i };
                if (t / 4) % 2 == 0 {
                    Rgb([220, 40 + (i * 9 % 60) as u8, 30])
                } else {
                    Rgb([20, 30, 200])
                }
            });
            img.save(d.join(format!("{i:03}.jpg"))).unwrap();
        }
    }
}

fn tiny_recipe() -> Recipe {
    let mut model = common::tiny(32, 3);
    model.encoder.patch_size = 8;
    model.norm_pix_loss = true;
    Recipe {
        model,
        pretrain: PretrainConfig {
            epochs: 1,
            warmup_epochs: 0.5,
            batch_size: 4,
            accum_iter: 1,
            lr: Some(1e-3),
            ..PretrainConfig::default()
        },
        finetune: FinetuneConfig {
            epochs: 2,
            warmup_epochs: 0.5,
            batch_size: 4,
            accum_iter: 2,
            lr: Some(1e-3),
            ..FinetuneConfig::default()
        },
        num_classes: 2,
        drop_path: 0.1,
        train_decode: 40,
        eval_resize: 36,
        eval_batch: 3,
        pretrained_name: "pretrained.safetensors".into(),
    }
}

#[test]
fn full_recipe_runs_end_to_end_on_an_image_folder_and_resumes() {
    let data = tempfile::tempdir().unwrap();
    write_split(&data.path().join("train"), 12);
    write_split(&data.path().join("val"), 4);
    let out = tempfile::tempdir().unwrap();
    let run = ImageNetRun {
        root: data.path().to_path_buf(),
        out_dir: out.path().to_path_buf(),
        pretrained: None,
        device: Device::Cpu,
        seed: 3,
    };
    let recipe = tiny_recipe();
    let first = run_recipe(&run, &recipe).unwrap();
    assert_eq!(first.pretrained, out.path().join("pretrained.safetensors"));
    assert!(first.pretrained.is_file());
    for stage in ["pretrain", "finetune"] {
        assert!(
            out.path().join(stage).join("latest.json").is_file(),
            "{stage}"
        );
    }
    let acc = &first.finetune.accuracy;
    assert_eq!(acc.iter().map(|a| a.0).collect::<Vec<_>>(), vec![1, 2]);
    // 8 validation images: accuracies are multiples of 1/8.
    assert!(
        acc.iter().all(|&(_, a)| (a * 8.0).fract() == 0.0),
        "{acc:?}"
    );
    assert_eq!(first.finetune.epoch_loss.len(), 2);
    assert!(first.finetune.epoch_loss.iter().all(|l| l.is_finite()));

    // Again: the weights are there and both checkpoints are at their last step.
    let second = run_recipe(&run, &recipe).unwrap();
    assert_eq!(second.finetune.accuracy, first.finetune.accuracy);
    assert_eq!(second.finetune.epoch_loss, first.finetune.epoch_loss);
    assert_eq!(second.finetune.resumed_at, Some(2 * 6));

    // Fine-tuning a given encoder checkpoint that is not one is an error, not a crash.
    let bad = out.path().join("not_weights.safetensors");
    std::fs::write(&bad, b"garbage").unwrap();
    let other = tempfile::tempdir().unwrap();
    let run_bad = ImageNetRun {
        pretrained: Some(bad),
        out_dir: other.path().to_path_buf(),
        ..run.clone()
    };
    let err = run_recipe(&run_bad, &recipe).unwrap_err().to_string();
    assert!(err.contains("not_weights.safetensors"), "{err}");

    // A root without `val/` is refused before any training.
    std::fs::remove_dir_all(data.path().join("val")).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let run_noval = ImageNetRun {
        out_dir: fresh.path().to_path_buf(),
        pretrained: Some(first.pretrained.clone()),
        ..run
    };
    let err = run_recipe(&run_noval, &recipe).unwrap_err().to_string();
    assert!(err.contains("val"), "{err}");
    assert!(
        !fresh.path().join("finetune").exists(),
        "trained before checking val/"
    );
}
