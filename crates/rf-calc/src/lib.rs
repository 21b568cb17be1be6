//! rf-calc: receptive fields of convolutional networks, exactly.
//!
//! Paper: A. Araujo, W. Norris, J. Sim, "Computing Receptive Fields of Convolutional Neural
//! Networks", Distill 2019, doi:10.23915/distill.00021; reference code and published table:
//! google-research/receptive_field. Effective receptive field: W. Luo, Y. Li, R. Urtasun,
//! R. Zemel, "Understanding the Effective Receptive Field in Deep Convolutional Neural
//! Networks", NIPS 2016, arXiv:1701.04128.
//!
//! A network is a [`Graph`] of named layers (convolution, pooling, padding, upsampling,
//! transposed convolution, add/concat merges), built in code ([`GraphBuilder`]), read from a
//! TOML/JSON [`spec`], or taken from the [`presets`] (the TF-Slim nets of the published table,
//! torchvision ResNets and MobileNet v2, the YOLO v1 trunk, FPN over ResNet-50). [`analyze`]
//! gives every node's receptive-field size, effective stride and effective padding along
//! height and width, by the two Distill methods (top-down recursion and closed form) and an
//! exact per-unit method, cross-checked against each other. `SAME` padding depends on the input
//! size: without one, effective paddings downstream of a strided `SAME` layer are unknown.
//!
//! ```
//! use rf_calc::{analyze, presets, Options};
//! let g = presets::by_name("vgg_16").unwrap();
//! let a = analyze(&g, Options::default()).unwrap();
//! let pool5 = a.node("pool5").unwrap();
//! assert_eq!((pool5.rf[0].size, pool5.rf[0].padding), (212, Some(90)));
//! ```
//!
//! The core is plain Rust. The `erf` feature adds the empirical (gradient) receptive field
//! through tch (libtorch).

pub mod analysis;
pub mod distill;
pub mod draw;
pub mod erf_stats;
pub mod error;
pub mod exact;
pub mod graph;
pub mod layer;
pub mod presets;
pub mod reference;
pub mod render;
pub mod sizes;
pub mod spec;

#[cfg(feature = "erf")]
pub mod erf;

pub use analysis::{analyze, Analysis, AxisRf, NodeReport, Options};
pub use error::{Result, RfError};
pub use exact::{Frac, UnitMap};
pub use graph::{Graph, GraphBuilder, Node, NodeId};
pub use layer::{Axis, AxisPadding, Groups, Op, Padding, Pair, PoolKind, Window};
