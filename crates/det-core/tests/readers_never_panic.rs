//! Property tests: the COCO, results, VOC and CSV readers return `Ok` or a positioned error on
//! arbitrary input and never panic; valid data round-trips through the writers.

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use det_core::coco::{detections_from_json_str, CocoDetection};
use det_core::csv::{from_csv_str, to_csv_string, CsvBox};
use det_core::voc::{VocAnnotation, VocObject};
use det_core::{CocoDataset, DetError};
use proptest::prelude::*;

fn positioned(e: &DetError) -> bool {
    match e {
        DetError::Parse { file, .. } => file == "f",
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn readers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = CocoDataset::from_json_str(&text, "f") { prop_assert!(positioned(&e)); }
        if let Err(e) = detections_from_json_str(&text, "f") { prop_assert!(positioned(&e)); }
        if let Err(e) = VocAnnotation::from_xml_str(&text, "f") { prop_assert!(positioned(&e)); }
        if let Err(e) = from_csv_str(&text, "f") { prop_assert!(positioned(&e)); }
    }

    #[test]
    fn readers_never_panic_on_near_valid_text(
        cut in 0usize..400,
        junk in "[<>/&;\",{}\\[\\]:a-z0-9 \n.-]{0,12}",
    ) {
        let samples = [
            r#"{"images":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[1,2,3,4],"area":12,"iscrowd":0}],"categories":[{"id":1,"name":"a"}]}"#,
            r#"[{"image_id":1,"category_id":1,"bbox":[1,2,3,4],"score":0.5}]"#,
            "<annotation><filename>a.png</filename><object><name>t</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>",
            "image_path,xmin,ymin,xmax,ymax,label\na.png,1,2,3,4,Tree\n",
        ];
        for s in samples {
            let mut cut = cut.min(s.len());
            while !s.is_char_boundary(cut) { cut -= 1; }
            let text = format!("{}{}{}", &s[..cut], junk, &s[cut..]);
            let _ = CocoDataset::from_json_str(&text, "f");
            let _ = detections_from_json_str(&text, "f");
            let _ = VocAnnotation::from_xml_str(&text, "f");
            let _ = from_csv_str(&text, "f");
        }
    }

    #[test]
    fn csv_and_voc_round_trip(
        rows in proptest::collection::vec(
            ("[a-zA-Z0-9_,\" .]{1,12}", 0.0f64..1e4, 0.0f64..1e4, 0.0f64..500.0, 0.0f64..500.0, "[A-Za-z]([A-Za-z ,]{0,6}[A-Za-z])?"),
            0..20,
        )
    ) {
        let rows: Vec<CsvBox> = rows.into_iter().map(|(p, x, y, w, h, l)| CsvBox {
            image_path: p, bbox: [x, y, x + w, y + h], label: l,
        }).collect();
        prop_assert_eq!(from_csv_str(&to_csv_string(&rows), "f").unwrap(), rows.clone());
        let ann = VocAnnotation {
            filename: "a&b<c>.png".into(),
            size: Some((400, 300, 3)),
            objects: rows.iter().enumerate().map(|(i, r)| VocObject {
                name: r.label.clone(), bbox: r.bbox, difficult: i % 2 == 0, truncated: i % 3 == 0,
            }).collect(),
        };
        prop_assert_eq!(VocAnnotation::from_xml_str(&ann.to_xml(), "f").unwrap(), ann);
    }

    #[test]
    fn results_json_round_trips(
        dets in proptest::collection::vec((0i64..50, 1i64..5, 0.0f64..600.0, 0.0f64..600.0, 0.0f64..300.0, 0.0f64..300.0, 0.0f64..1.0), 0..30)
    ) {
        let dets: Vec<CocoDetection> = dets.into_iter().map(|(i, c, x, y, w, h, s)| CocoDetection {
            image_id: i, category_id: c, bbox: [x, y, w, h], score: s,
        }).collect();
        let text = serde_json::to_string(&dets).unwrap();
        prop_assert_eq!(detections_from_json_str(&text, "f").unwrap(), dets);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = "<a>".repeat(100_000);
    let e = VocAnnotation::from_xml_str(&deep, "deep.xml").unwrap_err();
    assert!(e.to_string().starts_with("deep.xml:"), "{e}");
}
