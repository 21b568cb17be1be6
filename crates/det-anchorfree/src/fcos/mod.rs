//! FCOS: per-level regression ranges, centre-ness, IoU loss (work in progress).
