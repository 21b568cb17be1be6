//! MNIST-det on the real MNIST digits (fetched into the cache on first use, as
//! `datasets::mnist::load("mnist", None)` does): per-range counts of the default config,
//! determinism down to the bytes of the written files, boxes tight around the ink, and the
//! ground truth scoring AP 1.0 against itself, directly and through the evaluation helper.

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tch")]

use std::sync::{Arc, Mutex, OnceLock};

use det_core::coco::CocoDetection;
use det_core::data::{
    evaluate_detector, AreaCounts, CocoFolder, CocoFolderConfig, DetBatch, DetLoaderConfig,
    DetectionReport, DetectionSet, ImageDetections, MnistDet, MnistDetConfig, MnistSplit,
};
use tch::{Device, Tensor};

fn mnist() -> &'static Mutex<datasets::mnist::Mnist> {
    static M: OnceLock<Mutex<datasets::mnist::Mnist>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(datasets::mnist::load("mnist", None).expect("real MNIST")))
}

fn mnist_det(split: MnistSplit, cfg: &MnistDetConfig) -> MnistDet {
    let m = mnist().lock().unwrap();
    let (x, y) = match split {
        MnistSplit::Train => (&m.train_images, &m.train_labels),
        MnistSplit::Test => (&m.test_images, &m.test_labels),
    };
    MnistDet::from_digits(x, y, split, cfg).unwrap()
}

fn small(n: usize) -> MnistDetConfig {
    MnistDetConfig {
        train_images: n,
        test_images: n,
        ..MnistDetConfig::default()
    }
}

#[test]
fn default_config_populates_every_area_range() {
    let t = std::time::Instant::now();
    let cfg = MnistDetConfig::default();
    let train = mnist_det(MnistSplit::Train, &cfg);
    let test = mnist_det(MnistSplit::Test, &cfg);
    for set in [&train, &test] {
        let c = set.area_counts();
        eprintln!(
            "{}: {} canvases, {} boxes: small {} ({:.1} %), medium {} ({:.1} %), large {} ({:.1} %)",
            set.name(),
            set.len(),
            c.total,
            c.small,
            100.0 * c.small as f64 / c.total as f64,
            c.medium,
            100.0 * c.medium as f64 / c.total as f64,
            c.large,
            100.0 * c.large as f64 / c.total as f64
        );
        assert!(c.small > 0 && c.medium > 0 && c.large > 0, "{c:?}");
        // small objects are plentiful: the largest group, over a third of all boxes
        assert!(
            c.small * 3 > c.total && c.small > c.medium && c.small > c.large,
            "{c:?}"
        );
        assert!(c.large * 20 > c.total, "large boxes rare: {c:?}");
        assert_eq!(c, AreaCounts::of(set).unwrap());
    }
    assert_eq!(train.len(), 1000);
    assert_eq!(test.len(), 250);
    // every class appears
    let mut seen = [0usize; 10];
    for i in 0..train.len() {
        for &c in &train.record(i).unwrap().classes {
            seen[c as usize] += 1;
        }
    }
    eprintln!("per class: {seen:?}; layouts in {:.2?}", t.elapsed());
    assert!(seen.iter().all(|&n| n > 200), "{seen:?}");
}

#[test]
fn same_seed_gives_byte_identical_files() {
    let cfg = small(6);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    mnist_det(MnistSplit::Test, &cfg)
        .write_folder(a.path())
        .unwrap();
    mnist_det(MnistSplit::Test, &cfg)
        .write_folder(b.path())
        .unwrap();
    let mut files: Vec<_> = walk(a.path());
    files.sort();
    assert_eq!(files.len(), 7, "{files:?}"); // 6 PNGs + instances_test.json
    for f in &files {
        let rel = f.strip_prefix(a.path()).unwrap();
        assert_eq!(
            std::fs::read(f).unwrap(),
            std::fs::read(b.path().join(rel)).unwrap(),
            "{rel:?}"
        );
    }
    // another seed: other layouts
    let other = mnist_det(
        MnistSplit::Test,
        &MnistDetConfig {
            seed: 1,
            ..cfg.clone()
        },
    );
    let same = mnist_det(MnistSplit::Test, &cfg);
    assert_ne!(other.layout(0).unwrap(), same.layout(0).unwrap());
    // the folder reads back as a COCO folder with the same records and pixels
    let back = CocoFolder::open(
        &a.path().join("test"),
        &a.path().join("instances_test.json"),
        &CocoFolderConfig::default(),
    )
    .unwrap();
    assert_eq!(back.len(), 6);
    assert_eq!(back.categories(), same.categories());
    for i in 0..6 {
        assert_eq!(back.record(i).unwrap(), same.record(i).unwrap());
        let d = (back.image(i).unwrap() - same.image(i).unwrap())
            .abs()
            .max();
        assert_eq!(d.double_value(&[]), 0.0);
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn boxes_are_tight_around_the_ink() {
    let cfg = small(40);
    let set = mnist_det(MnistSplit::Train, &cfg);
    let level = (cfg.ink_threshold * 255.0).ceil() as u8;
    let (mut checked, mut isolated) = (0, 0);
    for i in 0..set.len() {
        let l = set.layout(i).unwrap().clone();
        let canvas = set.canvas(i).unwrap();
        for (k, d) in l.digits.iter().enumerate() {
            let patch = set.digit_patch(i, k).unwrap();
            let b = d.bbox.map(|v| v as i64);
            // in patch coordinates, the ink (>= level) spans exactly the box
            let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
            for (x, y, p) in patch.enumerate_pixels() {
                if p.0[0] >= level {
                    let (cx, cy) = (d.origin.0 + x as i64, d.origin.1 + y as i64);
                    x0 = x0.min(cx);
                    y0 = y0.min(cy);
                    x1 = x1.max(cx);
                    y1 = y1.max(cy);
                }
            }
            assert_eq!([x0, y0, x1 + 1, y1 + 1], b, "canvas {i} digit {k}");
            checked += 1;
            // on the canvas: a digit with no other piece within 1 px has exactly its box of ink
            let grown = [b[0] - 1, b[1] - 1, b[2] + 1, b[3] + 1];
            let near = |r: [i64; 4]| {
                r[0] < grown[2] && grown[0] < r[2] && r[1] < grown[3] && grown[1] < r[3]
            };
            let others = l
                .digits
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .any(|(_, o)| near(o.bbox.map(|v| v as i64)))
                || l.clutter.iter().any(|f| {
                    near([
                        f.origin.0,
                        f.origin.1,
                        f.origin.0 + f.size.0 as i64,
                        f.origin.1 + f.size.1 as i64,
                    ])
                });
            if others {
                continue;
            }
            isolated += 1;
            let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
            for y in grown[1].max(0)..grown[3].min(256) {
                for x in grown[0].max(0)..grown[2].min(256) {
                    if canvas.get_pixel(x as u32, y as u32).0[0] >= level {
                        x0 = x0.min(x);
                        y0 = y0.min(y);
                        x1 = x1.max(x);
                        y1 = y1.max(y);
                    }
                }
            }
            assert_eq!(
                [x0, y0, x1 + 1, y1 + 1],
                b,
                "canvas {i} digit {k} on the canvas"
            );
        }
    }
    eprintln!("{checked} digits tight, {isolated} of them checked on the canvas");
    assert!(checked > 100 && isolated > 50);
}

#[test]
fn ground_truth_scores_ap_one_against_itself() {
    let set: Arc<dyn DetectionSet> = Arc::new(mnist_det(MnistSplit::Test, &small(60)));
    // 1. The ground truth as detections with score 1.
    let gt = det_core::data::to_coco(set.as_ref()).unwrap();
    let dets: Vec<CocoDetection> = gt
        .annotations
        .iter()
        .map(|a| CocoDetection {
            image_id: a.image_id,
            category_id: a.category_id,
            bbox: a.bbox,
            score: 1.0,
        })
        .collect();
    let r = DetectionReport::score(set.as_ref(), &dets).unwrap();
    eprintln!("{r}");
    for (name, v) in [
        ("AP", r.ap),
        ("AP50", r.ap50),
        ("AP75", r.ap75),
        ("APs", r.ap_small),
        ("APm", r.ap_medium),
        ("APl", r.ap_large),
        ("AR100", r.ar100),
    ] {
        assert!((v - 1.0).abs() < 1e-12, "{name} = {v}");
    }
    // 2. An oracle detector through the helper: the batch's boxes, in the 320x320 letterboxed
    // input, mapped back by the helper.
    let cfg = DetLoaderConfig::eval((320, 320), 8);
    let (r2, back) = evaluate_detector(
        Arc::clone(&set),
        &cfg,
        Device::Cpu,
        1,
        |x: &Tensor| Ok::<_, String>(x.size()[0]),
        |b: i64, batch: &DetBatch| {
            Ok::<_, String>(
                (0..b)
                    .map(|i| {
                        let n = batch.counts.int64_value(&[i]);
                        ImageDetections {
                            boxes: batch.boxes.get(i).narrow(0, 0, n),
                            scores: Tensor::ones([n], (tch::Kind::Float, Device::Cpu)),
                            classes: batch.classes.get(i).narrow(0, 0, n),
                        }
                    })
                    .collect(),
            )
        },
        None,
    )
    .unwrap();
    eprintln!("{r2}");
    test_support::assert_close(r2.ap, 1.0, test_support::Tol::abs(1e-12));
    assert_eq!(back.len(), dets.len());
    let worst = back
        .iter()
        .zip(&dets)
        .flat_map(|(a, b)| (0..4).map(move |k| (a.bbox[k] - b.bbox[k]).abs()))
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "boxes mapped back differ by {worst}");
    assert!(r2.images_per_s_forward > 0.0 && r2.timed_images == 60 - 8);
}
