//! Loss functions: pure tensor maths, differentiable through burn's autodiff.
//!
//! Logits are `[batch, classes, z, y, x]`; targets are one-hot masks of the same shape. The GDL
//! formula lives in [`gdl`]. The settings and the monitor's verdicts need no burn (the page's
//! own wasm has them); the tensor maths is `cfg(engine)`.

#[cfg(engine)]
pub mod bce;
#[cfg(engine)]
pub mod ce;
#[cfg(engine)]
pub mod dice;
pub mod gdl;
#[cfg(engine)]
pub mod half;
#[cfg(engine)]
pub mod maxima;
pub mod misuse;
pub mod mixed;
pub mod monitor;

#[cfg(engine)]
pub use bce::bce_with_logits;
#[cfg(engine)]
pub use ce::cross_entropy;
#[cfg(engine)]
pub use dice::{seed_soft_dice, soft_dice};
pub use gdl::{GdlConfig, WeightType};
#[cfg(engine)]
pub use gdl::{GdlParts, generalized_dice};
pub use misuse::Misuse;
#[cfg(engine)]
pub use misuse::{GdlRun, gdl_pipeline};
#[cfg(engine)]
pub use mixed::MixedParts;
pub use mixed::{MixedLossConfig, Schedule, WarmupLoss};
pub use monitor::GdlInputStats;
