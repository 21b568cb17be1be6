//! Hand-checked COCO evaluations (no Python needed): perfect detections give AP 1, a
//! crowd-only image turns a duplicate into an ignored detection, area ranges pick by the
//! ground truth's `area`, categories missing from the ground truth are reported, bad input
//! is named.

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use det_core::{evaluate, CocoDataset, CocoDetection, CocoParams, DetError};

fn gt(anns: &str) -> CocoDataset {
    let text = format!(
        r#"{{"images":[{{"id":1}},{{"id":2}},{{"id":3}}],"categories":[{{"id":1,"name":"a"}},{{"id":2,"name":"b"}}],"annotations":[{anns}]}}"#
    );
    CocoDataset::from_json_str(&text, "gt.json").unwrap()
}

/// pycocotools' precision is tp / (tp + fp + eps): a perfect AP is 1 - 2.2e-16, not 1.
fn assert_one(v: f64) {
    test_support::assert_close(v, 1.0, test_support::Tol::abs(1e-12));
    assert!(v <= 1.0, "expected at most 1, got {v}");
}

fn det(image_id: i64, category_id: i64, bbox: [f64; 4], score: f64) -> CocoDetection {
    CocoDetection {
        image_id,
        category_id,
        bbox,
        score,
    }
}

#[test]
fn perfect_detections_score_one() {
    let g = gt(
        r#"{"id":1,"image_id":1,"category_id":1,"bbox":[10,10,20,20],"area":400},
                 {"id":2,"image_id":2,"category_id":2,"bbox":[0,0,200,100],"area":20000}"#,
    );
    let d = [
        det(1, 1, [10.0, 10.0, 20.0, 20.0], 0.9),
        det(2, 2, [0.0, 0.0, 200.0, 100.0], 0.8),
    ];
    let ev = evaluate(&g, &d, &CocoParams::default()).unwrap();
    let s = ev.summary.stats;
    assert_one(s[0]);
    assert_one(s[1]);
    assert_one(s[3]); // small: the 400 px^2 box
    assert_eq!(s[4], -1.0); // no medium ground truth
    assert_one(s[5]);
    assert_one(s[8]);
    let per_cat = ev.per_category_ap();
    assert_eq!(per_cat.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
    per_cat.iter().for_each(|p| assert_one(p.1));
    assert!(format!("{}", ev.summary).contains("maxDets=100 ] = 1.000"));
}

#[test]
fn crowd_absorbs_detections_and_false_positives_cost() {
    // image 1: one real box and a crowd region; a detection inside the crowd region is ignored.
    let g = gt(
        r#"{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,50,50],"area":2500},
                 {"id":2,"image_id":1,"category_id":1,"bbox":[100,100,100,100],"area":10000,"iscrowd":1}"#,
    );
    let with_crowd_hit = [
        det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.5),
        det(1, 1, [120.0, 120.0, 20.0, 20.0], 0.9),
    ];
    let ev = evaluate(&g, &with_crowd_hit, &CocoParams::default()).unwrap();
    assert_one(ev.summary.stats[0]);
    // the same detection far from everything is a false positive ranked first
    let fp = [
        det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.5),
        det(1, 1, [400.0, 400.0, 20.0, 20.0], 0.9),
    ];
    let ev = evaluate(&g, &fp, &CocoParams::default()).unwrap();
    assert!(ev.summary.stats[0] < 0.6 && ev.summary.stats[0] > 0.4);
}

#[test]
fn unknown_category_reported_and_unknown_image_rejected() {
    let g = gt(r#"{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,50,50],"area":2500}"#);
    let d = [
        det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.5),
        det(1, 7, [0.0, 0.0, 50.0, 50.0], 0.5),
    ];
    let ev = evaluate(&g, &d, &CocoParams::default()).unwrap();
    assert_eq!(ev.unknown_categories, vec![7]);
    assert_one(ev.summary.stats[0]);
    let bad = [det(9, 1, [0.0, 0.0, 5.0, 5.0], 0.5)];
    assert!(matches!(
        evaluate(&g, &bad, &CocoParams::default()),
        Err(DetError::UnknownImage {
            index: 0,
            image_id: 9
        })
    ));
    let nan = [det(1, 1, [0.0, f64::NAN, 5.0, 5.0], 0.5)];
    let e = evaluate(&g, &nan, &CocoParams::default()).unwrap_err();
    assert!(e.to_string().contains("detection 0"), "{e}");
}

#[test]
fn no_detections_gives_zero_and_no_ground_truth_gives_minus_one() {
    let g = gt(r#"{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,50,50],"area":2500}"#);
    let ev = evaluate(&g, &[], &CocoParams::default()).unwrap();
    assert_eq!(ev.summary.stats[0], 0.0);
    let empty = gt("");
    let ev = evaluate(
        &empty,
        &[det(1, 1, [0.0, 0.0, 5.0, 5.0], 0.5)],
        &CocoParams::default(),
    )
    .unwrap();
    assert_eq!(ev.summary.stats, [-1.0; 12]);
}

/// The PR curve at IoU 0.50 averages to AP50, and its PNG is written.
#[test]
fn pr_curves_average_to_ap50_and_draw() {
    let g = gt(
        r#"{"id":1,"image_id":1,"category_id":1,"bbox":[10,10,20,20],"area":400},
                 {"id":2,"image_id":2,"category_id":1,"bbox":[50,50,40,40],"area":1600},
                 {"id":3,"image_id":2,"category_id":2,"bbox":[0,0,200,100],"area":20000}"#,
    );
    let d = [
        det(1, 1, [11.0, 10.0, 20.0, 20.0], 0.9),
        det(1, 1, [60.0, 60.0, 20.0, 20.0], 0.95),
        det(2, 1, [52.0, 50.0, 40.0, 40.0], 0.5),
        det(2, 2, [0.0, 0.0, 150.0, 100.0], 0.8),
    ];
    let ev = evaluate(&g, &d, &CocoParams::default()).unwrap();
    let curves = ev.pr_curves();
    assert_eq!(curves.len(), 10);
    let (name, rec, prec) = &curves[0];
    assert_eq!(
        (name.as_str(), rec.len(), prec.len()),
        ("IoU=0.50", 101, 101)
    );
    let mean = prec.iter().sum::<f64>() / prec.len() as f64;
    let ap50 = ev.summary.stats[1];
    test_support::assert_close(mean, ap50, test_support::Tol::abs(1e-12));
    assert!(ap50 > 0.0 && ap50 < 1.0, "{ap50}");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("pr.png");
    det_core::draw::pr_curve_png(&curves[..1], &png, "PR").unwrap();
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}

/// The per-category parallel map is collected in category order: 1, 2, 3 and 8 threads give
/// the same doubles in the stats, the T x R x K x A x M arrays and evalImgs.
#[test]
fn thread_count_does_not_change_the_result() {
    let spec = det_core::synth::SynthSpec {
        images: 60,
        categories: 7,
        ground_truth: 400,
        detections_per_image: 30,
        seed: 11,
    };
    let (g, d) = det_core::synth::coco_like(&spec);
    let run = |threads| {
        evaluate(
            &g,
            &d,
            &CocoParams {
                threads,
                keep_eval_imgs: true,
                ..CocoParams::default()
            },
        )
        .unwrap()
    };
    let one = run(1);
    assert_eq!(
        one.eval_imgs.len(),
        7 * 4 * 60,
        "[k][a][i] records, None included"
    );
    assert_eq!(one.precision_shape(), [10, 101, 7, 4, 3]);
    assert!(one.summary.stats[0] > 0.0, "{:?}", one.summary.stats);
    for threads in [2, 3, 8] {
        let many = run(threads);
        assert_eq!(many.summary, one.summary, "{threads} threads");
        assert_eq!(many.precision, one.precision, "{threads} threads");
        assert_eq!(many.recall, one.recall, "{threads} threads");
        assert_eq!(many.scores, one.scores, "{threads} threads");
        assert!(
            many.eval_imgs == one.eval_imgs,
            "{threads} threads: evalImgs"
        );
    }
}
