//! rf-calc (work in progress).
