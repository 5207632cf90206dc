//! A training session, readable top to bottom: forward, loss, backward, Adam, one readback.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use web_time::Instant;

use crate::loss::bce_with_logits;
use crate::model::{Simple3DModel, Simple3DModelConfig};
use crate::report::StepReport;
use crate::sample::{Batch, whole_volume_batch};
use crate::volume::{SyntheticConfig, synthetic_volume};

/// Everything that decides a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingConfig {
    pub volume: SyntheticConfig,
    pub learning_rate: f64,
    /// Seeds the weights; the volume has its own seed.
    pub seed: u64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            volume: SyntheticConfig::default(),
            learning_rate: 5e-3,
            seed: 42,
        }
    }
}

impl TrainingConfig {
    /// The default run on a synthetic volume of `size`³ voxels.
    pub fn with_volume_size(size: usize) -> Self {
        let default = Self::default();
        Self {
            volume: SyntheticConfig {
                size,
                ..default.volume
            },
            ..default
        }
    }
}

/// Why training stopped early.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    NonFiniteLoss { step: usize, value: f32 },
    /// The device failed while computing or reading back (e.g. a lost GPU).
    Device(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::NonFiniteLoss { step, value } => write!(
                f,
                "Training stopped at step {step}: the BCE loss is {value}. The logits overflowed; \
                 lower the learning rate or reset."
            ),
            TrainError::Device(message) => write!(f, "The device failed: {message}"),
        }
    }
}

impl std::error::Error for TrainError {}

pub struct TrainingSession {
    model: Simple3DModel,
    optimizer: ModuleOptimizer,
    batch: Batch,
    learning_rate: f64,
    steps_done: usize,
}

impl TrainingSession {
    /// Builds the data and a freshly initialised net on `device` (autodiff is added here).
    pub fn new(config: TrainingConfig, device: &Device) -> Self {
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let volume = synthetic_volume(config.volume);
        let model = Simple3DModelConfig::new()
            .with_num_classes(volume.classes)
            .init(&device);
        Self {
            model,
            optimizer: AdamConfig::new().init(),
            batch: whole_volume_batch(&volume, &device),
            learning_rate: config.learning_rate,
            steps_done: 0,
        }
    }

    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// One optimisation step. The loss is read back asynchronously, once, at the end, so the
    /// browser never blocks on the GPU.
    pub async fn step(&mut self) -> Result<StepReport, TrainError> {
        let started = Instant::now();

        let logits = self.model.forward(self.batch.image.clone());
        let loss = bce_with_logits(logits, self.batch.target.clone());
        let gradients = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self
            .optimizer
            .step(self.learning_rate, self.model.clone(), gradients);

        let value: f32 = loss
            .into_scalar_async()
            .await
            .map_err(|error| TrainError::Device(error.to_string()))?;
        self.steps_done += 1;
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: self.steps_done,
                value,
            });
        }
        Ok(StepReport {
            step: self.steps_done,
            loss: value,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}
