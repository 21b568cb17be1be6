//! MNIST-layout data sets (MNIST, Fashion-MNIST) as tensors: images `[N,1,28,28]` f32 in `[0,1]`,
//! labels i64 `[N]`.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::{fetch, idx, DataError, Result};

/// Mean pixel of the MNIST training set (after scaling to `[0,1]`).
pub const MNIST_MEAN: f64 = 0.1307;
/// Standard deviation of the MNIST training pixels (after scaling to `[0,1]`).
pub const MNIST_STD: f64 = 0.3081;

const SIDE: usize = 28;
const CLASSES: u8 = 10;

/// A train/test split of an MNIST-layout data set.
#[derive(Debug)]
pub struct Mnist {
    /// Training images `[N, 1, 28, 28]` in [0, 1].
    pub train_images: Tensor,
    /// Training labels `[N]` (int64).
    pub train_labels: Tensor,
    /// Test images `[M, 1, 28, 28]` in [0, 1].
    pub test_images: Tensor,
    /// Test labels `[M]` (int64).
    pub test_labels: Tensor,
}

/// Fetches (if needed, see [`fetch::ensure`]) and loads data set `name` (`mnist`,
/// `fashion-mnist`).
pub fn load(name: &str, data_root: Option<&Path>) -> Result<Mnist> {
    let dir = fetch::ensure(name, data_root)?;
    load_dir(&dir)
}

/// Loads the four idx files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or `.gz`) from `dir`.
pub fn load_dir(dir: &Path) -> Result<Mnist> {
    let (train_images, train_labels) =
        load_split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let (test_images, test_labels) =
        load_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    Ok(Mnist {
        train_images,
        train_labels,
        test_images,
        test_labels,
    })
}

/// `dir/base`, else `dir/base.gz`.
fn find(dir: &Path, base: &str) -> Result<PathBuf> {
    let raw = dir.join(base);
    let gz = dir.join(format!("{base}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(DataError::MissingFile {
            dataset: "MNIST layout".to_owned(),
            path: dir.join(format!("{base}[.gz]")),
        })
    }
}

fn load_split(dir: &Path, images: &str, labels: &str) -> Result<(Tensor, Tensor)> {
    let (ipath, lpath) = (find(dir, images)?, find(dir, labels)?);
    let img = idx::read(&ipath)?;
    if img.dims.len() != 3 || img.dims[1] != SIDE || img.dims[2] != SIDE {
        return Err(DataError::Shape {
            what: format!("{}: image dimensions", ipath.display()),
            expected: format!("[N, {SIDE}, {SIDE}]"),
            actual: format!("{:?}", img.dims),
        });
    }
    let lab = idx::read(&lpath)?;
    if lab.dims.len() != 1 {
        return Err(DataError::Shape {
            what: format!("{}: label dimensions", lpath.display()),
            expected: "[N]".to_owned(),
            actual: format!("{:?}", lab.dims),
        });
    }
    if lab.dims[0] != img.dims[0] {
        return Err(DataError::Shape {
            what: format!("{}: label count", lpath.display()),
            expected: format!(
                "{} (the number of images in {})",
                img.dims[0],
                ipath.display()
            ),
            actual: lab.dims[0].to_string(),
        });
    }
    if let Some((index, &value)) = lab.data.iter().enumerate().find(|(_, &v)| v >= CLASSES) {
        return Err(DataError::Label {
            path: lpath,
            index,
            value,
            classes: CLASSES,
        });
    }
    let n = img.dims[0] as i64;
    let images = crate::unit_pixels(&img.data, &[n, 1, SIDE as i64, SIDE as i64]).map_err(
        DataError::torch(format!("{}: converting images", ipath.display())),
    )?;
    let labels = Tensor::f_from_slice(&lab.data)
        .and_then(|t| t.f_to_kind(Kind::Int64))
        .map_err(DataError::torch(format!(
            "{}: converting labels",
            lpath.display()
        )))?;
    Ok((images, labels))
}

fn first(images: &Tensor, labels: &Tensor, n: usize, split: &str) -> Result<(Tensor, Tensor)> {
    let len = labels.size().first().copied().unwrap_or(0);
    if n as i64 > len {
        return Err(DataError::Config(format!(
            "subset of {n} {split} examples requested, the {split} split has {len}"
        )));
    }
    let ctx = format!("taking the first {n} {split} examples");
    let images = images
        .f_narrow(0, 0, n as i64)
        .map_err(DataError::torch(ctx.clone()))?;
    let labels = labels
        .f_narrow(0, 0, n as i64)
        .map_err(DataError::torch(ctx))?;
    Ok((images, labels))
}

impl Mnist {
    /// Number of training examples.
    pub fn train_len(&self) -> usize {
        self.train_labels.size().first().copied().unwrap_or(0) as usize
    }

    /// Number of test examples.
    pub fn test_len(&self) -> usize {
        self.test_labels.size().first().copied().unwrap_or(0) as usize
    }

    /// Images mapped to `(x - mean) / std` (e.g. [`MNIST_MEAN`], [`MNIST_STD`]); labels shared.
    pub fn normalized(&self, mean: f64, std: f64) -> Mnist {
        Mnist {
            train_images: (&self.train_images - mean) / std,
            train_labels: self.train_labels.shallow_clone(),
            test_images: (&self.test_images - mean) / std,
            test_labels: self.test_labels.shallow_clone(),
        }
    }

    /// All four tensors moved to `device`; panics like `Tensor::to_device` when the device is
    /// unavailable (see [`Mnist::f_to_device`]).
    pub fn to_device(&self, device: Device) -> Mnist {
        Mnist {
            train_images: self.train_images.to_device(device),
            train_labels: self.train_labels.to_device(device),
            test_images: self.test_images.to_device(device),
            test_labels: self.test_labels.to_device(device),
        }
    }

    /// Like [`Mnist::to_device`], with an error instead of a panic.
    pub fn f_to_device(&self, device: Device) -> Result<Mnist> {
        let mv = |t: &Tensor| {
            t.f_to_device(device)
                .map_err(DataError::torch(format!("moving MNIST to {device:?}")))
        };
        Ok(Mnist {
            train_images: mv(&self.train_images)?,
            train_labels: mv(&self.train_labels)?,
            test_images: mv(&self.test_images)?,
            test_labels: mv(&self.test_labels)?,
        })
    }

    /// The first `n` training examples (views, no copy); the test split is shared.
    pub fn subset_train(&self, n: usize) -> Result<Mnist> {
        let (train_images, train_labels) =
            first(&self.train_images, &self.train_labels, n, "train")?;
        Ok(Mnist {
            train_images,
            train_labels,
            test_images: self.test_images.shallow_clone(),
            test_labels: self.test_labels.shallow_clone(),
        })
    }

    /// The first `n` test examples (views, no copy); the train split is shared.
    pub fn subset_test(&self, n: usize) -> Result<Mnist> {
        let (test_images, test_labels) = first(&self.test_images, &self.test_labels, n, "test")?;
        Ok(Mnist {
            train_images: self.train_images.shallow_clone(),
            train_labels: self.train_labels.shallow_clone(),
            test_images,
            test_labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::encode;
    use std::fs;

    /// Writes a tiny MNIST-layout folder: `n` train and `m` test images with pixel `i` = i % 256.
    fn write_set(dir: &Path, n: u32, m: u32, gz: bool) {
        let write = |name: &str, bytes: Vec<u8>| {
            if gz {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&bytes).unwrap();
                fs::write(dir.join(format!("{name}.gz")), e.finish().unwrap()).unwrap();
            } else {
                fs::write(dir.join(name), bytes).unwrap();
            }
        };
        let pixels = |k: u32| (0..k * 784).map(|i| (i % 256) as u8).collect::<Vec<_>>();
        let labels = |k: u32| (0..k).map(|i| (i % 10) as u8).collect::<Vec<_>>();
        write("train-images-idx3-ubyte", encode(&[n, 28, 28], &pixels(n)));
        write("train-labels-idx1-ubyte", encode(&[n], &labels(n)));
        write("t10k-images-idx3-ubyte", encode(&[m, 28, 28], &pixels(m)));
        write("t10k-labels-idx1-ubyte", encode(&[m], &labels(m)));
    }

    #[test]
    fn loads_raw_and_gz_folders() {
        for gz in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_set(dir.path(), 12, 3, gz);
            let m = load_dir(dir.path()).unwrap();
            assert_eq!(m.train_images.size(), vec![12, 1, 28, 28]);
            assert_eq!(m.train_images.kind(), Kind::Float);
            assert_eq!(m.train_labels.size(), vec![12]);
            assert_eq!(m.train_labels.kind(), Kind::Int64);
            assert_eq!(m.test_images.size(), vec![3, 1, 28, 28]);
            assert_eq!(m.train_labels.int64_value(&[11]), 1);
            let px = m.train_images.double_value(&[0, 0, 9, 3]);
            assert!((px - 1.0).abs() < 1e-6, "{px}");
            assert_eq!(m.train_images.double_value(&[0, 0, 0, 0]), 0.0);
        }
    }

    #[test]
    fn label_count_mismatch_says_expected_and_actual() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 5, 2, false);
        fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            encode(&[4], &[0; 4]),
        )
        .unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DataError::Shape { .. }), "{text}");
        assert!(
            text.contains("expected 5") && text.contains("got 4"),
            "{text}"
        );
        assert!(text.contains("train-labels-idx1-ubyte"), "{text}");
    }

    #[test]
    fn wrong_image_dims_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 2, 2, false);
        let path = dir.path().join("t10k-images-idx3-ubyte");
        fs::write(&path, encode(&[2, 27, 28], &[0; 2 * 27 * 28])).unwrap();
        let text = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains("[N, 28, 28]") && text.contains("[2, 27, 28]"),
            "{text}"
        );
        fs::write(&path, encode(&[2, 784], &[0; 2 * 784])).unwrap();
        let text = load_dir(dir.path()).unwrap_err().to_string();
        assert!(text.contains("[2, 784]"), "{text}");
    }

    #[test]
    fn out_of_range_label_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 3, 2, false);
        fs::write(
            dir.path().join("t10k-labels-idx1-ubyte"),
            encode(&[2], &[1, 10]),
        )
        .unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Label {
                    index: 1,
                    value: 10,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn missing_and_truncated_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let text = load_dir(dir.path()).unwrap_err().to_string();
        assert!(text.contains("train-images-idx3-ubyte"), "{text}");
        write_set(dir.path(), 2, 2, false);
        let path = dir.path().join("train-images-idx3-ubyte");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..1000]).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Idx {
                    expected: 1584,
                    actual: 1000,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn subsets_normalization_and_device() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 10, 4, false);
        let m = load_dir(dir.path()).unwrap();
        let s = m.subset_train(3).unwrap().subset_test(2).unwrap();
        assert_eq!((s.train_len(), s.test_len()), (3, 2));
        assert!(m.subset_train(11).is_err());
        let err = m.subset_test(5).unwrap_err().to_string();
        assert!(err.contains('5') && err.contains('4'), "{err}");
        let n = m.normalized(MNIST_MEAN, MNIST_STD);
        let v = n.train_images.double_value(&[0, 0, 0, 0]);
        assert!((v - (-MNIST_MEAN / MNIST_STD)).abs() < 1e-5, "{v}");
        let c = m.to_device(Device::Cpu);
        assert_eq!(c.test_images.size(), m.test_images.size());
        let c = m.f_to_device(Device::Cpu).unwrap();
        assert_eq!(c.train_labels.size(), m.train_labels.size());
    }
}
