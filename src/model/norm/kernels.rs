//! The kernels. Statistics and sums in two steps: a workgroup per chunk of a channel plane
//! (so that a large plane keeps the whole GPU busy, not one workgroup per channel), then a
//! workgroup per plane adding its chunks; each sum is a tree in workgroup memory (WebGPU has
//! no portable subgroup operations). Apply and input gradient: one thread per voxel.
//!
//! Every index read or written is inside its tensor: a chunk's threads read only its voxels
//! (those past its end read its first and count nothing), the plane kernels run exactly one
//! workgroup per plane, the voxel kernels return past the last voxel. So they launch unchecked.

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

/// How many voxels of a plane a chunk holds: `cube_size` threads × `per_thread` voxels.
#[cube]
fn chunk_voxels(
    voxels: usize,
    chunk: usize,
    #[comptime] cube_size: usize,
    #[comptime] per_thread: usize,
) -> usize {
    let size = comptime!(cube_size * per_thread);
    select(voxels - chunk * size < size, voxels - chunk * size, size)
}

/// Each chunk's mean and Σ(x − mean)² (workgroup x: the chunk, y: the plane), into `partial`
/// `[planes, chunks, 2]`. A thread keeps its `per_thread` values in registers for the centred
/// second pass, and loads them as independent reads (a GPU overlaps them).
#[cube(launch_unchecked)]
pub(super) fn instance_norm_chunk_stats_kernel<F: Float>(
    x: &Tensor<F>,
    partial: &mut Tensor<F>,
    voxels: usize,
    #[comptime] cube_size: usize,
    #[comptime] per_thread: usize,
    #[define(F)] _dtype: ElemType,
) {
    let chunk = CUBE_POS_X as usize;
    let plane = CUBE_POS_Y as usize;
    let unit = UNIT_POS_X as usize;
    let count = chunk_voxels(voxels, chunk, cube_size, per_thread);
    let base = plane * voxels + chunk * comptime!(cube_size * per_thread);

    let mut values = Array::<F>::new(per_thread);
    let mut sum = F::new(0.0);
    #[unroll]
    for j in 0..per_thread {
        let i = j * cube_size + unit;
        let inside = i < count;
        let value = select(inside, x[base + select(inside, i, 0)], F::new(0.0));
        values[j] = value;
        sum += value;
    }
    let mean = workgroup_sum::<F>(sum, cube_size) / F::cast_from(count);
    let mut squares = F::new(0.0);
    #[unroll]
    for j in 0..per_thread {
        let centred = values[j] - mean;
        squares += select(j * cube_size + unit < count, centred * centred, F::new(0.0));
    }
    let squares = workgroup_sum::<F>(squares, cube_size);
    if unit == 0 {
        let at = (plane * CUBE_COUNT_X as usize + chunk) * 2;
        partial[at] = mean;
        partial[at + 1] = squares;
    }
}

/// Each plane's mean and 1/√(var + ε) from its chunks' (mean, Σ(x − mean)²), one workgroup per
/// plane: the mean is the chunks' means weighted by their sizes, and Σ(x − μ)² over the plane is
/// Σ over chunks of their own sum plus size·(chunk mean − μ)² (Chan et al.), so no sum of
/// squares is ever taken around a distant origin.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_combine_stats_kernel<F: Float>(
    partial: &Tensor<F>,
    stats: &mut Tensor<F>,
    voxels: usize,
    #[comptime] cube_size: usize,
    #[comptime] per_thread: usize,
    #[define(F)] _dtype: ElemType,
) {
    let plane = CUBE_POS_X as usize;
    let unit = UNIT_POS_X as usize;
    let chunks = partial.shape(1);
    let base = plane * chunks * 2;

    let mut weighted = F::new(0.0);
    let mut k = unit;
    while k < chunks {
        let count = F::cast_from(chunk_voxels(voxels, k, cube_size, per_thread));
        weighted += count * partial[base + 2 * k];
        k += cube_size;
    }
    let mean = workgroup_sum::<F>(weighted, cube_size) / F::cast_from(voxels);

    let mut squares = F::new(0.0);
    let mut k = unit;
    while k < chunks {
        let count = F::cast_from(chunk_voxels(voxels, k, cube_size, per_thread));
        let offset = partial[base + 2 * k] - mean;
        squares += partial[base + 2 * k + 1] + count * offset * offset;
        k += cube_size;
    }
    let variance = workgroup_sum::<F>(squares, cube_size) / F::cast_from(voxels);
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

/// Each chunk's Σg and Σg·x̂, where g is the output gradient through the activation (workgroup
/// x: the chunk, y: the plane), into `partial` `[planes, chunks, 2]`.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_chunk_grad_sums_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    grad: &Tensor<F>,
    partial: &mut Tensor<F>,
    voxels: usize,
    #[comptime] cube_size: usize,
    #[comptime] per_thread: usize,
    #[define(F)] _dtype: ElemType,
) {
    let chunk = CUBE_POS_X as usize;
    let plane = CUBE_POS_Y as usize;
    let unit = UNIT_POS_X as usize;
    let channel = plane % gamma.len();
    let count = chunk_voxels(voxels, chunk, cube_size, per_thread);
    let base = plane * voxels + chunk * comptime!(cube_size * per_thread);

    let mut sum_g = F::new(0.0);
    let mut sum_g_x_hat = F::new(0.0);
    #[unroll]
    for j in 0..per_thread {
        let i = j * cube_size + unit;
        let inside = i < count;
        let index = base + select(inside, i, 0);
        let voxel = normalised::<F>(x, stats, gamma, beta, index, plane, channel);
        let g = select(
            inside,
            grad[index] * activation_slope::<F>(voxel.pre),
            F::new(0.0),
        );
        sum_g += g;
        sum_g_x_hat += g * voxel.x_hat;
    }
    let sum_g = workgroup_sum::<F>(sum_g, cube_size);
    let sum_g_x_hat = workgroup_sum::<F>(sum_g_x_hat, cube_size);
    if unit == 0 {
        let at = (plane * CUBE_COUNT_X as usize + chunk) * 2;
        partial[at] = sum_g;
        partial[at + 1] = sum_g_x_hat;
    }
}

/// Each plane's Σg and Σg·x̂: its chunks' sums added, one workgroup per plane.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_combine_sums_kernel<F: Float>(
    partial: &Tensor<F>,
    sums: &mut Tensor<F>,
    #[comptime] cube_size: usize,
    #[define(F)] _dtype: ElemType,
) {
    let plane = CUBE_POS_X as usize;
    let unit = UNIT_POS_X as usize;
    let chunks = partial.shape(1);
    let base = plane * chunks * 2;
    let mut first = F::new(0.0);
    let mut second = F::new(0.0);
    let mut k = unit;
    while k < chunks {
        first += partial[base + 2 * k];
        second += partial[base + 2 * k + 1];
        k += cube_size;
    }
    let first = workgroup_sum::<F>(first, cube_size);
    let second = workgroup_sum::<F>(second, cube_size);
    if unit == 0 {
        sums[2 * plane] = first;
        sums[2 * plane + 1] = second;
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
