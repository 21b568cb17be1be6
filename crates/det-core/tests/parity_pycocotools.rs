//! Parity with pycocotools `COCOeval` (bbox) and torchvision's `nms` / `batched_nms` /
//! `box_iou` on generated data (`tests/parity/coco_reference.py`, run by `$CVLAB_PYTHON`):
//! crowd regions, all three area ranges (and an area exactly on a boundary), images without
//! ground truth or detections, more than 100 detections per image, tied scores, a detection
//! category missing from the ground truth and a listed category never annotated. Also the VOC
//! evaluator against the devkit's `voc_eval` logic (11-point and all-point, difficult, +1).

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use det_core::coco::read_detections;
use det_core::voc_eval::{voc_evaluate, VocDet, VocGt, VocMetric, VocParams};
use det_core::{batched_nms, box_iou, evaluate, nms, CocoDataset, CocoParams};
use serde_json::Value;
use test_support::{assert_all_close, max_abs_diff, Tol};

fn reference_dir() -> tempfile::TempDir {
    test_support::run_reference(
        env!("CARGO_MANIFEST_DIR"),
        "tests/parity/coco_reference.py",
        "pycocotools, torchvision",
    )
}

fn read_json(p: &Path) -> Value {
    test_support::read_json(p)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The array's values in logical (row-major, numpy C) order.
fn flat<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> Vec<f64> {
    a.iter().copied().collect()
}

fn check_coco(dir: &Path) -> (f64, f64) {
    let gt = CocoDataset::read(&dir.join("gt.json")).unwrap();
    let dt = read_detections(&dir.join("dt.json")).unwrap();
    let exp = read_json(&dir.join("expected.json"));
    let ev = evaluate(&gt, &dt, &CocoParams::default()).unwrap();
    assert_eq!(
        ev.unknown_categories,
        vec![999]
            .into_iter()
            .filter(|_| ev.cat_ids.len() > 3)
            .collect::<Vec<i64>>()
    );
    let shape: Vec<usize> = exp["precision_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(shape, ev.precision_shape().to_vec());
    let tol = Tol::abs(1e-12);
    let (stats, precision, recall, scores) = (
        floats(&exp["stats"]),
        floats(&exp["precision"]),
        floats(&exp["recall"]),
        floats(&exp["scores"]),
    );
    let stat_diff = max_abs_diff(&ev.summary.stats, &stats);
    let arr_diff = max_abs_diff(&flat(&ev.precision), &precision)
        .max(max_abs_diff(&flat(&ev.recall), &recall))
        .max(max_abs_diff(&flat(&ev.scores), &scores));
    eprintln!(
        "{}: max |stat diff| {stat_diff:.3e}, max |precision/recall/scores diff| {arr_diff:.3e}, stats {:?}",
        dir.display(),
        ev.summary.stats
    );
    assert_all_close(&ev.summary.stats, &stats, tol);
    assert_all_close(&flat(&ev.precision), &precision, tol);
    assert_all_close(&flat(&ev.recall), &recall, tol);
    assert_all_close(&flat(&ev.scores), &scores, tol);
    // One thread and several give the same doubles: stats, arrays and evalImgs (kept, which
    // changes nothing else).
    let keep = |threads| {
        evaluate(
            &gt,
            &dt,
            &CocoParams {
                threads,
                keep_eval_imgs: true,
                ..CocoParams::default()
            },
        )
        .unwrap()
    };
    let base = keep(1);
    assert!(!base.eval_imgs.is_empty() && ev.eval_imgs.is_empty());
    for threads in [1, 2, 3, 8] {
        let other = keep(threads);
        assert_eq!(other.summary, ev.summary, "{threads} threads");
        assert_eq!(other.precision, ev.precision, "{threads} threads");
        assert_eq!(other.recall, ev.recall, "{threads} threads");
        assert_eq!(other.scores, ev.scores, "{threads} threads");
        assert!(
            other.eval_imgs == base.eval_imgs,
            "{threads} threads: evalImgs"
        );
    }
    (stat_diff, arr_diff)
}

#[test]
#[ignore = "needs CVLAB_PYTHON with pycocotools and torchvision; run by cargo xtask test"]
fn parity_with_pycocotools_and_torchvision() {
    let dir = reference_dir();
    let mut worst = 0.0f64;
    for case in ["case0", "case1", "case2"] {
        let (s, a) = check_coco(&dir.path().join(case));
        worst = worst.max(s).max(a);
    }
    let cases = read_json(&dir.path().join("nms.json"));
    let mut iou_worst = 0.0f64;
    for c in cases.as_array().unwrap() {
        let boxes: Vec<[f32; 4]> = c["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let v = floats(b);
                [v[0] as f32, v[1] as f32, v[2] as f32, v[3] as f32]
            })
            .collect();
        let scores: Vec<f32> = floats(&c["scores"]).iter().map(|&s| s as f32).collect();
        let classes: Vec<i64> = c["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let thr = c["iou_threshold"].as_f64().unwrap();
        let keep: Vec<usize> = floats(&c["keep"]).iter().map(|&k| k as usize).collect();
        assert_eq!(
            nms(&boxes, &scores, thr).unwrap(),
            keep,
            "nms, {} boxes",
            boxes.len()
        );
        let bkeep: Vec<usize> = floats(&c["batched_keep"])
            .iter()
            .map(|&k| k as usize)
            .collect();
        let ours = batched_nms(&boxes, &scores, &classes, thr).unwrap();
        if boxes.len() <= 1000 {
            // torchvision's coordinate trick (numel <= 4000 on the CPU): same order.
            assert_eq!(ours, bkeep, "batched_nms, {} boxes", boxes.len());
        } else {
            // Above that torchvision loops per class and orders the kept boxes with an
            // unstable sort by score: same set, same scores in order, ties in any order.
            let (mut a, mut b) = (ours.clone(), bkeep.clone());
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "batched_nms kept set, {} boxes", boxes.len());
            let sa: Vec<f32> = ours.iter().map(|&i| scores[i]).collect();
            let sb: Vec<f32> = bkeep.iter().map(|&i| scores[i]).collect();
            assert_eq!(sa, sb);
        }
        let rows = c["iou_rows"].as_u64().unwrap() as usize;
        let m: Vec<f64> = box_iou(&boxes[..rows], &boxes)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        // float32 values written by Python's json; read back exactly (float_roundtrip).
        let exp: Vec<f64> = c["iou"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(floats)
            .collect();
        assert_eq!(m.len(), exp.len(), "box_iou shape");
        iou_worst = iou_worst.max(max_abs_diff(&m, &exp));
    }
    let voc = read_json(&dir.path().join("voc.json"));
    let gt: Vec<VocGt> = serde_json::from_value(voc["gt"].clone()).unwrap();
    let dets: Vec<VocDet> = serde_json::from_value(voc["dets"].clone()).unwrap();
    let mut voc_worst = 0.0f64;
    for (metric, key) in [
        (VocMetric::ElevenPoint, "eleven"),
        (VocMetric::AllPoint, "all"),
    ] {
        let p = VocParams {
            metric,
            ..VocParams::default()
        };
        let r = voc_evaluate(&gt, &dets, &p).unwrap();
        assert_eq!(r.classes.len(), 2);
        for c in &r.classes {
            let want = voc["expected"][&c.class][key].as_f64().unwrap();
            voc_worst = voc_worst.max((c.ap - want).abs());
            assert!(c.ap > 0.0);
        }
    }
    eprintln!(
        "COCO worst diff {worst:.3e}; NMS indices equal; box_iou max diff {iou_worst:.3e}; VOC AP max diff {voc_worst:.3e}"
    );
    assert!(voc_worst <= 1e-12, "VOC AP differs by {voc_worst}");
    assert!(
        iou_worst == 0.0,
        "box_iou differs from torchvision by {iou_worst}"
    );
}
