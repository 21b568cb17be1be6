//! det-core (work in progress).
