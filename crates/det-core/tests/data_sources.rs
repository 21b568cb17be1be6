//! The file sources: a COCO folder (xywh -> xyxy, crowd kept or skipped, category ids mapped
//! to contiguous classes and back), a VOC folder (1-based boxes, difficult), the deepforest
//! tiles; every source written as COCO ground truth; bad input as typed errors.

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tch")]

use std::path::Path;

use det_core::data::source::VOC_CLASSES;
use det_core::data::{
    to_coco, CocoFolder, CocoFolderConfig, CrowdPolicy, DeepForestSet, DetectionSet, VocFolder,
};
use det_core::DetError;
use image::{Rgb, RgbImage};

fn png(dir: &Path, name: &str, w: u32, h: u32) {
    RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 50]))
        .save(dir.join(name))
        .unwrap();
}

const GT: &str = r#"{
 "images": [{"id": 10, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 11, "file_name": "b.png", "width": 20, "height": 20}],
 "annotations": [
  {"id": 1, "image_id": 10, "category_id": 9, "bbox": [1, 2, 10, 5], "iscrowd": 0},
  {"id": 2, "image_id": 10, "category_id": 2, "bbox": [20, 0, 20, 30], "iscrowd": 1},
  {"id": 3, "image_id": 11, "category_id": 5, "bbox": [0, 0, 20.5, 4], "iscrowd": 0},
  {"id": 4, "image_id": 11, "category_id": 5, "bbox": [3, 3, 0, 4], "iscrowd": 0}],
 "categories": [{"id": 9, "name": "nine"}, {"id": 2, "name": "two"}, {"id": 5, "name": "five"}]
}"#;

fn coco_dir(gt: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    png(d.path(), "a.png", 40, 30);
    png(d.path(), "b.png", 20, 20);
    std::fs::write(d.path().join("gt.json"), gt).unwrap();
    d
}

fn open(d: &Path, cfg: &CocoFolderConfig) -> det_core::Result<CocoFolder> {
    CocoFolder::open(d, &d.join("gt.json"), cfg)
}

#[test]
fn coco_folder_maps_boxes_and_categories() {
    let d = coco_dir(GT);
    let f = open(d.path(), &CocoFolderConfig::default()).unwrap();
    assert_eq!(f.len(), 2);
    let names: Vec<_> = f
        .categories()
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    assert_eq!(names, vec![(2, "two"), (5, "five"), (9, "nine")]);
    let a = f.record(0).unwrap();
    assert_eq!(a.image_id, 10);
    assert_eq!(
        a.boxes,
        vec![[1.0, 2.0, 11.0, 7.0], [20.0, 0.0, 40.0, 30.0]]
    );
    assert_eq!(a.classes, vec![2, 0]);
    assert_eq!(a.crowd, vec![false, true]);
    // 20.5 wide in a 20 px image: within the 1 px tolerance, clamped; the 0-wide box dropped
    let b = f.record(1).unwrap();
    assert_eq!(b.boxes, vec![[0.0, 0.0, 20.0, 4.0]]);
    assert_eq!(f.dropped(), 1);
    let img = f.image(0).unwrap();
    assert_eq!(img.size(), vec![3, 30, 40]);
    test_support::assert_close(
        img.double_value(&[0, 0, 39]),
        39.0 / 255.0,
        test_support::Tol::abs(1e-6),
    );
    // back to COCO with the original ids
    let c = to_coco(&f).unwrap();
    assert_eq!(c.annotations[0].category_id, 9);
    assert_eq!(c.annotations[0].bbox, [1.0, 2.0, 10.0, 5.0]);
    assert_eq!(c.annotations[0].area, 50.0);
    assert!(c.annotations[1].iscrowd);
    assert_eq!(c.images[1].id, 11);
    // crowd skipped
    let skip = CocoFolderConfig {
        crowd: CrowdPolicy::Skip,
        ..CocoFolderConfig::default()
    };
    assert_eq!(
        open(d.path(), &skip)
            .unwrap()
            .record(0)
            .unwrap()
            .boxes
            .len(),
        1
    );
    let gray = CocoFolderConfig {
        channels: 1,
        ..CocoFolderConfig::default()
    };
    assert_eq!(
        open(d.path(), &gray).unwrap().image(1).unwrap().size(),
        vec![1, 20, 20]
    );
}

#[test]
fn coco_folder_errors_name_what_was_expected() {
    let cfg = CocoFolderConfig::default();
    // a box of negative width
    let d = coco_dir(&GT.replace("[1, 2, 10, 5]", "[1, 2, -10, 5]"));
    let e = open(d.path(), &cfg).unwrap_err();
    assert!(matches!(e, DetError::InvalidBox { .. }), "{e}");
    assert!(e.to_string().contains("annotation 1"), "{e}");
    // a box outside the image
    let d = coco_dir(&GT.replace("[1, 2, 10, 5]", "[35, 2, 10, 5]"));
    let e = open(d.path(), &cfg).unwrap_err();
    assert!(
        matches!(
            e,
            DetError::BoxOutsideImage {
                width: 40,
                height: 30,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("a.png"), "{e}");
    // a missing image file
    let d = coco_dir(&GT.replace("b.png", "c.png"));
    let e = open(d.path(), &cfg).unwrap_err();
    assert!(matches!(e, DetError::MissingFile { .. }), "{e}");
    assert!(
        e.to_string().contains("c.png") && e.to_string().contains("gt.json"),
        "{e}"
    );
    // bad JSON, with its position
    let d = coco_dir(&GT.replace("\"images\": [", "\"images\": [,"));
    let e = open(d.path(), &cfg).unwrap_err();
    assert!(matches!(e, DetError::Parse { line: 2, .. }), "{e}");
    // an image whose size is not the annotated one
    let d = coco_dir(&GT.replace("\"width\": 40", "\"width\": 41"));
    let f = open(d.path(), &cfg).unwrap();
    let e = f.image(0).unwrap_err();
    assert!(
        matches!(
            e,
            DetError::ImageSize {
                expected_w: 41,
                got_w: 40,
                ..
            }
        ),
        "{e}"
    );
    // an annotation of an unknown category / image
    let d = coco_dir(&GT.replace("\"category_id\": 9", "\"category_id\": 7"));
    assert!(open(d.path(), &cfg)
        .unwrap_err()
        .to_string()
        .contains("7 (annotation 1)"));
    let d = coco_dir(&GT.replace(
        "\"image_id\": 11, \"category_id\": 5, \"bbox\": [0",
        "\"image_id\": 12, \"category_id\": 5, \"bbox\": [0",
    ));
    assert!(open(d.path(), &cfg).is_err());
    // an image that is not an image
    let d = coco_dir(GT);
    std::fs::write(d.path().join("a.png"), b"not a png").unwrap();
    let e = open(d.path(), &cfg).unwrap().image(0).unwrap_err();
    assert!(matches!(e, DetError::Image { .. }), "{e}");
    assert!(open(d.path(), &CocoFolderConfig { channels: 2, ..cfg }).is_err());
}

fn voc_object(name: &str, b: [u32; 4], difficult: bool) -> String {
    format!(
        "<object><name>{name}</name><difficult>{}</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
        difficult as u8, b[0], b[1], b[2], b[3]
    )
}

fn voc_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for sub in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(d.path().join(sub)).unwrap();
    }
    for (id, w, h, objs) in [
        (
            "000001",
            50,
            40,
            vec![
                voc_object("dog", [1, 1, 20, 30], false),
                voc_object("cat", [10, 5, 50, 40], true),
            ],
        ),
        (
            "000002",
            30,
            30,
            vec![voc_object("cat", [5, 5, 10, 10], false)],
        ),
    ] {
        let xml = format!(
            "<annotation><filename>{id}.jpg</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{}</annotation>",
            objs.concat()
        );
        std::fs::write(d.path().join(format!("Annotations/{id}.xml")), xml).unwrap();
        RgbImage::from_pixel(w, h, Rgb([200, 10, 10]))
            .save(d.path().join(format!("JPEGImages/{id}.jpg")))
            .unwrap();
    }
    std::fs::write(d.path().join("ImageSets/Main/val.txt"), "000001\n000002\n").unwrap();
    d
}

#[test]
fn voc_folder_reads_boxes_and_difficult() {
    let d = voc_dir();
    let v = VocFolder::open(d.path(), "val", None).unwrap();
    assert_eq!(v.len(), 2);
    let names: Vec<_> = v.categories().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["cat", "dog"]);
    let r = v.record(0).unwrap();
    assert_eq!(
        r.boxes,
        vec![[0.0, 0.0, 20.0, 30.0], [9.0, 4.0, 50.0, 40.0]]
    );
    assert_eq!(r.classes, vec![1, 0]);
    assert_eq!(r.difficult, vec![false, true]);
    assert_eq!(r.ignored(), vec![false, true]);
    assert_eq!(v.image(1).unwrap().size(), vec![3, 30, 30]);
    // the 20 VOC classes fix the order; difficult becomes iscrowd in COCO
    let v20 = VocFolder::open(d.path(), "val", Some(&VOC_CLASSES)).unwrap();
    assert_eq!(v20.categories().len(), 20);
    assert_eq!(v20.record(0).unwrap().classes, vec![11, 7]);
    let c = to_coco(&v20).unwrap();
    assert_eq!(c.annotations[0].category_id, 12);
    assert_eq!(c.annotations.iter().filter(|a| a.iscrowd).count(), 1);
    // errors
    assert!(matches!(
        VocFolder::open(d.path(), "train", None).unwrap_err(),
        DetError::Io { .. }
    ));
    assert!(VocFolder::open(d.path(), "val", Some(&["dog"]))
        .unwrap_err()
        .to_string()
        .contains("\"cat\""));
    std::fs::remove_file(d.path().join("Annotations/000002.xml")).unwrap();
    let e = VocFolder::open(d.path(), "val", None).unwrap_err();
    assert!(
        matches!(e, DetError::MissingFile { .. }) && e.to_string().contains("val.txt"),
        "{e}"
    );
}

#[test]
fn deepforest_tiles_as_a_set() {
    let d = tempfile::tempdir().unwrap();
    let files = det_core::deepforest::VAL;
    for (xml, name, w, h) in [
        (files[0], "big.png", 120u32, 80u32),
        (files[1], "small.png", 40, 40),
    ] {
        let xml_text = format!(
            "<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{}</annotation>",
            voc_object("Tree", [10, 10, 30, 30], false)
        );
        std::fs::write(d.path().join(xml), xml_text).unwrap();
        png(d.path(), name, w, h);
    }
    let s = DeepForestSet::open(d.path(), det_core::deepforest::Split::Val, 64, 16, 0.4).unwrap();
    assert_eq!(s.len(), 7);
    assert_eq!(s.categories()[0].name, "Tree");
    let r = s.record(0).unwrap();
    assert_eq!((r.width, r.height), (64, 64));
    assert_eq!(r.boxes, vec![[10.0, 10.0, 30.0, 30.0]]);
    let img = s.image(1).unwrap();
    assert_eq!(img.size(), vec![3, 64, 64]);
    // tile 1 starts at x = 48
    test_support::assert_close(
        img.double_value(&[0, 0, 0]),
        48.0 / 255.0,
        test_support::Tol::abs(1e-6),
    );
    assert_eq!(to_coco(&s).unwrap().images.len(), 7);
    assert!(s.image(99).is_err());
}
