//! losses-smooth-metrics: Differentiable surrogates of accuracy, F1, IoU and AP (soft metrics, sigmoidF1, Lovasz, Smooth-AP) beside their hard counterparts, with limits and gradients tested.
//!
//! Under construction: see `docs/losses-smooth-metrics.md` once it lands.
