//! Presets outside the published table, checked against receptive fields worked out by hand
//! from the architectures (the arithmetic is in the comments), plus FPN's misalignment and
//! the drawings.
// Helpers of a test binary: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rf_calc::{analyze, draw, erf_stats::ErfMap, presets, Frac, Options, RfError};

fn rf(name: &str, node: &str, input: Option<i64>) -> (i64, Frac, Option<i64>) {
    let g = presets::by_name(name).unwrap();
    let a = analyze(
        &g,
        Options {
            input: input.map(|n| [n, n]),
            strict: None,
        },
    )
    .unwrap();
    let r = a.node(node).unwrap().rf[0];
    (r.size, r.stride, r.padding)
}

#[test]
fn torchvision_resnets() {
    // resnet18: conv1 7 (S 2), maxpool +2*2 = 11 (S 4); layer1 four 3x3 at S 4: 11 + 4*8 = 43;
    // layer2 3x3/2 at S 4 then three at S 8: 43 + 8 + 48 = 99; layer3: 99 + 16 + 96 = 211;
    // layer4: 211 + 32 + 192 = 435.
    assert_eq!(rf("resnet18", "layer1", None).0, 43);
    assert_eq!(
        rf("resnet18", "layer4", None),
        (435, Frac::int(32), Some(217))
    );
    // resnet34: 11 + 6*8 = 59 | + 8 + 7*16 = 179 | + 16 + 11*32 = 547 | + 32 + 5*64 = 899.
    assert_eq!(rf("resnet34", "layer4", None).0, 899);
    // resnet50 (one 3x3 per bottleneck): 11 + 3*8 = 35 | + 8 + 3*16 = 91 | + 16 + 5*32 = 267
    // | + 32 + 2*64 = 427; padding (427 - 1) / 2 = 213 (symmetric padding keeps unit 0
    // centred on pixel 0).
    assert_eq!(
        rf("resnet50", "layer4", Some(224)),
        (427, Frac::int(32), Some(213))
    );
    assert_eq!(
        rf("resnet101", "layer4", None).0,
        267 + 17 * 32 + 32 + 2 * 64
    );
    assert_eq!(
        rf("resnet152", "layer4", None).0,
        91 + 4 * 16 + 16 + 35 * 32 + 32 + 2 * 64
    );
    // TF-Slim strides in the last unit instead: 483.
    assert_eq!(rf("resnet_v1_50", "block4", Some(224)).0, 483);
}

#[test]
fn mobilenet_v2_and_yolo_v1() {
    // 3 (S 2) | dw +4 = 7 | 24: +4 (S 4), +8 = 19 | 32: +8 (S 8), +16, +16 = 59
    // | 64: +16 (S 16), 3 x +32 = 171 | 96: 3 x +32 = 267 | 160: +32 (S 32), 2 x +64 = 427
    // | 320: +64 = 491.
    assert_eq!(
        rf("mobilenet_v2", "features.18", None),
        (491, Frac::int(32), Some(245))
    );
    // YOLO v1 at 448: 7 | pool 9 (S 4) | 17 | pool 21 (S 8) | 1x1,3x3,1x1,3x3: 53 | pool 61
    // (S 16) | 4 x (1x1, 3x3) + 1x1, 3x3: 221 | pool 237 (S 32) | 2 x (1x1, 3x3), 3x3: 429
    // | 3x3/2: 493 (S 64) | two 3x3: 749. Darknet pads its pools at the end only, so the
    // 7x7 cells are not centred on their 64-pixel squares: unit 0 at pixel 15, not 31.5.
    let g = presets::by_name("yolo_v1").unwrap();
    let a = analyze(&g, Options::input([448, 448])).unwrap();
    let c24 = a.node("conv24").unwrap();
    assert_eq!(c24.geom[0].out_size, Some(7));
    assert_eq!((c24.rf[0].size, c24.rf[0].stride), (749, Frac::int(64)));
    assert_eq!(c24.centre([0, 0]), Some([15.0, 15.0]));
}

#[test]
fn fpn_levels_are_reported_with_their_misalignment() {
    let g = presets::by_name("fpn_resnet50").unwrap();
    let a = analyze(&g, Options::input([224, 224])).unwrap();
    let strides: Vec<Frac> = ["P2", "P3", "P4", "P5", "P6"]
        .iter()
        .map(|p| a.node(p).unwrap().rf[0].stride)
        .collect();
    assert_eq!(strides, [4, 8, 16, 32, 64].map(Frac::int));
    // P5 = C5 (427) + a 3x3 at stride 32.
    assert_eq!(a.node("P5").unwrap().rf[0].size, 491);
    // P4: odd units see the top-down copy of their even neighbour's C5 unit.
    let p4 = a.node("P4").unwrap();
    assert_eq!(p4.rf[0].period, 2);
    assert_eq!(a.warnings.len(), 6, "{:?}", a.warnings);
    assert!(a.warnings[0].contains("fpn.merge.4"));
    let strict = analyze(
        &g,
        Options {
            input: Some([224, 224]),
            strict: Some(true),
        },
    );
    assert!(matches!(strict, Err(RfError::UnalignedMerge { layer, .. }) if layer == "fpn.merge.4"));
    // 321 is not a multiple of 32: the upsampled P5 (22) misses C4 (21).
    let odd = analyze(&g, Options::input([321, 321]));
    assert!(matches!(odd, Err(RfError::SizeMismatch { layer, .. }) if layer == "fpn.merge.4"));
}

#[test]
fn every_preset_analyses_with_and_without_an_input_size() {
    for p in presets::all() {
        let g = p.build().unwrap();
        let a = analyze(&g, Options::input([224, 224])).unwrap();
        assert!(!a.endpoints.is_empty(), "{}", p.name);
        assert!(
            a.nodes.iter().all(|n| n.rf[0].padding.is_some()),
            "{}",
            p.name
        );
        if p.name != "fpn_resnet50" {
            assert!(a.methods.len() == 3, "{}: {:?}", p.name, a.methods);
            analyze(&g, Options::default()).unwrap();
        }
    }
    assert!(presets::by_name("resnet_v1_51")
        .unwrap_err()
        .to_string()
        .contains("resnet_v1_50"));
}

#[test]
fn drawings_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let g = presets::by_name("resnet50").unwrap();
    let a = analyze(&g, Options::input([224, 224])).unwrap();
    let node = a.node("layer2").unwrap();
    let path = dir.path().join("units.png");
    draw::units_png(
        &path,
        &draw::checkerboard([224, 224]),
        node,
        &[[0, 0], [14, 14]],
    )
    .unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (224, 224));
    // Unit [14, 14] spans pixels 112 - 45 .. 112 + 45: its box's left edge is drawn in the
    // second colour (green).
    let b = node.rf_box([14, 14]).unwrap();
    assert_eq!(b, [[67, 157], [67, 157]]);
    let px = img.get_pixel(67, 110).0;
    assert!(px[1] > 150 && px[0] < 100, "{px:?}");

    let map = ErfMap::new(3, 3, vec![0.0, 1.0, 0.0, 1.0, 4.0, 1.0, 0.0, 1.0, 0.0]).unwrap();
    let heat = dir.path().join("heat.png");
    let panel = draw::HeatPanel {
        title: "t".to_owned(),
        map: &map,
        boxes: vec![("theory".to_owned(), draw::pixel_box([[0, 2], [0, 2]]))],
    };
    draw::heatmap_png(&heat, &[panel]).unwrap();
    assert!(std::fs::read(&heat).unwrap().starts_with(b"\x89PNG"));
}
