//! Training: a session owns the net, the optimiser and the data, and advances one step at a
//! time so that the page can draw between steps.

pub mod buffers;
pub mod clip;
pub mod session;

pub use buffers::check_largest_buffer;
pub use clip::{ClipNorms, clip_global_norm};
pub use session::{TrainError, TrainingConfig, TrainingSession};
