//! The mixed loss: a cross-entropy warm-up handed over to the GDL.
//!
//! `L(t) = (1 − λ(t))·bce_weight·warm-up + λ(t)·gdl_weight·GDL`, with t in epochs.

#[cfg(engine)]
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(engine)]
use super::bce::bce_with_logits;
#[cfg(engine)]
use super::ce::cross_entropy;
use super::gdl::GdlConfig;
use super::misuse::Misuse;
#[cfg(engine)]
use super::misuse::{GdlRun, gdl_pipeline, one_output_channel};

/// How λ goes from 0 (warm-up only) to 1 (GDL only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// 0 until `warmup_epochs`, then 1: the seed's `MixedLoss`.
    #[default]
    Switch,
    Linear,
    Cosine,
    /// `exp(−5(1−x)²)` (Laine & Aila 2017).
    Sigmoid,
    /// 0 until `warmup_epochs`, then ½ for good: both terms together, balanced by the two
    /// weights, as in nnU-Net's compound CE + Dice loss (and what `gdl-lab bench` times).
    Constant,
}

impl Schedule {
    pub const ALL: [Schedule; 5] = [
        Schedule::Switch,
        Schedule::Linear,
        Schedule::Cosine,
        Schedule::Sigmoid,
        Schedule::Constant,
    ];

    /// λ at `epoch` (fractional: 2.5 is half-way through the third epoch).
    pub fn lambda(self, epoch: f64, warmup_epochs: f64, ramp_epochs: f64) -> f64 {
        if epoch < warmup_epochs {
            return 0.0;
        }
        if self == Schedule::Constant {
            return 0.5;
        }
        if self == Schedule::Switch || ramp_epochs <= 0.0 {
            return 1.0;
        }
        let x = ((epoch - warmup_epochs) / ramp_epochs).clamp(0.0, 1.0);
        match self {
            Schedule::Switch => 1.0,
            Schedule::Linear => x,
            Schedule::Cosine => 0.5 * (1.0 - (std::f64::consts::PI * x).cos()),
            Schedule::Sigmoid => (-5.0 * (1.0 - x) * (1.0 - x)).exp(),
            Schedule::Constant => 0.5,
        }
    }
}

/// The warm-up term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupLoss {
    /// The seed's choice: sigmoid BCE on each one-hot channel (while the GDL uses softmax).
    #[default]
    Bce,
    /// Categorical cross-entropy: softmax throughout.
    Ce,
}

impl WarmupLoss {
    pub fn name(self) -> &'static str {
        match self {
            WarmupLoss::Bce => "BCE",
            WarmupLoss::Ce => "CE",
        }
    }
}

/// Everything that defines the mixed loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixedLossConfig {
    pub warmup_loss: WarmupLoss,
    pub schedule: Schedule,
    pub warmup_epochs: f64,
    pub ramp_epochs: f64,
    pub bce_weight: f64,
    pub gdl_weight: f64,
    pub gdl: GdlConfig,
    /// A lab misuse injected into the GDL term (None for correct training).
    pub misuse: Option<Misuse>,
}

impl Default for MixedLossConfig {
    /// The seed's `MixedLoss`: BCE × 0.5 for 5 epochs, then GDL × 1.
    fn default() -> Self {
        Self {
            warmup_loss: WarmupLoss::Bce,
            schedule: Schedule::Switch,
            warmup_epochs: 5.0,
            ramp_epochs: 0.0,
            bce_weight: 0.5,
            gdl_weight: 1.0,
            gdl: GdlConfig::default(),
            misuse: None,
        }
    }
}

#[cfg(engine)]
/// The mixed loss's value and its parts, still on the device.
#[derive(Clone, Debug)]
pub struct MixedParts {
    pub total: Tensor<1>,
    pub warmup: Tensor<1>,
    pub gdl: GdlRun,
    pub lambda: f64,
}

impl MixedLossConfig {
    pub fn lambda(&self, epoch: f64) -> f64 {
        self.schedule
            .lambda(epoch, self.warmup_epochs, self.ramp_epochs)
    }

    #[cfg(engine)]
    /// Every component (so the charts can show them all) and their λ-weighted sum at `epoch`.
    pub fn forward(&self, logits: Tensor<5>, target: Tensor<5>, epoch: f64) -> MixedParts {
        let lambda = self.lambda(epoch);
        // A one-channel net's warm-up sees its one channel too (CE over it is 0).
        let (warmup_logits, warmup_target) = if self.misuse == Some(Misuse::OneChannel) {
            one_output_channel(logits.clone(), target.clone(), self.gdl.sigmoid)
        } else {
            (logits.clone(), target.clone())
        };
        let warmup = match self.warmup_loss {
            WarmupLoss::Bce => bce_with_logits(warmup_logits, warmup_target),
            WarmupLoss::Ce => cross_entropy(warmup_logits, warmup_target),
        };
        let gdl = gdl_pipeline(logits, target, &self.gdl, self.misuse);
        let total = warmup.clone() * ((1.0 - lambda) * self.bce_weight)
            + gdl.value.clone() * (lambda * self.gdl_weight);
        MixedParts {
            total,
            warmup,
            gdl,
            lambda,
        }
    }
}
