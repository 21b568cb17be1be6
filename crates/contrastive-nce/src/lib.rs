//! contrastive-nce: NCE, InfoNCE, NT-Xent, MoCo, CPC and the variational mutual-information bounds (NWJ, TUBA, DV/MINE, JS, interpolated, SMILE) with the MI benchmark.
//!
//! Under construction: see `docs/contrastive-nce.md` once it lands.
