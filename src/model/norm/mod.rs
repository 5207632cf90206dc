//! InstanceNorm + LeakyReLU (the U-Net's blocks) as one operation with its own backward pass:
//! three kernel launches forward (per-channel statistics in two steps, then normalise, scale,
//! shift, activate) and three backward (per-channel sums in two steps, then the input gradient),
//! written in CubeCL so that the browser and native Vulkan run the same code.
//!
//! Why by hand: burn composes instance norm from ~10 tensor operations and LeakyReLU from 3, and
//! its autodiff records each with its own backward pass: about 25 kernel launches and as many
//! passes over the activation per block and step, where the arithmetic needs four passes. Once
//! the convolutions were fast, a U-Net 32³ step on lavapipe made 828 launches, 32 of them
//! convolutions (BENCHMARKS.md, "GPU"). On flex the same operation is written with burn's tensor operations
//! ([`reference`]), so the autodiff wiring and the gradient formula are checked on the CPU.
//!
//! The gradient, per channel plane of `N` voxels, with `x̂ = (x − μ)·r` (`r = 1/√(σ² + ε)`),
//! `p = γ·x̂ + β`, `y = p` where `p > 0` else `s·p`, and `g = ∂L/∂y · (1 or s)`:
//! `∂L/∂β = Σg`, `∂L/∂γ = Σ g·x̂`, `∂L/∂x = r·γ·(g − Σg/N − x̂·Σ(g·x̂)/N)`.

mod autodiff;
mod cube;
mod kernels;
mod reference;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::{InstanceNorm, LeakyRelu};
use burn::prelude::*;
use burn::tensor::Shape;

/// The ε of burn's `InstanceNormConfig` default, which the U-Net uses.
pub const EPSILON: f64 = 1e-5;
/// The negative slope of burn's `LeakyReluConfig` default, which the U-Net uses.
pub const NEGATIVE_SLOPE: f64 = 0.01;

/// InstanceNorm (affine, ε = [`EPSILON`]) followed by LeakyReLU ([`NEGATIVE_SLOPE`]) on
/// `[B, C, D, H, W]`, and the pieces of its backward pass, on every backend gdl-lab trains on.
/// Statistics and sums are `[B, C, 2]`: (mean, 1/√(var + ε)) and (Σg, Σg·x̂) per plane.
#[backend_extension(Cube, Flex, Fusion, Autodiff)]
pub trait NormKernels: Backend {
    /// The whole operation; differentiable under autodiff (`autodiff.rs`).
    #[fusion(dtype = x, shape = x)]
    fn instance_norm_leaky_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Each plane's mean and 1/√(var + ε) (the biased variance, as PyTorch and burn).
    #[fusion(dtype = x, shape = pairs_per_plane(x))]
    fn instance_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Normalise with `stats`, scale, shift, activate.
    #[fusion(dtype = x, shape = x)]
    fn instance_norm_apply(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Each plane's Σg and Σg·x̂, given the output gradient.
    #[fusion(dtype = x, shape = pairs_per_plane(x))]
    fn instance_norm_grad_sums(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The input gradient, given the output gradient and its sums.
    #[fusion(dtype = x, shape = x)]
    fn instance_norm_input_grad(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        sums: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `[B, C, 2]` for an `x` of `[B, C, …]`.
pub fn pairs_per_plane(x: &Shape) -> Shape {
    Shape::new([x[0], x[1], 2])
}

/// On the CPU, burn's tensor operations.
impl NormKernels for Flex {
    fn instance_norm_leaky_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let stats = reference::stats::<Self>(x.clone());
        reference::apply::<Self>(x, stats, gamma, beta)
    }

    fn instance_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::stats::<Self>(x)
    }

    fn instance_norm_apply(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::apply::<Self>(x, stats, gamma, beta)
    }

    fn instance_norm_grad_sums(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::grad_sums::<Self>(x, stats, gamma, beta, grad)
    }

    fn instance_norm_input_grad(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        sums: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::input_grad::<Self>(x, stats, gamma, beta, grad, sums)
    }
}

/// Whether [`instance_norm_leaky_relu`] computes exactly what `activation(norm(x))` does:
/// the defaults the U-Net uses (affine, ε = 1e-5, slope 0.01).
pub fn fusable(norm: &InstanceNorm, activation: &LeakyRelu) -> bool {
    norm.affine
        && norm.gamma.is_some()
        && norm.beta.is_some()
        && norm.epsilon == EPSILON
        && activation.negative_slope == NEGATIVE_SLOPE
}

/// `activation.forward(norm.forward(x))` as one operation (see [`fusable`] for when that holds).
pub fn instance_norm_leaky_relu(
    norm: &InstanceNorm,
    activation: &LeakyRelu,
    x: Tensor<5>,
) -> Tensor<5> {
    assert!(
        fusable(norm, activation),
        "instance_norm_leaky_relu: only the defaults are fused"
    );
    let [gamma, beta] = [&norm.gamma, &norm.beta].map(|param| {
        param
            .as_ref()
            .expect("fusable checks both are present")
            .val()
            .into_dispatch()
    });
    Tensor::from_dispatch(Dispatch::instance_norm_leaky_relu(
        x.into_dispatch(),
        gamma,
        beta,
    ))
}
