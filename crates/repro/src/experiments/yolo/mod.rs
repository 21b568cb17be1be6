//! yolo claims (being written).

use crate::claim::Claim;

/// The yolo claims, in report order.
pub fn claims() -> Vec<Claim> {
    Vec::new()
}
