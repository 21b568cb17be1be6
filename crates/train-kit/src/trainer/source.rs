//! What a [`crate::Trainer`] reads batches from: anything that yields a fixed number of batches
//! per epoch, in an order fixed by the epoch number, and can start an epoch at any batch without
//! producing the ones before it (that is what makes a resume mid-epoch exact and cheap).

/// A source of training batches, epoch by epoch.
///
/// The contract the trainer relies on for exact resume: `epoch_from(e, k)` yields exactly the
/// batches `k..` of what `epoch_from(e, 0)` yields, and the order depends on `e` only (not on
/// how many epochs were read before).
pub trait DataSource {
    /// One batch as the step function receives it.
    type Batch;
    /// The error a batch can fail with (decoding, i/o).
    type Error;

    /// Batches in every epoch.
    fn batches_per_epoch(&self) -> u64;

    /// Epoch `epoch` from its batch `skip` on.
    fn epoch_from(
        &self,
        epoch: u64,
        skip: u64,
    ) -> impl Iterator<Item = Result<Self::Batch, Self::Error>> + '_;

    /// Every `stride`-th batch of epoch `epoch` from batch `first` on: batches `first`,
    /// `first + stride`, ... of what `epoch_from(epoch, 0)` yields. In data-parallel training
    /// rank `r` of `w` reads `epoch_strided(e, k * w + r, w)` from its local step `k`, so the
    /// ranks' batches of one step are `w` consecutive batches of the epoch, disjoint, and the
    /// same ones after a resume. The default produces and drops the batches in between; a
    /// source that builds batches on demand overrides it to skip them.
    fn epoch_strided(
        &self,
        epoch: u64,
        first: u64,
        stride: u64,
    ) -> impl Iterator<Item = Result<Self::Batch, Self::Error>> + '_ {
        self.epoch_from(epoch, first)
            .step_by(usize::try_from(stride.max(1)).unwrap_or(usize::MAX))
    }
}

impl DataSource for datasets::loader::Loader {
    type Batch = datasets::loader::Batch;
    type Error = datasets::DataError;

    fn batches_per_epoch(&self) -> u64 {
        datasets::loader::Loader::batches_per_epoch(self) as u64
    }

    fn epoch_from(
        &self,
        epoch: u64,
        skip: u64,
    ) -> impl Iterator<Item = Result<Self::Batch, Self::Error>> + '_ {
        datasets::loader::Loader::epoch_from(self, epoch, skip as usize)
    }

    fn epoch_strided(
        &self,
        epoch: u64,
        first: u64,
        stride: u64,
    ) -> impl Iterator<Item = Result<Self::Batch, Self::Error>> + '_ {
        datasets::loader::Loader::epoch_strided(self, epoch, first as usize, stride as usize)
    }
}
