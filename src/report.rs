//! What one training step tells the page, the CLI and the tests.

use serde::Serialize;

/// The outcome of one training step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    /// Steps done so far, this one included (1 after the first step).
    pub step: usize,
    /// The loss of the batch before this step's update.
    pub loss: f32,
    /// Wall-clock time of the step, readback included, in milliseconds.
    pub millis: f64,
}
