//! A seeded batch loader over in-memory tensors or an item function, with background prefetch.
//!
//! The order of an epoch is a permutation drawn from `ChaCha8Rng::seed_from_u64(seed ^ mix(epoch))`
//! in the calling thread, so batches depend only on `(seed, epoch)`, never on `prefetch`. With
//! `prefetch > 0` batches are built in a worker thread and handed over through a
//! `sync_channel(prefetch)`; with `prefetch = 0` they are built on demand in the caller's thread.

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::Tensor;

use crate::{DataError, Result};

/// How a [`Loader`] batches and orders its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Items per batch.
    pub batch_size: usize,
    /// Shuffle each epoch (seeded); otherwise items come in index order.
    pub shuffle: bool,
    /// Drop the last, incomplete batch.
    pub drop_last: bool,
    /// Seed of the epoch order (with the epoch number).
    pub seed: u64,
    /// Batches built ahead in a worker thread; 0 builds them synchronously.
    pub prefetch: usize,
    /// Threads that build the items of one batch (item loaders such as image folders; in-memory
    /// tensors ignore it). Items depend only on their index, so batches do not depend on it.
    pub workers: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            seed: 0,
            prefetch: 2,
            workers: 1,
        }
    }
}

/// One batch: stacked images, i64 labels, and the item indices it holds.
#[derive(Debug)]
pub struct Batch {
    /// Stacked images `[B, ...]`.
    pub images: Tensor,
    /// Int64 labels `[B]`.
    pub labels: Tensor,
    /// The item indices the batch holds, in order.
    pub indices: Vec<usize>,
}

type ItemFn = dyn Fn(usize) -> Result<(Tensor, i64)> + Send + Sync;

enum Source {
    Tensors {
        images: Tensor,
        labels: Tensor,
    },
    /// Items from a function, decoded on `pool` (the loader's `workers` threads) when there is one.
    Items {
        get: Arc<ItemFn>,
        pool: Option<Arc<rayon::ThreadPool>>,
    },
}

impl Source {
    fn share(&self) -> Source {
        match self {
            Source::Tensors { images, labels } => Source::Tensors {
                images: images.shallow_clone(),
                labels: labels.shallow_clone(),
            },
            Source::Items { get, pool } => Source::Items {
                get: Arc::clone(get),
                pool: pool.clone(),
            },
        }
    }

    fn batch(&self, indices: Vec<usize>) -> Result<Batch> {
        match self {
            Source::Tensors { images, labels } => {
                let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
                let ctx = "selecting a batch";
                let pick = |t: &Tensor| {
                    Tensor::f_from_slice(&idx)
                        .and_then(|i| i.f_to_device(t.device()))
                        .and_then(|i| t.f_index_select(0, &i))
                        .map_err(DataError::torch(ctx))
                };
                Ok(Batch {
                    images: pick(images)?,
                    labels: pick(labels)?,
                    indices,
                })
            }
            Source::Items { get, pool } => {
                let items = build_items(get.as_ref(), &indices, pool.as_deref())?;
                let mut xs = Vec::with_capacity(indices.len());
                let mut ys = Vec::with_capacity(indices.len());
                for (&i, (x, y)) in indices.iter().zip(items) {
                    if let Some(first) = xs.first().map(Tensor::size) {
                        if x.size() != first {
                            return Err(DataError::Shape {
                                what: format!("item {i} of a batch"),
                                expected: format!("{first:?} (the shape of item {})", indices[0]),
                                actual: format!("{:?}", x.size()),
                            });
                        }
                    }
                    xs.push(x);
                    ys.push(y);
                }
                let images = Tensor::f_stack(&xs, 0).map_err(DataError::torch("stacking items"))?;
                let labels = Tensor::f_from_slice(&ys).map_err(DataError::torch("labels"))?;
                Ok(Batch {
                    images,
                    labels,
                    indices,
                })
            }
        }
    }
}

/// `get` over `indices`, in parallel on `pool` (rayon) when there is one. The items come back in
/// index order whatever the thread count, and so does the error: the first in index order. A
/// panicking item is an error naming the panic.
fn build_items(
    get: &ItemFn,
    indices: &[usize],
    pool: Option<&rayon::ThreadPool>,
) -> Result<Vec<(Tensor, i64)>> {
    let Some(pool) = pool.filter(|_| indices.len() > 1) else {
        return indices.iter().map(|&i| get(i)).collect();
    };
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.install(|| indices.par_iter().map(|&i| get(i)).collect::<Vec<_>>())
    }));
    match decoded {
        Ok(items) => items.into_iter().collect(),
        Err(payload) => Err(DataError::Config(format!(
            "an item worker panicked: {}",
            panic_message(payload)
        ))),
    }
}

/// A deterministic, optionally prefetching batch loader.
pub struct Loader {
    source: Source,
    len: usize,
    cfg: LoaderConfig,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("len", &self.len)
            .field("cfg", &self.cfg)
            .finish()
    }
}

fn check_cfg(cfg: &LoaderConfig) -> Result<()> {
    if cfg.batch_size == 0 {
        return Err(DataError::Config(
            "batch_size must be > 0, got 0".to_owned(),
        ));
    }
    Ok(())
}

/// SplitMix64 finalizer: spreads consecutive epochs over the seed space.
fn mix(epoch: u64) -> u64 {
    let mut z = epoch.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Loader {
    /// A loader over `images[i]`, `labels[i]`; both must have the same first dimension.
    /// The tensors are shared (shallow clones), not copied.
    pub fn new(images: &Tensor, labels: &Tensor, cfg: LoaderConfig) -> Result<Loader> {
        check_cfg(&cfg)?;
        let (is, ls) = (images.size(), labels.size());
        match (is.first(), ls.first()) {
            (Some(&n), Some(&m)) if n == m => Ok(Loader {
                source: Source::Tensors {
                    images: images.shallow_clone(),
                    labels: labels.shallow_clone(),
                },
                len: n as usize,
                cfg,
            }),
            _ => Err(DataError::Shape {
                what: "loader images and labels".to_owned(),
                expected: "tensors with the same first dimension".to_owned(),
                actual: format!("images {is:?}, labels {ls:?}"),
            }),
        }
    }

    /// A loader over `len` items produced by `get` (e.g. an [`ImageFolder`](crate::ImageFolder)),
    /// stacked into batches. Items must share one shape; an error of `get` becomes an `Err` batch.
    pub fn from_fn<F>(len: usize, get: F, cfg: LoaderConfig) -> Result<Loader>
    where
        F: Fn(usize) -> Result<(Tensor, i64)> + Send + Sync + 'static,
    {
        check_cfg(&cfg)?;
        let pool = match cfg.workers {
            0 | 1 => None,
            n => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("datasets-item-{i}"))
                    .build()
                    .map_err(|e| {
                        DataError::Config(format!("starting {n} item workers failed: {e}"))
                    })?,
            )),
        };
        Ok(Loader {
            source: Source::Items {
                get: Arc::new(get),
                pool,
            },
            len,
            cfg,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Batches per epoch: `len / batch_size`, rounded up unless `drop_last`.
    pub fn batches_per_epoch(&self) -> usize {
        let bs = self.cfg.batch_size;
        if self.cfg.drop_last {
            self.len / bs
        } else {
            self.len.div_ceil(bs)
        }
    }

    /// The item order of `epoch` (a seeded permutation, or `0..len` without shuffle).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        if self.cfg.shuffle {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.cfg.seed ^ mix(epoch)));
        }
        order
    }

    /// The index chunks of `epoch`: batches `first`, `first + stride`, ...
    fn chunks_from(&self, epoch: u64, first: usize, stride: usize) -> Vec<Vec<usize>> {
        self.order(epoch)
            .chunks(self.cfg.batch_size)
            .take(self.batches_per_epoch())
            .skip(first)
            .step_by(stride.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The batches of `epoch`, in order; deterministic given `(seed, epoch)`.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch `first` on (a run resumed mid-epoch): the same batches
    /// as `epoch(epoch).skip(first)`, without building the skipped ones.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Epoch {
        self.epoch_strided(epoch, first, 1)
    }

    /// Batches `first`, `first + stride`, ... of `epoch` (one rank's shard in data-parallel
    /// training: rank `r` of `w` reads `first = k * w + r`, `stride = w`), without building the
    /// others. `stride` 0 is taken as 1.
    pub fn epoch_strided(&self, epoch: u64, first: usize, stride: usize) -> Epoch {
        let chunks = self.chunks_from(epoch, first, stride);
        let remaining = chunks.len();
        if self.cfg.prefetch == 0 || remaining == 0 {
            return self.sync_epoch(chunks);
        }
        let (tx, rx) = mpsc::sync_channel(self.cfg.prefetch);
        let source = self.source.share();
        let spawned = std::thread::Builder::new()
            .name("datasets-loader".to_owned())
            .spawn(move || {
                for chunk in chunks {
                    if tx.send(source.batch(chunk)).is_err() {
                        return; // the Epoch was dropped
                    }
                }
            });
        match spawned {
            Ok(handle) => Epoch {
                inner: Inner::Worker {
                    rx: Some(rx),
                    handle: Some(handle),
                },
                remaining,
            },
            // No thread: build the same batches here.
            Err(_) => self.sync_epoch(self.chunks_from(epoch, first, stride)),
        }
    }

    fn sync_epoch(&self, chunks: Vec<Vec<usize>>) -> Epoch {
        let remaining = chunks.len();
        Epoch {
            inner: Inner::Sync {
                source: self.source.share(),
                chunks: chunks.into_iter(),
            },
            remaining,
        }
    }
}

enum Inner {
    Sync {
        source: Source,
        chunks: std::vec::IntoIter<Vec<usize>>,
    },
    Worker {
        rx: Option<Receiver<Result<Batch>>>,
        handle: Option<JoinHandle<()>>,
    },
}

/// The batches of one epoch. Dropping it early stops the worker.
pub struct Epoch {
    inner: Inner,
    remaining: usize,
}

impl Epoch {
    /// Batches not yet yielded.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.remaining == 0 {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Sync { source, chunks } => source.batch(chunks.next()?),
            Inner::Worker { rx, handle } => match rx.as_ref().map(Receiver::recv) {
                Some(Ok(item)) => item,
                _ => {
                    // The worker hung up before its last batch: it panicked.
                    self.remaining = 0;
                    let reason = match handle.take().map(JoinHandle::join) {
                        Some(Err(payload)) => panic_message(payload),
                        _ => "the worker thread ended without its batches".to_owned(),
                    };
                    return Some(Err(DataError::Worker(reason)));
                }
            },
        };
        self.remaining -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        if let Inner::Worker { rx, handle } = &mut self.inner {
            drop(rx.take()); // unblocks a worker waiting to send
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}
