//! Why a training session stopped, as a sentence for the person training.

/// Why training stopped early.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    /// The settings cannot work.
    Config(String),
    /// A loss component or the gradient became NaN or infinite.
    NonFinite {
        step: usize,
        component: &'static str,
        value: f32,
    },
    /// The device failed while computing or reading back (e.g. a lost GPU).
    Device(String),
    /// The person cancelled a long operation (a prediction).
    Cancelled,
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Config(message) => write!(f, "{message}"),
            TrainError::NonFinite {
                step,
                component,
                value,
            } => write!(
                f,
                "Training stopped at step {step}: the {component} is {value}. The weights from \
                 before this step are kept; lower the learning rate, turn on clipping, or reset."
            ),
            TrainError::Device(message) => write!(f, "The device failed: {message}"),
            TrainError::Cancelled => write!(f, "Cancelled."),
        }
    }
}

impl std::error::Error for TrainError {}
