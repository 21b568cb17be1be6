//! Errors at the crate's public entry points: each says what was expected and what arrived.

/// What went wrong at one of contrastive-nce's public entry points.
#[derive(Debug, thiserror::Error)]
pub enum NceError {
    /// A tensor argument of the wrong shape (a score matrix that is not square, a baseline
    /// that is not one value per row, features of different batch sizes, ...).
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        /// The argument.
        what: &'static str,
        /// What the entry point accepts.
        expected: String,
        /// The shape that arrived.
        got: Vec<i64>,
    },
    /// A batch too small to hold a negative: the bounds average over the off-diagonal pairs.
    #[error("{what}: a batch of {got} has no negative pair; at least {min} samples are needed")]
    BatchTooSmall {
        /// The argument.
        what: &'static str,
        /// The batch size that arrived.
        got: i64,
        /// The smallest batch accepted.
        min: i64,
    },
    /// NaN or infinite values in an input.
    #[error(
        "{what}: {count} non-finite values (NaN or infinity) among {total}; expected all finite"
    )]
    NonFinite {
        /// The argument.
        what: &'static str,
        /// How many values are not finite.
        count: i64,
        /// How many values the tensor holds.
        total: i64,
    },
    /// A configuration value out of range (temperature <= 0, momentum outside [0, 1], ...).
    #[error("invalid config: {0}")]
    Config(String),
    /// A data file of the wrong structure or a failed load.
    #[error("data: {0}")]
    Data(#[from] datasets::DataError),
    /// A training-kit call (optimiser, trainer, checkpoint) failed.
    #[error("training: {0}")]
    Train(#[from] train_kit::TrainError),
    /// A libtorch call failed.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The crate's result type.
pub type Result<T, E = NceError> = std::result::Result<T, E>;

/// `Ok` when every value of `t` is finite, else [`NceError::NonFinite`] naming `what`.
pub(crate) fn check_finite(what: &'static str, t: &tch::Tensor) -> Result<()> {
    let bad = t
        .isfinite()
        .logical_not()
        .sum(tch::Kind::Int64)
        .int64_value(&[]);
    if bad > 0 {
        return Err(NceError::NonFinite {
            what,
            count: bad,
            total: t.numel() as i64,
        });
    }
    Ok(())
}

/// `Ok` when `t` is a square `[n, n]` matrix with `n >= 2` and finite values; returns `n`.
pub(crate) fn check_scores(what: &'static str, t: &tch::Tensor) -> Result<i64> {
    let size = t.size();
    if size.len() != 2 || size[0] != size[1] {
        return Err(NceError::Shape {
            what,
            expected: "a square [n, n] score matrix (scores[i, j] = f(x_j, y_i))".into(),
            got: size,
        });
    }
    if size[0] < 2 {
        return Err(NceError::BatchTooSmall {
            what,
            got: size[0],
            min: 2,
        });
    }
    check_finite(what, t)?;
    Ok(size[0])
}

/// `Ok` when `t` is `[n]` (or `[n, 1]`, squeezed) with finite values; returns it as `[n]`.
pub(crate) fn check_row_vector(what: &'static str, t: &tch::Tensor, n: i64) -> Result<tch::Tensor> {
    let size = t.size();
    let ok = size == [n] || size == [n, 1];
    if !ok {
        return Err(NceError::Shape {
            what,
            expected: format!("one value per row: [{n}] or [{n}, 1]"),
            got: size,
        });
    }
    check_finite(what, t)?;
    Ok(t.reshape([n]))
}
