//! Batching: padded targets, the requested device, epoch order fixed by `(seed, epoch)`, and
//! `epoch_from(e, k)` equal to the tail of `epoch_from(e, 0)`. On MNIST-det canvases made from
//! synthetic "digits" (no data needed).

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tch")]

use std::sync::Arc;

use det_core::data::{
    Category, DetLoader, DetLoaderConfig, DetRecord, DetectionSet, MnistDet, MnistDetConfig,
    MnistSplit,
};
use det_core::DetError;
use tch::{Device, Kind, Tensor};

fn digits() -> (Tensor, Tensor) {
    let mut px = vec![0f32; 10 * 28 * 28];
    for d in 0..10usize {
        for y in 4..24 {
            for x in 9..(13 + d).min(27) {
                px[d * 784 + y * 28 + x] = 1.0;
            }
        }
    }
    (
        Tensor::from_slice(&px).view([10, 1, 28, 28]),
        Tensor::from_slice(&(0..10i64).collect::<Vec<_>>()),
    )
}

fn set(n: usize) -> Arc<dyn DetectionSet> {
    let (x, y) = digits();
    let cfg = MnistDetConfig {
        width: 96,
        height: 64,
        min_size: 8.0,
        max_size: 40.0,
        train_images: n,
        ..MnistDetConfig::default()
    };
    Arc::new(MnistDet::from_digits(&x, &y, MnistSplit::Train, &cfg).unwrap())
}

fn device() -> Device {
    Device::cuda_if_available()
}

#[test]
fn padding_and_device() {
    let s = set(10);
    let dev = device();
    let cfg = DetLoaderConfig::eval((96, 64), 4);
    let loader = DetLoader::new(Arc::clone(&s), cfg, dev).unwrap();
    assert_eq!(loader.batches_per_epoch(), 3);
    let batches: Vec<_> = loader.epoch_from(0, 0).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].image_ids, vec![9, 10]);
    for b in &batches {
        let n = b.image_ids.len() as i64;
        let m = b
            .indices
            .iter()
            .map(|&i| s.record(i).unwrap().boxes.len())
            .max()
            .unwrap() as i64;
        assert_eq!(b.images.size(), vec![n, 3, 64, 96]);
        assert_eq!(b.boxes.size(), vec![n, m, 4]);
        assert_eq!(b.classes.size(), vec![n, m]);
        for t in [&b.images, &b.boxes, &b.classes, &b.ignore, &b.counts] {
            assert_eq!(t.device(), dev);
        }
        assert_eq!(b.boxes.kind(), Kind::Float);
        assert_eq!(b.classes.kind(), Kind::Int64);
        let classes = b.classes.to_device(Device::Cpu);
        let boxes = b.boxes.to_device(Device::Cpu);
        for (row, &i) in b.indices.iter().enumerate() {
            let r = s.record(i).unwrap();
            let k = r.boxes.len() as i64;
            assert_eq!(b.counts.int64_value(&[row as i64]), k);
            for j in 0..m {
                let c = classes.int64_value(&[row as i64, j]);
                if j < k {
                    assert_eq!(c, r.classes[j as usize]);
                    // input size = image size: the letterbox is the identity
                    for q in 0..4 {
                        let v = boxes.double_value(&[row as i64, j, q]);
                        assert_eq!(v, r.boxes[j as usize][q as usize]);
                    }
                } else {
                    assert_eq!(c, -1, "padding");
                    assert_eq!(
                        boxes
                            .get(row as i64)
                            .get(j)
                            .abs()
                            .sum(Kind::Float)
                            .double_value(&[]),
                        0.0
                    );
                }
            }
        }
        assert!(!bool::try_from(b.ignore.any()).unwrap());
    }
    // pad_to fixes M; workers do not change anything
    let cfg = DetLoaderConfig {
        pad_to: 12,
        workers: 2,
        ..DetLoaderConfig::eval((96, 64), 4)
    };
    let fixed = DetLoader::new(Arc::clone(&s), cfg, dev).unwrap();
    let b = fixed.epoch_from(0, 0).next().unwrap().unwrap();
    assert_eq!(b.boxes.size()[1], 12);
    let same = batches[0].images.to_device(Device::Cpu) - b.images.to_device(Device::Cpu);
    assert_eq!(same.abs().max().double_value(&[]), 0.0);
}

#[test]
fn epoch_from_is_the_tail_and_order_depends_on_seed_and_epoch() {
    let s = set(23);
    let cfg = DetLoaderConfig {
        batch_size: 5,
        seed: 11,
        size: (64, 64),
        ..DetLoaderConfig::default()
    };
    let loader = DetLoader::new(Arc::clone(&s), cfg.clone(), Device::Cpu).unwrap();
    assert_eq!(loader.batches_per_epoch(), 5);
    let full: Vec<_> = loader.epoch_from(3, 0).map(Result::unwrap).collect();
    let tail: Vec<_> = loader.epoch_from(3, 2).map(Result::unwrap).collect();
    assert_eq!(loader.epoch_from(3, 2).remaining(), 3);
    assert_eq!(tail.len(), 3);
    for (a, b) in full[2..].iter().zip(&tail) {
        assert_eq!(a.indices, b.indices);
        assert_eq!(a.maps, b.maps);
        let d = (&a.images - &b.images).abs().max().double_value(&[]);
        assert_eq!(d, 0.0);
        assert!(a.boxes.equal(&b.boxes) && a.classes.equal(&b.classes));
    }
    // a second loader with the same seed: the same epoch; another epoch: another order
    let again = DetLoader::new(Arc::clone(&s), cfg.clone(), Device::Cpu).unwrap();
    assert_eq!(again.order(3), loader.order(3));
    assert_ne!(loader.order(3), loader.order(4));
    let mut sorted = loader.order(4);
    sorted.sort();
    assert_eq!(sorted, (0..23).collect::<Vec<_>>());
    let other = DetLoader::new(
        Arc::clone(&s),
        DetLoaderConfig {
            seed: 12,
            ..cfg.clone()
        },
        Device::Cpu,
    )
    .unwrap();
    assert_ne!(other.order(3), loader.order(3));
    // augmentation draws depend on (seed, epoch, image), not on the batch composition
    let b1 = DetLoader::new(
        Arc::clone(&s),
        DetLoaderConfig {
            batch_size: 1,
            ..cfg.clone()
        },
        Device::Cpu,
    )
    .unwrap();
    let one = b1.batch(&[full[1].indices[0]], 3).unwrap();
    assert_eq!(one.maps[0], full[1].maps[0]);
    // drop_last
    let dl = DetLoader::new(
        Arc::clone(&s),
        DetLoaderConfig {
            drop_last: true,
            ..cfg
        },
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(dl.batches_per_epoch(), 4);
    assert_eq!(dl.epoch_from(0, 0).count(), 4);
    assert_eq!(dl.epoch_from(0, 9).count(), 0);
}

#[test]
fn augmented_batches_keep_boxes_on_their_pixels() {
    // "digits" that are filled rectangles, no clutter, no overlap: inside every box of an
    // augmented batch, the pixels above MNIST-det's ink threshold reach the box's borders
    // (within a pixel plus the resampling blur, one output pixel per unit of scale)
    let (x, y) = digits();
    let mcfg = MnistDetConfig {
        width: 96,
        height: 64,
        min_size: 10.0,
        max_size: 40.0,
        max_overlap: 0.0,
        max_clutter: 0,
        train_images: 12,
        ..MnistDetConfig::default()
    };
    let s: Arc<dyn DetectionSet> =
        Arc::new(MnistDet::from_digits(&x, &y, MnistSplit::Train, &mcfg).unwrap());
    let cfg = DetLoaderConfig {
        batch_size: 4,
        size: (80, 64),
        augment: Some(det_core::data::AugmentConfig {
            hsv: None,
            fill: 0.0,
            ..det_core::data::AugmentConfig::default()
        }),
        ..DetLoaderConfig::default()
    };
    let l = DetLoader::new(s, cfg, device()).unwrap();
    let mut checked = 0;
    for epoch in 0..3 {
        for b in l.epoch_from(epoch, 0) {
            let b = b.unwrap();
            let ink = b.images.to_device(Device::Cpu).select(1, 0).ge(0.3);
            let boxes = b.boxes.to_device(Device::Cpu);
            for (row, m) in b.maps.iter().enumerate() {
                let tol = 1.0 + m.ax.abs();
                for k in 0..b.counts.int64_value(&[row as i64]) {
                    let bx: Vec<f64> = (0..4)
                        .map(|q| boxes.double_value(&[row as i64, k, q]))
                        .collect();
                    let (x0, y0) = (bx[0].floor() as i64, bx[1].floor() as i64);
                    let (x1, y1) = (bx[2].ceil() as i64, bx[3].ceil() as i64);
                    let patch = ink
                        .get(row as i64)
                        .narrow(0, y0, y1 - y0)
                        .narrow(1, x0, x1 - x0);
                    let cols =
                        Vec::<i64>::try_from(patch.any_dim(0, false).nonzero().view([-1])).unwrap();
                    let rows =
                        Vec::<i64>::try_from(patch.any_dim(1, false).nonzero().view([-1])).unwrap();
                    let e = [
                        (x0 + cols[0]) as f64,
                        (y0 + rows[0]) as f64,
                        (x0 + cols[cols.len() - 1] + 1) as f64,
                        (y0 + rows[rows.len() - 1] + 1) as f64,
                    ];
                    for q in 0..4 {
                        assert!(
                            (e[q] - bx[q]).abs() <= tol,
                            "epoch {epoch}: box {bx:?}, ink {e:?}, map {m:?}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 30, "{checked}");
}

#[test]
fn the_loader_is_a_train_kit_data_source() {
    use train_kit::DataSource;
    fn ids<S: DataSource<Batch = det_core::data::DetBatch, Error = DetError>>(
        s: &S,
        e: u64,
        k: u64,
    ) -> Vec<Vec<i64>> {
        s.epoch_from(e, k).map(|b| b.unwrap().image_ids).collect()
    }
    let cfg = DetLoaderConfig {
        batch_size: 3,
        size: (48, 32),
        ..DetLoaderConfig::default()
    };
    let l = DetLoader::new(set(10), cfg, Device::Cpu).unwrap();
    assert_eq!(DataSource::batches_per_epoch(&l), 4);
    let all = ids(&l, 1, 0);
    assert_eq!(all.len(), 4);
    assert_eq!(ids(&l, 1, 3), all[3..].to_vec());
    assert!(ids(&l, 1, 4).is_empty());
    assert_ne!(ids(&l, 2, 0), all);
}

/// A set whose second image is not the size its record says.
struct Lying(Vec<DetRecord>, Vec<Category>);

impl DetectionSet for Lying {
    fn name(&self) -> String {
        "lying".into()
    }
    fn categories(&self) -> &[Category] {
        &self.1
    }
    fn records(&self) -> &[DetRecord] {
        &self.0
    }
    fn image(&self, i: usize) -> det_core::Result<Tensor> {
        let w = if i == 1 { 30 } else { 32 };
        Ok(Tensor::zeros([3, 32, w], (Kind::Float, Device::Cpu)))
    }
    fn channels(&self) -> i64 {
        3
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let rec = |id| {
        DetRecord::new(
            id,
            format!("{id}.png"),
            (32, 32),
            vec![[1.0, 1.0, 5.0, 5.0]],
            vec![0],
        )
    };
    let s: Arc<dyn DetectionSet> = Arc::new(Lying(
        vec![rec(1), rec(2)],
        vec![Category {
            id: 1,
            name: "x".into(),
        }],
    ));
    let l = DetLoader::new(
        Arc::clone(&s),
        DetLoaderConfig::eval((32, 32), 2),
        Device::Cpu,
    )
    .unwrap();
    let e = l.epoch_from(0, 0).next().unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            DetError::ImageSize {
                expected_w: 32,
                got_w: 30,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("expected 32x32"), "{e}");
    let bad = DetLoaderConfig {
        batch_size: 0,
        ..DetLoaderConfig::default()
    };
    assert!(DetLoader::new(Arc::clone(&s), bad, Device::Cpu).is_err());
    assert!(l.batch(&[5], 0).is_err());
    assert!(l.batch(&[], 0).is_err());
}
