//! Loss functions: pure tensor maths, differentiable through burn's autodiff.
//!
//! Logits are `[batch, classes, z, y, x]`; targets are one-hot masks of the same shape.

pub mod bce;

pub use bce::bce_with_logits;
