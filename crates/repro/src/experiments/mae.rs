//! Masked-autoencoder claims (mae).

use crate::claim::Claim;

/// The claims of this module, in report order.
pub fn claims() -> Vec<Claim> {
    Vec::new()
}
