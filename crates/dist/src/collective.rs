//! [`train_kit::Collective`] for [`ProcessGroup`]: what the Trainer's data-parallel loop calls.
//! Every [`DistError`](crate::DistError) becomes `TrainError::Distributed` with the same message.

use tch::Tensor;
use train_kit::{Collective, Pending, TrainError};

use crate::group::{ProcessGroup, ReduceOp};

fn train_error(e: crate::DistError) -> TrainError {
    TrainError::Distributed(e.to_string())
}

impl Collective for ProcessGroup {
    fn rank(&self) -> usize {
        ProcessGroup::rank(self)
    }

    fn world_size(&self) -> usize {
        ProcessGroup::world_size(self)
    }

    fn all_reduce_sum_start(&self, t: &Tensor) -> train_kit::Result<Pending> {
        let work = self
            .all_reduce_start(t, ReduceOp::Sum)
            .map_err(train_error)?;
        Ok(Pending::new(move || work.wait().map_err(train_error)))
    }

    fn broadcast(&self, t: &Tensor, root: usize) -> train_kit::Result<()> {
        ProcessGroup::broadcast(self, t, root).map_err(train_error)
    }

    fn barrier(&self) -> train_kit::Result<()> {
        ProcessGroup::barrier(self).map_err(train_error)
    }
}
