//! Training: a session owns the net, the optimiser and the data, and advances one step at a
//! time so that the page can draw between steps. Its settings (`config.rs`) need no burn.

#[cfg(engine)]
pub mod adam;
#[cfg(engine)]
pub mod buffers;
#[cfg(engine)]
pub mod clip;
pub mod config;
#[cfg(engine)]
pub mod error;
pub mod memory;
#[cfg(engine)]
pub mod session;

#[cfg(engine)]
pub use buffers::check_largest_buffer;
#[cfg(engine)]
pub use clip::{ClipNorms, clip_global_norm};
pub use config::TrainingConfig;
#[cfg(engine)]
pub use error::TrainError;
#[cfg(engine)]
pub use session::TrainingSession;
