//! Box-aware augmentation: after every transform the object's pixels still fill exactly its
//! box (within a pixel), and the inverse map returns the box to its original coordinates
//! (within half a pixel). On CUDA as well when it is available.

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tch")]

use det_core::data::augment::{hflip, hsv, letterbox, resize, scale_place, AugmentDraw};
use det_core::data::{AugmentConfig, ImageMap, Sample};
use det_core::synth::SplitMix64;
use tch::{Device, Kind, Tensor};

/// A dark `w x h` RGB image with one bright filled box (and a second, dimmer one).
fn sample(w: u32, h: u32, b: [i64; 4], device: Device) -> Sample {
    let img = Tensor::full([3, h as i64, w as i64], 0.1, (Kind::Float, Device::Cpu));
    let _ = img
        .narrow(2, b[0], b[2] - b[0])
        .narrow(1, b[1], b[3] - b[1])
        .fill_(0.9);
    Sample {
        image: img.to_device(device),
        boxes: vec![b.map(|v| v as f64)],
        classes: vec![3],
        ignore: vec![false],
        map: ImageMap::identity(w, h),
        image_id: 7,
        index: 0,
    }
}

/// `[x0, y0, x1, y1]` of the pixels above `level` (mean over channels).
fn ink_extent(img: &Tensor, level: f64) -> Option<[f64; 4]> {
    let m = img
        .to_device(Device::Cpu)
        .mean_dim(0, false, Kind::Float)
        .gt(level);
    let cols = m.any_dim(0, false);
    let rows = m.any_dim(1, false);
    let idx = |t: &Tensor| {
        let v = Vec::<i64>::try_from(t.nonzero().view([-1])).unwrap();
        Some((*v.first()?, *v.last()?))
    };
    let (x0, x1) = idx(&cols)?;
    let (y0, y1) = idx(&rows)?;
    Some([x0 as f64, y0 as f64, x1 as f64 + 1.0, y1 as f64 + 1.0])
}

fn assert_follows(s: &Sample, what: &str) {
    assert_eq!(s.boxes.len(), 1, "{what}: box dropped");
    let b = s.boxes[0];
    // the box is where the bright pixels are: level halfway between background and object
    let e = ink_extent(&s.image, 0.5).unwrap_or_else(|| panic!("{what}: no object pixels"));
    for k in 0..4 {
        assert!(
            (e[k] - b[k]).abs() <= 1.0,
            "{what}: box {b:?}, pixels {e:?}"
        );
    }
}

fn assert_inverse(s: &Sample, orig: [f64; 4], what: &str) {
    let back = s.map.inverse(s.boxes[0]);
    for k in 0..4 {
        assert!(
            (back[k] - orig[k]).abs() <= 0.5,
            "{what}: {back:?} vs {orig:?}"
        );
    }
    let fwd = s.map.forward(orig);
    for k in 0..4 {
        assert!(
            (fwd[k] - s.boxes[0][k]).abs() < 1e-9,
            "{what}: forward {fwd:?}"
        );
    }
}

fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        d.push(Device::Cuda(0));
    }
    d
}

#[test]
fn boxes_follow_their_pixels_through_every_transform() {
    let orig = [30.0, 20.0, 90.0, 50.0];
    for dev in devices() {
        let mk = || sample(160, 100, orig.map(|v| v as i64), dev);
        let s = hflip(mk()).unwrap();
        assert!(s.map.flipped());
        assert_eq!(s.boxes[0], [70.0, 20.0, 130.0, 50.0]);
        assert_follows(&s, "hflip");
        assert_inverse(&s, orig, "hflip");

        let s = resize(mk(), 97, 131).unwrap();
        assert_follows(&s, "resize");
        assert_inverse(&s, orig, "resize");

        let s = letterbox(mk(), 128, 128, 114.0 / 255.0).unwrap();
        assert_eq!(s.image.size(), vec![3, 128, 128]);
        assert_follows(&s, "letterbox");
        assert_inverse(&s, orig, "letterbox");

        let s = hsv(mk(), [1.01, 1.5, 0.8]).unwrap();
        assert_follows(&s, "hsv");
        assert_inverse(&s, orig, "hsv");

        // scale up 1.7x and crop with the object inside the window
        let s = scale_place(mk(), 1.7, (-40, -10), (128, 128), 0.0, 0.25, 2.0).unwrap();
        assert_follows(&s, "scale + crop");
        assert_inverse(&s, orig, "scale + crop");

        // a crop that cuts the object: the box is clipped to the visible part
        let s = scale_place(mk(), 1.0, (-60, 0), (128, 128), 0.0, 0.25, 2.0).unwrap();
        assert_eq!(s.boxes[0], [0.0, 20.0, 30.0, 50.0]);
        assert_follows(&s, "cut by a crop");
        // ... and dropped when less than min_visible of it is left
        let s = scale_place(mk(), 1.0, (-80, 0), (128, 128), 0.0, 0.25, 2.0).unwrap();
        assert!(s.boxes.is_empty() && s.classes.is_empty() && s.ignore.is_empty());

        // every random draw of the training pipeline, composed
        // black padding, so that the value gain cannot lift it above the level
        let cfg = AugmentConfig {
            fill: 0.0,
            ..AugmentConfig::default()
        };
        let mut rng = SplitMix64::new(5);
        let mut kept = 0;
        for _ in 0..30 {
            let d = cfg.draw(&mut rng);
            let d = AugmentDraw {
                place: (0.5, 0.5),
                ..d
            };
            let s = cfg.apply(mk(), &d, (128, 96)).unwrap();
            assert_eq!(s.image.size(), vec![3, 96, 128]);
            assert_eq!(s.image.device(), dev);
            assert_eq!(s.map.flipped(), d.flip);
            if d.scale <= 1.0 {
                kept += 1;
                // the whole image is visible: the inverse map is exact
                assert_inverse(&s, orig, "pipeline");
            }
            if !s.boxes.is_empty() {
                assert_follows(&s, "pipeline");
            }
        }
        assert!(kept > 5);
    }
}

#[test]
fn hsv_jitter_is_yolos_recipe() {
    // pure red -> hue 0; a hue gain leaves it, saturation 0.5 halves the chroma, value 0.5
    // halves everything
    let mut s = sample(4, 4, [0, 0, 4, 4], Device::Cpu);
    s.image = Tensor::from_slice(&[1.0f32, 0.0, 0.0])
        .view([3, 1, 1])
        .expand([3, 4, 4], false)
        .contiguous();
    let out = hsv(s, [1.0, 0.5, 0.5]).unwrap();
    let px = Vec::<f32>::try_from(out.image.select(2, 0).select(1, 0)).unwrap();
    let px: Vec<f64> = px.iter().map(|&v| f64::from(v)).collect();
    test_support::assert_all_close(&px, &[0.5, 0.25, 0.25], test_support::Tol::abs(1e-6));
    // an arbitrary colour round-trips through HSV with unit gains
    let mut s = sample(8, 8, [0, 0, 8, 8], Device::Cpu);
    s.image = Tensor::rand([3, 8, 8], (Kind::Float, Device::Cpu));
    let before = s.image.copy();
    let out = hsv(s, [1.0, 1.0, 1.0]).unwrap();
    let d = (out.image - before).abs().max().double_value(&[]);
    assert!(d < 1e-5, "{d}");
    // the defaults are ultralytics'
    let g = det_core::data::HsvGains::default();
    assert_eq!((g.h, g.s, g.v), (0.015, 0.7, 0.4));
}

#[test]
fn bad_sizes_are_errors() {
    let s = || sample(16, 16, [2, 2, 8, 8], Device::Cpu);
    assert!(resize(s(), 0, 4).is_err());
    assert!(letterbox(s(), 4, 0, 0.0).is_err());
    assert!(scale_place(s(), f64::NAN, (0, 0), (8, 8), 0.0, 0.2, 1.0).is_err());
    assert!(scale_place(s(), -1.0, (0, 0), (8, 8), 0.0, 0.2, 1.0).is_err());
    // A sample whose image is not what its map says is an error naming both, not a panic.
    let wrong_size = Sample {
        map: ImageMap::identity(20, 16),
        ..s()
    };
    let e = hflip(wrong_size).unwrap_err().to_string();
    assert!(
        e.contains("[1 or 3, 16, 20]") && e.contains("[3, 16, 16]"),
        "{e}"
    );
    let scalar = Sample {
        image: Tensor::from(0.5f32),
        ..s()
    };
    assert!(hsv(scalar, [1.0, 1.0, 1.0]).is_err());
    let bytes = Sample {
        image: Tensor::zeros([3, 16, 16], (Kind::Uint8, Device::Cpu)),
        ..s()
    };
    assert!(letterbox(bytes, 8, 8, 0.0)
        .unwrap_err()
        .to_string()
        .contains("Uint8"));
    let no_class = Sample {
        classes: vec![],
        ..s()
    };
    assert!(resize(no_class, 8, 8).is_err());
}
