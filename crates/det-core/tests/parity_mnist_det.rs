//! MNIST-det's ground truth read by pycocotools (`tests/parity/mnist_det_reference.py`, run by
//! `$CVLAB_PYTHON`): the ground truth as detections scores AP 1.0 there as here, jittered
//! detections give the same 12 numbers, and the per-range counts agree.

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tch")]

use det_core::coco::{write_detections, CocoDetection};
use det_core::data::{to_coco, DetectionReport, MnistDet, MnistDetConfig};
use det_core::synth::SplitMix64;
use det_core::CocoDataset;

fn perfect(gt: &CocoDataset) -> Vec<CocoDetection> {
    gt.annotations
        .iter()
        .map(|a| CocoDetection {
            image_id: a.image_id,
            category_id: a.category_id,
            bbox: a.bbox,
            score: 1.0,
        })
        .collect()
}

/// Boxes moved by up to 15 % of their size, 10 % dropped, 10 % with another class, one false
/// positive per image, scores with two decimals (many ties).
fn jittered(gt: &CocoDataset) -> Vec<CocoDetection> {
    let mut r = SplitMix64::new(7);
    let mut out = Vec::new();
    for a in &gt.annotations {
        if r.uniform() < 0.1 {
            continue;
        }
        let [x, y, w, h] = a.bbox;
        let mut j = || (r.uniform() - 0.5) * 0.3;
        let b = [x + j() * w, y + j() * h, w * (1.0 + j()), h * (1.0 + j())];
        let cat = if r.uniform() < 0.1 {
            1 + r.below(10) as i64
        } else {
            a.category_id
        };
        out.push(CocoDetection {
            image_id: a.image_id,
            category_id: cat,
            bbox: b,
            score: (r.uniform() * 100.0).round() / 100.0,
        });
    }
    for im in &gt.images {
        let s = 8.0 + r.uniform() * 100.0;
        out.push(CocoDetection {
            image_id: im.id,
            category_id: 1 + r.below(10) as i64,
            bbox: [r.uniform() * 140.0, r.uniform() * 140.0, s, s],
            score: (r.uniform() * 100.0).round() / 100.0,
        });
    }
    out
}

#[test]
#[ignore = "needs CVLAB_PYTHON with pycocotools and the real MNIST; run by cargo xtask test"]
fn parity_mnist_det_with_pycocotools() {
    let cfg = MnistDetConfig {
        test_images: 150,
        ..MnistDetConfig::default()
    };
    let (_, test) = MnistDet::load(None, &cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    test.write_folder(dir.path()).unwrap();
    let gt_path = dir.path().join("instances_test.json");
    let gt = CocoDataset::read(&gt_path).unwrap();
    assert_eq!(gt, to_coco(&test).unwrap());
    let cases = [("perfect", perfect(&gt)), ("jittered", jittered(&gt))];
    let mut args = Vec::new();
    for (name, d) in &cases {
        let p = dir.path().join(format!("{name}.json"));
        write_detections(&p, d).unwrap();
        args.push(format!("{name}={}", p.display()));
    }
    let mut argv: Vec<&str> = vec![gt_path.to_str().unwrap()];
    argv.extend(args.iter().map(String::as_str));
    let out = test_support::run_reference_with(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/mnist_det_reference.py",
        "pycocotools",
        &argv,
    );
    let exp = test_support::read_json(&out.path().join("expected.json"));
    let c = test.area_counts();
    let counts = &exp["counts"];
    eprintln!("MNIST-det test, 150 canvases: ours {c:?}, pycocotools {counts}");
    assert_eq!(counts["all"].as_u64().unwrap() as usize, c.total);
    assert_eq!(counts["small"].as_u64().unwrap() as usize, c.small);
    assert_eq!(counts["medium"].as_u64().unwrap() as usize, c.medium);
    assert_eq!(counts["large"].as_u64().unwrap() as usize, c.large);
    for (name, d) in &cases {
        let ours = DetectionReport::score(&test, d).unwrap().stats;
        let theirs: Vec<f64> = exp[*name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let diff = test_support::max_abs_diff(&ours, &theirs);
        eprintln!("{name}: ours {ours:?}\n  max |diff| to pycocotools {diff:.2e}");
        test_support::assert_all_close(&ours, &theirs, test_support::Tol::abs(1e-12));
        if *name == "perfect" {
            // every stat but AR@1 (one detection per image cannot find every digit)
            let perfect: Vec<f64> = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
                .iter()
                .map(|&k| theirs[k])
                .collect();
            test_support::assert_all_close(&perfect, &[1.0; 11], test_support::Tol::abs(1e-12));
        } else {
            assert!(
                theirs[0] > 0.2 && theirs[0] < 0.9,
                "jittered AP {}",
                theirs[0]
            );
        }
    }
}
