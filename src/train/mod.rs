//! Training: a session owns the net, the optimiser and the data, and advances one step at a
//! time so that the page can draw between steps.

pub mod session;

pub use session::{TrainError, TrainingConfig, TrainingSession};
