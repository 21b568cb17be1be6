//! oad-transformer: OadTR online action detection: the encoder-decoder transformer of the official code, its per-frame mAP protocol, and streaming inference one frame at a time.
//!
//! Under construction: see `docs/oad-transformer.md` once it lands.
