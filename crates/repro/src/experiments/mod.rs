//! One module per paper claim.

pub mod basics_bias;
pub mod mae;
pub mod rf;
pub mod vit;
