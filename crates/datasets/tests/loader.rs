//! Tests of the loader: determinism, coverage, drop_last, prefetch equivalence, errors.

use datasets::loader::*;
use datasets::{DataError, Result};
use tch::Kind;
use tch::Tensor;

/// `n` items whose image row `i` is `[i, -i]` and whose label is `i`.
fn data(n: i64) -> (Tensor, Tensor) {
    let labels = Tensor::arange(n, (Kind::Int64, tch::Device::Cpu));
    let f = labels.to_kind(Kind::Float).unsqueeze(1);
    (Tensor::cat(&[&f, &(-&f)], 1), labels)
}

fn cfg(batch_size: usize, seed: u64, prefetch: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        seed,
        prefetch,
        ..LoaderConfig::default()
    }
}

/// The label lists of every batch of `epoch`, checking images match labels.
fn labels_of(loader: &Loader, epoch: u64) -> Vec<Vec<i64>> {
    loader
        .epoch(epoch)
        .map(|b| {
            let b = b.unwrap();
            let ys = Vec::<i64>::try_from(&b.labels).unwrap();
            let xs = Vec::<f32>::try_from(&b.images.select(1, 0)).unwrap();
            assert_eq!(ys.iter().map(|&y| y as f32).collect::<Vec<_>>(), xs);
            assert_eq!(
                ys.iter().map(|&y| y as usize).collect::<Vec<_>>(),
                b.indices
            );
            ys
        })
        .collect()
}

#[test]
fn default_config() {
    let c = LoaderConfig::default();
    assert_eq!(
        (
            c.batch_size,
            c.shuffle,
            c.drop_last,
            c.seed,
            c.prefetch,
            c.workers
        ),
        (64, true, false, 0, 2, 1)
    );
}

#[test]
fn same_seed_same_batches_different_seed_or_epoch_different_order() {
    let (x, y) = data(100);
    let a = Loader::new(&x, &y, cfg(8, 7, 2)).unwrap();
    let b = Loader::new(&x, &y, cfg(8, 7, 2)).unwrap();
    let c = Loader::new(&x, &y, cfg(8, 8, 2)).unwrap();
    assert_eq!(labels_of(&a, 0), labels_of(&b, 0));
    assert_eq!(labels_of(&a, 3), labels_of(&a, 3));
    assert_ne!(labels_of(&a, 0), labels_of(&c, 0));
    assert_ne!(labels_of(&a, 0), labels_of(&a, 1));
}

#[test]
fn every_index_exactly_once_per_epoch() {
    let (x, y) = data(103);
    let l = Loader::new(&x, &y, cfg(10, 1, 3)).unwrap();
    for epoch in 0..4 {
        let mut seen: Vec<i64> = labels_of(&l, epoch).concat();
        assert_ne!(seen, (0..103).collect::<Vec<_>>(), "shuffled");
        seen.sort();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
    }
}

#[test]
fn drop_last_and_batch_counts() {
    let (x, y) = data(10);
    let keep = Loader::new(&x, &y, cfg(4, 0, 1)).unwrap();
    let sizes: Vec<usize> = labels_of(&keep, 0).iter().map(Vec::len).collect();
    assert_eq!((keep.batches_per_epoch(), sizes), (3, vec![4, 4, 2]));
    let drop = Loader::new(
        &x,
        &y,
        LoaderConfig {
            drop_last: true,
            ..cfg(4, 0, 1)
        },
    )
    .unwrap();
    let batches = labels_of(&drop, 0);
    assert_eq!(drop.batches_per_epoch(), 2);
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4]);
    // The dropped items are the tail of the same permutation.
    assert_eq!(batches.concat(), labels_of(&keep, 0).concat()[..8].to_vec());
    let big = Loader::new(
        &x,
        &y,
        LoaderConfig {
            drop_last: true,
            ..cfg(11, 0, 1)
        },
    )
    .unwrap();
    assert_eq!((big.batches_per_epoch(), big.epoch(0).count()), (0, 0));
}

#[test]
fn prefetch_on_and_off_give_identical_batches() {
    let (x, y) = data(77);
    let base = labels_of(&Loader::new(&x, &y, cfg(6, 42, 0)).unwrap(), 5);
    for prefetch in [1, 2, 16] {
        let l = Loader::new(&x, &y, cfg(6, 42, prefetch)).unwrap();
        assert_eq!(labels_of(&l, 5), base, "prefetch {prefetch}");
    }
}

#[test]
fn no_shuffle_is_index_order() {
    let (x, y) = data(9);
    let l = Loader::new(
        &x,
        &y,
        LoaderConfig {
            shuffle: false,
            ..cfg(4, 3, 2)
        },
    )
    .unwrap();
    assert_eq!(
        labels_of(&l, 2),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8]]
    );
}

#[test]
fn shape_mismatch_and_zero_batch_size_are_errors() {
    let (x, _) = data(10);
    let (_, y) = data(9);
    let err = Loader::new(&x, &y, cfg(4, 0, 0)).unwrap_err().to_string();
    assert!(err.contains("[10, 2]") && err.contains("[9]"), "{err}");
    let scalar = Tensor::from(3i64);
    assert!(Loader::new(&x, &scalar, cfg(4, 0, 0)).is_err());
    let (x, y) = data(10);
    let err = Loader::new(&x, &y, cfg(0, 0, 0)).unwrap_err();
    assert!(matches!(err, DataError::Config(_)), "{err}");
    assert!(Loader::from_fn(3, |_| unreachable!(), cfg(0, 0, 0)).is_err());
}

#[test]
fn early_drop_does_not_hang() {
    let (x, y) = data(1000);
    let l = Loader::new(&x, &y, cfg(1, 0, 1)).unwrap();
    let mut e = l.epoch(0);
    assert!(e.next().unwrap().is_ok());
    assert_eq!(e.remaining(), 999);
    drop(e);
}

fn item(i: usize) -> Result<(Tensor, i64)> {
    Ok((Tensor::from_slice(&[i as f32, 0.0, 1.0]), i as i64 * 10))
}

#[test]
fn from_fn_stacks_items_in_the_same_order_as_tensors() {
    let l = Loader::from_fn(23, item, cfg(5, 9, 2)).unwrap();
    let (x, y) = data(23);
    let t = Loader::new(&x, &y, cfg(5, 9, 2)).unwrap();
    assert_eq!(l.order(4), t.order(4));
    for b in l.epoch(4) {
        let b = b.unwrap();
        assert_eq!(b.images.size(), vec![b.indices.len() as i64, 3]);
        let ys = Vec::<i64>::try_from(&b.labels).unwrap();
        assert_eq!(
            ys,
            b.indices.iter().map(|&i| i as i64 * 10).collect::<Vec<_>>()
        );
    }
}

#[test]
fn from_fn_errors_are_err_items_not_panics() {
    for prefetch in [0, 2] {
        let get = |i: usize| {
            if i == 3 {
                Err(DataError::Image {
                    path: "bad/3.png".into(),
                    reason: "corrupt".into(),
                })
            } else {
                item(i)
            }
        };
        let l = Loader::from_fn(
            8,
            get,
            LoaderConfig {
                shuffle: false,
                ..cfg(2, 0, prefetch)
            },
        )
        .unwrap();
        let res: Vec<_> = l.epoch(0).collect();
        assert_eq!(res.len(), 4);
        assert!(res[0].is_ok() && res[2].is_ok() && res[3].is_ok());
        let err = res[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("bad/3.png"), "{err}");
    }
}

#[test]
fn from_fn_shape_mismatch_names_the_item() {
    let get = |i: usize| {
        let n = if i == 1 { 4 } else { 3 };
        Ok((Tensor::zeros([n], (Kind::Float, tch::Device::Cpu)), 0))
    };
    let l = Loader::from_fn(
        2,
        get,
        LoaderConfig {
            shuffle: false,
            ..cfg(2, 0, 1)
        },
    )
    .unwrap();
    let err = l.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("item 1") && err.contains("[3]") && err.contains("[4]"),
        "{err}"
    );
}

#[test]
fn worker_panic_surfaces_as_an_err_item() {
    let get = |i: usize| {
        if i == 2 {
            panic!("boom at item 2")
        } else {
            item(i)
        }
    };
    let l = Loader::from_fn(
        6,
        get,
        LoaderConfig {
            shuffle: false,
            ..cfg(2, 0, 1)
        },
    )
    .unwrap();
    let res: Vec<_> = l.epoch(0).collect();
    assert_eq!(res.len(), 2);
    assert!(res[0].is_ok());
    let err = res[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("boom at item 2"), "{err}");
}

/// Every batch's item indices and labels, in order.
fn batches_of(e: Epoch) -> Vec<(Vec<usize>, Vec<i64>)> {
    e.map(|b| {
        let b = b.unwrap();
        (b.indices.clone(), Vec::<i64>::try_from(&b.labels).unwrap())
    })
    .collect()
}

#[test]
fn item_workers_give_the_same_batches_and_the_first_error() {
    let one = Loader::from_fn(37, item, cfg(8, 3, 0)).unwrap();
    let want = batches_of(one.epoch(2));
    for (workers, prefetch) in [(2, 0), (3, 2), (8, 1), (64, 0), (0, 0)] {
        let many = Loader::from_fn(
            37,
            item,
            LoaderConfig {
                workers,
                ..cfg(8, 3, prefetch)
            },
        )
        .unwrap();
        assert_eq!(batches_of(many.epoch(2)), want, "workers {workers}");
    }
    // Items 1 and 6 fail in different threads: the batch reports item 1, the first in order.
    let get = |i: usize| {
        if i == 1 || i == 6 {
            Err(DataError::Image {
                path: format!("bad/{i}.png").into(),
                reason: "corrupt".into(),
            })
        } else {
            item(i)
        }
    };
    let l = Loader::from_fn(
        8,
        get,
        LoaderConfig {
            shuffle: false,
            workers: 4,
            ..cfg(8, 0, 0)
        },
    )
    .unwrap();
    let err = l.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(err.contains("bad/1.png"), "{err}");
}

#[test]
fn epoch_from_skips_batches_without_building_them() {
    let built = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&built);
    let get = move |i: usize| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        item(i)
    };
    for prefetch in [0, 2] {
        let l = Loader::from_fn(40, get.clone(), cfg(6, 11, prefetch)).unwrap();
        let all = batches_of(l.epoch(5));
        built.store(0, std::sync::atomic::Ordering::SeqCst);
        let e = l.epoch_from(5, 4);
        assert_eq!(e.remaining(), all.len() - 4);
        assert_eq!(batches_of(e), all[4..].to_vec());
        // Only the 3 remaining batches (6 + 6 + 4 items) were built.
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 16);
        assert_eq!(l.epoch_from(5, 99).count(), 0);
        // One rank's shard: batches 1, 3, 5 of the 7, and only those are built.
        built.store(0, std::sync::atomic::Ordering::SeqCst);
        let shard = batches_of(l.epoch_strided(5, 1, 2));
        assert_eq!(shard, vec![all[1].clone(), all[3].clone(), all[5].clone()]);
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 18);
    }
}
