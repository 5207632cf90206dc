//! Loss functions: pure tensor maths, differentiable through burn's autodiff.
//!
//! Logits are `[batch, classes, z, y, x]`; targets are one-hot masks of the same shape. The GDL
//! formula lives in [`gdl`].

pub mod bce;
pub mod ce;
pub mod dice;
pub mod gdl;
pub mod misuse;
pub mod mixed;
pub mod monitor;

pub use bce::bce_with_logits;
pub use ce::cross_entropy;
pub use dice::{seed_soft_dice, soft_dice};
pub use gdl::{GdlConfig, GdlParts, WeightType, generalized_dice};
pub use misuse::{GdlRun, Misuse, gdl_pipeline};
pub use mixed::{MixedLossConfig, MixedParts, Schedule, WarmupLoss};
pub use monitor::GdlInputStats;
