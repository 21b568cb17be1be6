//! One module per paper claim.

pub mod basics_bias;
