//! Tests of `pyramid.full`: the recipe's arithmetic, the training stream and the whole loop on
//! a tiny COCO-layout folder written here (CPU, the tiny recipe).

use std::path::Path;

use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::*;

fn ctx(mode: Mode, root: Option<&Path>, out: &Path) -> Ctx {
    Ctx {
        mode,
        device: Device::Cpu,
        data_root: root.map(Path::to_path_buf),
        out_dir: out.to_path_buf(),
        seed: 3,
    }
}

/// A COCO split: `n` images alternating 96x64 (landscape) and 64x96 (portrait), one or two
/// bright rectangles of two categories (ids 3 and 7) on a dark ground, a crowd box on the
/// first image, and one extra image whose only box is a crowd.
fn write_split(root: &Path, split: &str, n: usize) {
    let dir = root.join(format!("{split}2017"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(root.join("annotations")).unwrap();
    let (mut images, mut anns) = (Vec::new(), Vec::new());
    let mut aid = 1;
    for i in 0..=n {
        let (w, h) = if i % 2 == 0 { (96, 64) } else { (64, 96) };
        let img = Tensor::full([3, h, w], 20, (Kind::Uint8, Device::Cpu));
        let mut boxes = vec![(6 + 3 * (i as i64 % 4), 8, 30, 24, 3)];
        if i % 3 == 0 {
            boxes.push((w - 30, h - 34, 22, 26, 7));
        }
        let crowd_only = i == n;
        for &(x, y, bw, bh, cat) in &boxes {
            let v = if cat == 3 { 230 } else { 140 };
            let _ = img.narrow(1, y, bh).narrow(2, x, bw).fill_(v);
            anns.push(json!({"id": aid, "image_id": i + 1, "category_id": cat,
                             "bbox": [x, y, bw, bh], "area": bw * bh,
                             "iscrowd": i64::from(crowd_only)}));
            aid += 1;
        }
        if i == 0 {
            anns.push(json!({"id": aid, "image_id": 1, "category_id": 7,
                             "bbox": [60, 40, 20, 16], "area": 320, "iscrowd": 1}));
            aid += 1;
        }
        let name = format!("{i:012}.png");
        tch::vision::image::save(&img, dir.join(&name)).unwrap();
        images.push(json!({"id": i + 1, "file_name": name, "width": w, "height": h}));
    }
    let doc = json!({"images": images, "annotations": anns,
                     "categories": [{"id": 3, "name": "bright"}, {"id": 7, "name": "grey"}]});
    std::fs::write(
        root.join(format!("annotations/instances_{split}2017.json")),
        serde_json::to_string(&doc).unwrap(),
    )
    .unwrap();
}

fn open(root: &Path, split: &str) -> Arc<dyn DetectionSet> {
    Arc::new(
        CocoFolder::open(
            &root.join(format!("{split}2017")),
            &root.join(format!("annotations/instances_{split}2017.json")),
            &CocoFolderConfig::default(),
        )
        .unwrap(),
    )
}

#[test]
fn shortest_edge_sizes_follow_detectron2() {
    // 480 -> 800: 640 * 5/3 = 1066.67 rounds to 1067.
    assert_eq!(shortest_edge_size(640, 480, 800, 1333), (1067, 800));
    assert_eq!(shortest_edge_size(480, 640, 800, 1333), (800, 1067));
    // 2000 x 500 -> 3200 x 800, then the long side capped: 1333 x 333.25.
    assert_eq!(shortest_edge_size(2000, 500, 800, 1333), (1333, 333));
    assert_eq!(shortest_edge_size(800, 800, 640, 1333), (640, 640));
}

#[test]
fn the_1x_recipe_its_schedule_and_the_linear_rule() {
    let r = Recipe::detectron2_1x();
    assert_eq!(r.train_short_sides, vec![640, 672, 704, 736, 768, 800]);
    assert_eq!(r.rounds * r.iters_per_round(), 90_000);
    let s = r.schedule().unwrap();
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    close(s.lr_at(0), 1e-5);
    close(s.lr_at(1000), 0.01);
    close(s.lr_at(60_000), 1e-3);
    close(s.lr_at(85_000), 1e-4);
    let half = r.scaled_to(8).unwrap();
    assert_eq!(half.images_per_step, 8);
    close(half.base_lr, 0.005);
    assert_eq!(half.iterations, 180_000);
    assert_eq!(half.milestones, vec![120_000, 160_000]);
    assert_eq!(half.warmup_iters, 2000);
    assert_eq!(half.rounds * half.iters_per_round(), 180_000);
    assert!(r.scaled_to(0).is_err());
    let a = detectron2_anchors();
    assert_eq!(a.sizes.len(), 5);
    close(a.sizes[0][1], 32.0 * 2f64.powf(1.0 / 3.0));
    close(a.sizes[4][2], 512.0 * 2f64.powf(2.0 / 3.0));
}

#[test]
fn the_stream_groups_by_orientation_skips_crowd_only_images_and_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", 8);
    let set = open(tmp.path(), "train");
    let r = Recipe::tiny().unwrap();
    let src = CocoTrain::new(Arc::clone(&set), &r, 5, Device::Cpu).unwrap();
    // 8 usable images (4 + 4), batches of 2: 4 a pass; the crowd-only image 8 never shows.
    assert_eq!(src.batches_per_pass(), 4);
    let mut seen = Vec::new();
    for g in 0..4 {
        let idx = src.batch_indices(g);
        assert_eq!(idx.len(), 2);
        let wide: Vec<bool> = idx
            .iter()
            .map(|&i| set.records()[i].width > set.records()[i].height)
            .collect();
        assert_eq!(wide[0], wide[1], "batch {g} mixes orientations: {idx:?}");
        seen.extend(idx);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    assert_eq!(src.batch_indices(6), src.batch_indices(6));
    let b = src.batch(1).unwrap();
    let s = b.images.size();
    assert_eq!((s[0], s[1]), (2, 3));
    assert!(s[2] % 32 == 0 && s[3] % 32 == 0, "{s:?}");
    // Image 0's crowd box is gone from the targets; every class is a real one.
    let b0 = (0..4)
        .map(|g| src.batch(g).unwrap())
        .find(|b| b.indices.contains(&0));
    let b0 = b0.unwrap();
    let k = b0.indices.iter().position(|&i| i == 0).unwrap();
    assert_eq!(b0.counts.int64_value(&[k as i64]), 2);
    // Padding: bottom-right, to multiples of 32, with the mean pixel.
    let a = prepare(set.as_ref(), 0, (48, 80), false, true).unwrap();
    assert_eq!(a.size(), (72, 48));
    let p = collate(vec![a], 32, Device::Cpu).unwrap();
    assert_eq!(p.images.size(), [1, 3, 64, 96]);
    let want = Tensor::from_slice(&MEAN.map(|v| v as f32));
    let corner = p.images.get(0).select(1, 63).select(1, 95);
    assert!(corner.allclose(&want, 1e-6, 1e-6, false), "{corner}");
    let inside = p.images.get(0).select(1, 20).select(1, 20);
    assert!(!inside.allclose(&want, 1e-3, 1e-3, false));
    // Two sets without enough images of one orientation are refused, naming the counts.
    let big = Recipe {
        images_per_step: 5,
        ..Recipe::tiny().unwrap()
    };
    let e = CocoTrain::new(set, &big, 5, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("4 landscape, 4 portrait") && e.contains("batch of 5"),
        "{e}"
    );
}

#[test]
fn the_loop_trains_and_scores_a_tiny_coco_folder_and_says_what_it_needs_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("coco");
    write_split(&root, "train", 8);
    write_split(&root, "val", 3);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = run(&ctx(Mode::Smoke, Some(&root), &out), "ap", "valid").unwrap();
    assert!(o.skipped.is_none(), "{}", o.value_text);
    assert!((0.0..=100.0).contains(&o.value), "{}", o.value_text);
    assert!(
        o.value_text.contains("after 4 steps of 2 images"),
        "{}",
        o.value_text
    );
    assert!(out.join("training.png").is_file());
    let log = std::fs::read_to_string(out.join("train/metrics.jsonl")).unwrap();
    assert!(log.contains("\"lr\""), "{log}");
    assert_eq!(o.details["report"]["images"], 4);
    let found = o.details["report"]["detections"].as_u64().unwrap();
    assert!(found > 0 && found <= 400, "{found} detections on 4 images");
    assert_eq!(o.details["train_images"], 9);
    // 4 steps over 4 batches a pass, at the linear rule's lr for 2 images.
    assert_eq!(o.details["epochs"], 1.0);
    assert_eq!(o.details["recipe"]["base_lr"], 0.00125);
    // Without data, or at --full on a CPU, it reports needs_data with the command.
    for (mode, r) in [(Mode::Smoke, None), (Mode::Full, Some(root.as_path()))] {
        let o = run(&ctx(mode, r, &out), "ap", "valid").unwrap();
        assert_eq!(o.skipped, Some(Verdict::NeedsData));
        assert!(
            o.value_text.contains("torchvision_resnet50.py"),
            "{}",
            o.value_text
        );
    }
}
