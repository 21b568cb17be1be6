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
}
