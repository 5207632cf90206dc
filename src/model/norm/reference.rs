//! The operation in burn's tensor operations, for backends without the kernels (flex): the
//! formulas of `mod.rs`, one operation per term.

use burn::backend::Backend;
use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Shape, Slice};

use super::{EPSILON, NEGATIVE_SLOPE};

/// `x` `[B, C, …]` as `[B, C, N]`, and N.
fn planes<B: Backend>(x: FloatTensor<B>) -> (FloatTensor<B>, usize) {
    let shape = x.shape();
    let voxels = shape.num_elements() / (shape[0] * shape[1]);
    (
        B::float_reshape(x, Shape::new([shape[0], shape[1], voxels])),
        voxels,
    )
}

/// Item `index` (0 or 1) of each plane's pair, as `[B, C, 1]`.
fn pair_item<B: Backend>(pairs: FloatTensor<B>, index: usize) -> FloatTensor<B> {
    B::float_slice(
        pairs,
        &[
            Slice::from(..),
            Slice::from(..),
            Slice::from(index..index + 1),
        ],
    )
}

/// γ or β `[C]` as `[1, C, 1]`, to broadcast over planes.
fn per_channel<B: Backend>(values: FloatTensor<B>) -> FloatTensor<B> {
    let channels = values.shape()[0];
    B::float_reshape(values, Shape::new([1, channels, 1]))
}

pub fn stats<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let (x, _) = planes::<B>(x);
    let mean = B::float_mean_dim(x.clone(), 2);
    let centred = B::float_sub(x, mean.clone());
    let variance = B::float_mean_dim(B::float_mul(centred.clone(), centred), 2);
    let inverse_std = B::float_recip(B::float_sqrt(B::float_add_scalar(variance, EPSILON.into())));
    B::float_cat(vec![mean, inverse_std], 2)
}

/// x̂ and p = γ·x̂ + β, as `[B, C, N]`.
fn normalised<B: Backend>(
    x: FloatTensor<B>,
    stats: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (x, _) = planes::<B>(x);
    let centred = B::float_sub(x, pair_item::<B>(stats.clone(), 0));
    let x_hat = B::float_mul(centred, pair_item::<B>(stats, 1));
    let pre = B::float_add(
        B::float_mul(x_hat.clone(), per_channel::<B>(gamma)),
        per_channel::<B>(beta),
    );
    (x_hat, pre)
}

pub fn apply<B: Backend>(
    x: FloatTensor<B>,
    stats: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
) -> FloatTensor<B> {
    let shape = x.shape();
    let (_, pre) = normalised::<B>(x, stats, gamma, beta);
    B::float_reshape(B::leaky_relu(pre, NEGATIVE_SLOPE.into()), shape)
}

/// g = ∂L/∂y · LeakyReLU′(p): the slope is |leaky_relu(sign p)| (1, the negative slope, or 0 at
/// p = 0), which needs no boolean tensors.
fn activation_grad<B: Backend>(grad: FloatTensor<B>, pre: FloatTensor<B>) -> FloatTensor<B> {
    let (grad, _) = planes::<B>(grad);
    let slope = B::float_abs(B::leaky_relu(B::float_sign(pre), NEGATIVE_SLOPE.into()));
    B::float_mul(grad, slope)
}

pub fn grad_sums<B: Backend>(
    x: FloatTensor<B>,
    stats: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let (x_hat, pre) = normalised::<B>(x, stats, gamma, beta);
    let g = activation_grad::<B>(grad, pre);
    let sum_g = B::float_sum_dim(g.clone(), 2);
    let sum_g_x_hat = B::float_sum_dim(B::float_mul(g, x_hat), 2);
    B::float_cat(vec![sum_g, sum_g_x_hat], 2)
}

pub fn input_grad<B: Backend>(
    x: FloatTensor<B>,
    stats: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    grad: FloatTensor<B>,
    sums: FloatTensor<B>,
) -> FloatTensor<B> {
    let shape = x.shape();
    let voxels = shape.num_elements() / (shape[0] * shape[1]);
    let inverse_std = pair_item::<B>(stats.clone(), 1);
    let (x_hat, pre) = normalised::<B>(x, stats, gamma.clone(), beta);
    let g = activation_grad::<B>(grad, pre);
    let scale = 1.0 / voxels as f64;
    let mean_g = B::float_mul_scalar(pair_item::<B>(sums.clone(), 0), scale.into());
    let mean_g_x_hat = B::float_mul_scalar(pair_item::<B>(sums, 1), scale.into());
    let inner = B::float_sub(B::float_sub(g, mean_g), B::float_mul(x_hat, mean_g_x_hat));
    let factor = B::float_mul(inverse_std, per_channel::<B>(gamma));
    B::float_reshape(B::float_mul(inner, factor), shape)
}
