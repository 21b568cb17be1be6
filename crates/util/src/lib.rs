//! Plain-Rust helpers that every crate of the workspace shares, one for each job, with no
//! libtorch so that det-core's evaluation, rf-calc and xtask can use them too:
//!
//! - [`atomic`]: crash-safe file writes (temp file in the same folder, fsync, rename, fsync of
//!   the folder), used by checkpoints, reports and weight files;
//! - `fonts` (default feature `fonts`): DejaVu Sans / Mono registered for plotters' `ab_glyph`
//!   text backend;
//! - [`stats::median`];
//! - [`launch`]: N local processes with torchrun's variables, output prefixed by rank (`cargo
//!   xtask launch`, the dist crate's tests);
//! - [`pipe`]: command-line tools exit quietly when their output pipe closes
//!   (`det-eval ... | head`).

pub mod atomic;
#[cfg(feature = "fonts")]
pub mod fonts;
pub mod launch;
pub mod pipe;
pub mod stats;

pub use atomic::{write_atomic, AtomicFile};
#[cfg(feature = "fonts")]
pub use fonts::register_fonts;
pub use stats::median;
