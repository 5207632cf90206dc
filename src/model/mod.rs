//! Segmentation nets. Each takes `[batch, 1, z, y, x]` intensities and returns
//! `[batch, classes, z, y, x]` logits.

pub mod simple;

pub use simple::{Simple3DModel, Simple3DModelConfig};
