//! contrastive-nce claims: the variational MI bounds on the correlated-Gaussian benchmark
//! ([`mi_bounds`]).

mod mi_bounds;

use crate::claim::Claim;

/// The contrastive-nce claims, in report order.
pub fn claims() -> Vec<Claim> {
    vec![mi_bounds::claim()]
}
