//! The four kernels. Statistics and sums: one workgroup per channel plane, each thread striding
//! over the plane, then a tree reduction in workgroup memory (WebGPU has no portable subgroup
//! operations). Apply and input gradient: one thread per voxel.
//!
//! Every index read or written is inside its tensor: the plane kernels run exactly one workgroup
//! per plane, the voxel kernels return past the last voxel. So they launch unchecked.

use cubecl::prelude::*;

// Constants rather than launch arguments: comptime arguments must hash, and f32 does not.
const EPSILON: f32 = super::EPSILON as f32;
const NEGATIVE_SLOPE: f32 = super::NEGATIVE_SLOPE as f32;

/// The sum of every thread's `value` in the workgroup, in all its threads. `cube_size` is the
/// workgroup's size, a power of two.
#[cube]
fn workgroup_sum<F: Float>(value: F, #[comptime] cube_size: usize) -> F {
    let mut shared = Shared::<[F]>::new_slice(cube_size);
    let unit = UNIT_POS_X as usize;
    shared[unit] = value;
    sync_cube();
    let mut half = CUBE_DIM_X as usize / 2;
    while half > 0 {
        if unit < half {
            let other = shared[unit + half];
            shared[unit] += other;
        }
        sync_cube();
        half /= 2;
    }
    shared[0]
}

/// The voxel this thread of a voxel kernel handles (x and y number the workgroups, so that
/// more than 65 535 of them fit in one dispatch).
#[cube]
fn voxel_index() -> usize {
    ((CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X) as usize
}

/// x̂ = (x − μ)·r and p = γ·x̂ + β of one voxel.
#[derive(CubeType)]
struct Normalised<F: Float> {
    x_hat: F,
    pre: F,
}

/// [`Normalised`] of voxel `index`, whose plane is `plane`, channel `channel`.
#[cube]
fn normalised<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    index: usize,
    plane: usize,
    channel: usize,
) -> Normalised<F> {
    let x_hat = (x[index] - stats[2 * plane]) * stats[2 * plane + 1];
    Normalised::<F> {
        x_hat,
        pre: x_hat * gamma[channel] + beta[channel],
    }
}

/// LeakyReLU′(p).
#[cube]
fn activation_slope<F: Float>(pre: F) -> F {
    select(pre > F::new(0.0), F::new(1.0), F::new(NEGATIVE_SLOPE))
}

/// Each plane's mean and 1/√(var + ε): two passes over the plane (the centred second pass keeps
/// the variance accurate when the mean is large against the spread).
#[cube(launch_unchecked)]
pub(super) fn instance_norm_stats_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &mut Tensor<F>,
    voxels: usize,
    #[comptime] cube_size: usize,
    #[define(F)] _dtype: ElemType,
) {
    let plane = CUBE_POS_X as usize;
    let base = plane * voxels;
    let unit = UNIT_POS_X as usize;
    let count = F::cast_from(voxels);

    let mut sum = F::new(0.0);
    let mut i = unit;
    while i < voxels {
        sum += x[base + i];
        i += cube_size;
    }
    let mean = workgroup_sum::<F>(sum, cube_size) / count;

    let mut squares = F::new(0.0);
    let mut i = unit;
    while i < voxels {
        let centred = x[base + i] - mean;
        squares += centred * centred;
        i += cube_size;
    }
    let variance = workgroup_sum::<F>(squares, cube_size) / count;
    if unit == 0 {
        stats[2 * plane] = mean;
        stats[2 * plane + 1] = F::new(1.0) / F::sqrt(variance + F::new(EPSILON));
    }
}

/// y = LeakyReLU(γ·x̂ + β), one voxel per thread.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_apply_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    output: &mut Tensor<F>,
    voxels: usize,
    #[define(F)] _dtype: ElemType,
) {
    let index = voxel_index();
    if index >= output.len() {
        terminate!();
    }
    let plane = index / voxels;
    let channel = plane % gamma.len();
    let pre = normalised::<F>(x, stats, gamma, beta, index, plane, channel).pre;
    output[index] = select(pre > F::new(0.0), pre, pre * F::new(NEGATIVE_SLOPE));
}

/// Each plane's Σg and Σg·x̂, where g is the output gradient through the activation.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_grad_sums_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    grad: &Tensor<F>,
    sums: &mut Tensor<F>,
    voxels: usize,
    #[comptime] cube_size: usize,
    #[define(F)] _dtype: ElemType,
) {
    let plane = CUBE_POS_X as usize;
    let channel = plane % gamma.len();
    let base = plane * voxels;
    let unit = UNIT_POS_X as usize;

    let mut sum_g = F::new(0.0);
    let mut sum_g_x_hat = F::new(0.0);
    let mut i = unit;
    while i < voxels {
        let index = base + i;
        let voxel = normalised::<F>(x, stats, gamma, beta, index, plane, channel);
        let g = grad[index] * activation_slope::<F>(voxel.pre);
        sum_g += g;
        sum_g_x_hat += g * voxel.x_hat;
        i += cube_size;
    }
    let sum_g = workgroup_sum::<F>(sum_g, cube_size);
    let sum_g_x_hat = workgroup_sum::<F>(sum_g_x_hat, cube_size);
    if unit == 0 {
        sums[2 * plane] = sum_g;
        sums[2 * plane + 1] = sum_g_x_hat;
    }
}

/// ∂L/∂x = r·γ·(g − Σg/N − x̂·Σ(g·x̂)/N), one voxel per thread.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_input_grad_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    grad: &Tensor<F>,
    sums: &Tensor<F>,
    input_grad: &mut Tensor<F>,
    voxels: usize,
    #[define(F)] _dtype: ElemType,
) {
    let index = voxel_index();
    if index >= input_grad.len() {
        terminate!();
    }
    let plane = index / voxels;
    let channel = plane % gamma.len();
    let voxel = normalised::<F>(x, stats, gamma, beta, index, plane, channel);
    let g = grad[index] * activation_slope::<F>(voxel.pre);
    let count = F::cast_from(voxels);
    let mean_g = sums[2 * plane] / count;
    let mean_g_x_hat = sums[2 * plane + 1] / count;
    input_grad[index] =
        stats[2 * plane + 1] * gamma[channel] * (g - mean_g - voxel.x_hat * mean_g_x_hat);
}
