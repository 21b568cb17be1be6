//! anchorfree criterion groups (being written).

use criterion::Criterion;

/// Every anchorfree group.
pub fn all(_c: &mut Criterion) {}
