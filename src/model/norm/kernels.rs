//! The kernels. Statistics and sums in two steps: a workgroup per chunk of a channel plane
//! (so that a large plane keeps the whole GPU busy, not one workgroup per channel), summed in
//! workgroup memory (WebGPU has no portable subgroup operations), then a thread per plane
//! adding its chunks. Apply and input gradient: one thread per voxel.
//!
//! Every index read or written is inside its tensor: a chunk's threads read only its voxels
//! (those past its end read its first and count nothing), the plane and voxel kernels return
//! past the last plane or voxel. So they launch unchecked.

use cubecl::prelude::*;

// Constants rather than launch arguments: comptime arguments must hash, and f32 does not.
const EPSILON: f32 = super::EPSILON as f32;
const NEGATIVE_SLOPE: f32 = super::NEGATIVE_SLOPE as f32;

/// How many threads add their neighbours' values in [`workgroup_sums`]'s first level, and how
/// many each adds: the square root of the workgroup size (a power of 4).
fn fan(cube_size: usize) -> usize {
    1 << (cube_size.trailing_zeros() / 2)
}

/// The sums of every thread's `a` and `b` over the workgroup (of `cube_size` threads, a power of
/// 4), in all its threads, with two barriers: √n threads add √n values each, then every thread
/// adds those partial sums. (A binary tree took log₂ n barriers a sum, and SwiftShader, the
/// browser's WebGPU without a GPU, switches every thread at each one: the fused norm ran slower
/// there than burn's unfused operations.)
#[cube]
fn workgroup_sums<F: Float>(a: F, b: F, #[comptime] cube_size: usize) -> (F, F) {
    let mut values = Shared::<[F]>::new_slice(comptime!(2 * cube_size));
    let fan = comptime!(fan(cube_size));
    let mut partial = Shared::<[F]>::new_slice(comptime!(2 * fan));
    let unit = UNIT_POS_X as usize;
    values[unit] = a;
    values[cube_size + unit] = b;
    sync_cube();
    if unit < fan {
        let mut first = F::new(0.0);
        let mut second = F::new(0.0);
        #[unroll]
        for j in 0..fan {
            first += values[unit * fan + j];
            second += values[cube_size + unit * fan + j];
        }
        partial[unit] = first;
        partial[fan + unit] = second;
    }
    sync_cube();
    let mut first = F::new(0.0);
    let mut second = F::new(0.0);
    #[unroll]
    for j in 0..fan {
        first += partial[j];
        second += partial[fan + j];
    }
    (first, second)
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
/// `[planes, chunks, 2]`; with `whole_plane` (a plane of one chunk) the plane's statistics
/// themselves (mean, 1/√(var + ε)), with no combining launch after it. In one pass and one
/// workgroup sum: the sums are of x − K, K the
/// chunk's first voxel, which lies within a few standard deviations of the chunk's mean, so
/// Σ(x − K)² − (Σ(x − K))²/n loses no more than a few bits (around 0 it would lose them all
/// when the mean is large against the spread). Each thread's loads are independent (a GPU
/// overlaps them).
#[cube(launch_unchecked)]
pub(super) fn instance_norm_chunk_stats_kernel<F: Float>(
    x: &Tensor<F>,
    partial: &mut Tensor<F>,
    voxels: usize,
    #[comptime] cube_size: usize,
    #[comptime] per_thread: usize,
    #[comptime] whole_plane: bool,
    #[define(F)] _dtype: ElemType,
) {
    let chunk = CUBE_POS_X as usize;
    let plane = CUBE_POS_Y as usize;
    let unit = UNIT_POS_X as usize;
    let count = chunk_voxels(voxels, chunk, cube_size, per_thread);
    let base = plane * voxels + chunk * comptime!(cube_size * per_thread);
    let shift = x[base];

    let mut sum = F::new(0.0);
    let mut squares = F::new(0.0);
    #[unroll]
    for j in 0..per_thread {
        let i = j * cube_size + unit;
        let inside = i < count;
        let value = select(inside, x[base + select(inside, i, 0)] - shift, F::new(0.0));
        sum += value;
        squares += value * value;
    }
    let (sum, squares) = workgroup_sums::<F>(sum, squares, cube_size);
    if unit == 0 {
        let n = F::cast_from(count);
        let at = (plane * CUBE_COUNT_X as usize + chunk) * 2;
        partial[at] = shift + sum / n;
        let spread = F::max(squares - sum * sum / n, F::new(0.0));
        if whole_plane {
            partial[at + 1] = F::new(1.0) / F::sqrt(spread / n + F::new(EPSILON));
        } else {
            partial[at + 1] = spread;
        }
    }
}

/// Each plane's mean and 1/√(var + ε) from its chunks' (mean, Σ(x − mean)²), one thread per
/// plane (a plane has at most a few hundred chunks; a workgroup reduction here cost more in
/// barriers than it saved, 5 ms a launch on SwiftShader): the mean is the chunks' means
/// weighted by their sizes, and Σ(x − μ)² over the plane is Σ over chunks of their own sum plus
/// size·(chunk mean − μ)² (Chan et al.), so no sum of squares is taken around a distant origin.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_combine_stats_kernel<F: Float>(
    partial: &Tensor<F>,
    stats: &mut Tensor<F>,
    voxels: usize,
    #[comptime] cube_size: usize,
    #[comptime] per_thread: usize,
    #[define(F)] _dtype: ElemType,
) {
    let plane = ABSOLUTE_POS;
    let chunks = partial.shape(1);
    if plane >= partial.shape(0) {
        terminate!();
    }
    let base = plane * chunks * 2;
    let mut weighted = F::new(0.0);
    for k in 0..chunks {
        let count = F::cast_from(chunk_voxels(voxels, k, cube_size, per_thread));
        weighted += count * partial[base + 2 * k];
    }
    let mean = weighted / F::cast_from(voxels);
    let mut squares = F::new(0.0);
    for k in 0..chunks {
        let count = F::cast_from(chunk_voxels(voxels, k, cube_size, per_thread));
        let offset = partial[base + 2 * k] - mean;
        squares += partial[base + 2 * k + 1] + count * offset * offset;
    }
    let variance = squares / F::cast_from(voxels);
    stats[2 * plane] = mean;
    stats[2 * plane + 1] = F::new(1.0) / F::sqrt(variance + F::new(EPSILON));
}

/// y = LeakyReLU(γ·x̂ + β) = p·LeakyReLU′(p), one voxel per thread.
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
    output[index] = pre * activation_slope::<F>(pre);
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
    let (sum_g, sum_g_x_hat) = workgroup_sums::<F>(sum_g, sum_g_x_hat, cube_size);
    if unit == 0 {
        let at = (plane * CUBE_COUNT_X as usize + chunk) * 2;
        partial[at] = sum_g;
        partial[at + 1] = sum_g_x_hat;
    }
}

/// Each plane's Σg and Σg·x̂: its chunks' sums added, one thread per plane.
#[cube(launch_unchecked)]
pub(super) fn instance_norm_combine_sums_kernel<F: Float>(
    partial: &Tensor<F>,
    sums: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let plane = ABSOLUTE_POS;
    let chunks = partial.shape(1);
    if plane >= partial.shape(0) {
        terminate!();
    }
    let base = plane * chunks * 2;
    let mut first = F::new(0.0);
    let mut second = F::new(0.0);
    for k in 0..chunks {
        first += partial[base + 2 * k];
        second += partial[base + 2 * k + 1];
    }
    sums[2 * plane] = first;
    sums[2 * plane + 1] = second;
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
