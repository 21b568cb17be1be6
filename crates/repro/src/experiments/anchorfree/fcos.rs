//! Placeholder of the fcos claims (being written).

use crate::claim::Claim;

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    Vec::new()
}
