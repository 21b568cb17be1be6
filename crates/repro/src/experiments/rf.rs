//! Receptive-field claims (rf-calc): the published table and the effective receptive field.

use crate::claim::Claim;

/// The claims of this module, in report order.
pub fn claims() -> Vec<Claim> {
    Vec::new()
}
