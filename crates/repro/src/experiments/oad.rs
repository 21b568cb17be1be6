//! oad-transformer claims (filled in as the crate lands).

use crate::claim::Claim;

/// The oad-transformer claims, in report order.
pub fn claims() -> Vec<Claim> {
    Vec::new()
}
