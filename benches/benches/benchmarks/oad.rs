//! oad-transformer benches (filled in as the crate lands).

use criterion::Criterion;

/// Every oad-transformer bench group.
pub fn all(_c: &mut Criterion) {}
