//! mae (work in progress).
