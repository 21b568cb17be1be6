//! contrastive-nce: noise-contrastive estimation, InfoNCE, NT-Xent (SimCLR), MoCo and the
//! variational bounds on mutual information, with the correlated-Gaussian MI benchmark.
//!
//! Papers: Gutmann & Hyvarinen 2010 (NCE); van den Oord, Li & Vinyals 2018, arXiv 1807.03748
//! (CPC / InfoNCE); Poole, Ozair, van den Oord, Alemi & Tucker 2019, arXiv 1905.06922 (the
//! bounds and the benchmark; reference code `google-research/vbmi/vbmi_demo.ipynb`); Song &
//! Ermon 2020, arXiv 1910.06222 (SMILE; `ermongroup/smile-mi-estimator/estimators.py`); Chen et
//! al. 2020, arXiv 2002.05709 (SimCLR); He et al. 2020, arXiv 1911.05722 (MoCo).
//!
//! - [`mi`]: the MI estimators on a score matrix `scores[i, j] = f(x_j, y_i)`;
//! - [`critic`]: separable, concat and bilinear critics and the learned baseline;
//! - [`gaussian`]: the benchmark's correlated Gaussian and its true log density ratio;
//! - [`benchmark`]: the benchmark's training loop, bias and variance per MI level.
//!
//! See `docs/contrastive-nce.md`.

pub mod benchmark;
pub mod cpc;
pub mod critic;
mod error;
pub mod gaussian;
pub mod losses;
pub mod mi;
pub mod moco;

pub use benchmark::{BenchmarkConfig, LevelStats, Trace};
pub use critic::{Baseline, Critic, CriticConfig, CriticKind, Mlp};
pub use error::{NceError, Result};
pub use mi::{Estimator, Extras, MovingAverage};
