//! The weight gradient with a workgroup's threads along x (`gdl-lab bench --tiles
//! weight_grad=lanes`), a variant of `weight_grad.rs` for GPUs to choose by measurement.
//!
//! Why a variant: in `weight_grad.rs` a workgroup's threads are (input channel, kd) pairs, so
//! each of a GPU's 32 threads loads from its own plane: every input load touches 32 cache
//! lines. Here the threads of a workgroup share (input channel, kd, output-channel tile, chunk)
//! and take turns over the chunk's voxels, so their loads of both the input and the output
//! gradient are neighbouring addresses. The price: each thread keeps its own partial sums, so a
//! chunk writes `lanes` of them, and each voxel's nine input values are loaded for it alone.
//! Reads stay inside their buffers as in `forward.rs`, so it launches unchecked.

use cubecl::prelude::*;

/// One thread: the weight gradient of `channel_tile` output channels × one input channel × one
/// kd × every (kh, kw), summed over every `lanes`-th voxel, from its `lane`-th, of one chunk of
/// `rows_per_chunk` output rows (b, z, y) taken in memory order, written to
/// `partial[chunk · lanes + lane]`. The
/// workgroup's x position numbers (input channel, kd), kd fastest; y is the channel tile and
/// z the chunk.
#[cube(launch_unchecked)]
pub(super) fn conv3d_weight_grad_lanes_kernel<F: Float>(
    input: &Tensor<F>,
    output_grad: &Tensor<F>,
    partial: &mut Tensor<F>,
    padding: usize,
    rows_per_chunk: usize,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] channel_tile: usize,
    #[define(F)] _dtype: ElemType,
) {
    let channels = input.shape(1);
    let depth = input.shape(2);
    let height = input.shape(3);
    let width = input.shape(4);
    let batch = output_grad.shape(0);
    let channels_out = output_grad.shape(1);
    let out_depth = output_grad.shape(2);
    let out_height = output_grad.shape(3);
    let out_width = output_grad.shape(4);

    let lanes = CUBE_DIM_X as usize;
    let lane = UNIT_POS_X as usize;
    let kd = CUBE_POS_X as usize % kernel;
    let c = CUBE_POS_X as usize / kernel;
    let first_channel = CUBE_POS_Y as usize * channel_tile;
    let chunk = CUBE_POS_Z as usize;

    let taps = comptime!(kernel * kernel * kernel);
    let plane_taps = comptime!(kernel * kernel);
    let mut sums = Array::<F>::new(comptime!(channel_tile * kernel * kernel));
    #[unroll]
    for i in 0..channel_tile * plane_taps {
        sums[i] = F::new(0.0);
    }
    let mut grads = Array::<F>::new(channel_tile);

    let plane = height * width;
    let volume = depth * plane;
    let out_plane = out_height * out_width;
    let out_volume = out_depth * out_plane;
    let rows = batch * out_depth * out_height;
    let first_row = chunk * rows_per_chunk;
    let last_row = select(
        first_row + rows_per_chunk < rows,
        first_row + rows_per_chunk,
        rows,
    );
    // The chunk's voxels in memory order (its rows one after the other), every `lanes`-th.
    let mut voxel = first_row * out_width + lane;
    while voxel < last_row * out_width {
        let x = voxel % out_width;
        let r = voxel / out_width;
        let y = r % out_height;
        let z = (r / out_height) % out_depth;
        let b = r / (out_height * out_depth);
        let pz = z * stride + kd;
        let z_inside = pz >= padding && pz < padding + depth;
        let plane_base = (b * channels + c) * volume + select(z_inside, (pz - padding) * plane, 0);
        let grad_at =
            (b * channels_out + first_channel) * out_volume + z * out_plane + y * out_width + x;
        #[unroll]
        for o in 0..channel_tile {
            grads[o] = output_grad[grad_at + o * out_volume];
        }
        #[unroll]
        for kh in 0..kernel {
            let py = y * stride + kh;
            let row_inside = z_inside && py >= padding && py < padding + height;
            let row_base = plane_base + select(row_inside, (py - padding) * width, 0);
            #[unroll]
            for kw in 0..kernel {
                let px = x * stride + kw;
                let inside = row_inside && px >= padding && px < padding + width;
                let value = input[row_base + select(inside, px - padding, 0)];
                let value = select(inside, value, F::new(0.0));
                #[unroll]
                for o in 0..channel_tile {
                    sums[o * plane_taps + kh * kernel + kw] += grads[o] * value;
                }
            }
        }
        voxel += lanes;
    }

    #[unroll]
    for o in 0..channel_tile {
        let base = (((chunk * lanes + lane) * channels_out + first_channel + o) * channels + c)
            * taps
            + kd * plane_taps;
        #[unroll]
        for tap in 0..plane_taps {
            partial[base + tap] = sums[o * plane_taps + tap];
        }
    }
}
