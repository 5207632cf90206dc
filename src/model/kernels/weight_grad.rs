//! The weight-gradient kernel: partial sums per chunk of output rows (reads as in `forward.rs`).

use cubecl::prelude::*;

/// One thread: the weight gradient of `channel_tile` output channels × one input channel × one
/// kd × every (kh, kw), summed over one chunk of `rows_per_chunk` output rows (b, z, y), written
/// to `partial[chunk]`: each output-gradient value read serves all k² taps of the plane. The
/// workgroup's z position is the chunk and its y the channel tile, so every output-gradient
/// value a workgroup reads has the same address in all its threads; x numbers (input channel,
/// kd), kd fastest.
#[cube(launch_unchecked)]
pub(super) fn conv3d_weight_grad_kernel<F: Float>(
    input: &Tensor<F>,
    output_grad: &Tensor<F>,
    partial: &mut Tensor<F>,
    padding: usize,
    rows_per_chunk: usize,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] channel_tile: usize,
    #[comptime] width_tile: usize,
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

    let unit = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if unit >= channels * kernel {
        terminate!();
    }
    let kd = unit % kernel;
    let c = unit / kernel;
    let first_channel = CUBE_POS_Y as usize * channel_tile;
    let chunk = CUBE_POS_Z as usize;

    let taps = comptime!(kernel * kernel * kernel);
    let plane_taps = comptime!(kernel * kernel);
    let span = comptime!((width_tile - 1) * stride + kernel);
    let mut sums = Array::<F>::new(comptime!(channel_tile * kernel * kernel));
    #[unroll]
    for i in 0..channel_tile * plane_taps {
        sums[i] = F::new(0.0);
    }
    let mut rows_read = Array::<F>::new(comptime!(kernel * span));
    let mut grads = Array::<F>::new(comptime!(channel_tile * width_tile));

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
    let width_tiles = out_width.div_ceil(width_tile);
    for r in first_row..last_row {
        let y = r % out_height;
        let z = (r / out_height) % out_depth;
        let b = r / (out_height * out_depth);
        let pz = z * stride + kd;
        let z_inside = pz >= padding && pz < padding + depth;
        let plane_base = (b * channels + c) * volume + select(z_inside, (pz - padding) * plane, 0);
        let grad_base =
            (b * channels_out + first_channel) * out_volume + z * out_plane + y * out_width;
        for x_tile in 0..width_tiles {
            let x0 = x_tile * width_tile;
            #[unroll]
            for kh in 0..kernel {
                let py = y * stride + kh;
                let row_inside = z_inside && py >= padding && py < padding + height;
                let row_base = plane_base + select(row_inside, (py - padding) * width, 0);
                #[unroll]
                for i in 0..span {
                    let px = x0 * stride + i;
                    let inside = row_inside && px >= padding && px < padding + width;
                    let value = input[row_base + select(inside, px - padding, 0)];
                    rows_read[kh * span + i] = select(inside, value, F::new(0.0));
                }
            }
            #[unroll]
            for t in 0..width_tile {
                let inside = x0 + t < out_width;
                #[unroll]
                for o in 0..channel_tile {
                    let value = output_grad[grad_base + o * out_volume + select(inside, x0 + t, 0)];
                    grads[o * width_tile + t] = select(inside, value, F::new(0.0));
                }
            }
            #[unroll]
            for tap in 0..plane_taps {
                let kh = comptime!(tap / kernel);
                let kw = comptime!(tap % kernel);
                #[unroll]
                for o in 0..channel_tile {
                    #[unroll]
                    for t in 0..width_tile {
                        sums[o * plane_taps + tap] +=
                            grads[o * width_tile + t] * rows_read[kh * span + t * stride + kw];
                    }
                }
            }
        }
    }

    #[unroll]
    for o in 0..channel_tile {
        let base =
            ((chunk * channels_out + first_channel + o) * channels + c) * taps + kd * plane_taps;
        #[unroll]
        for tap in 0..plane_taps {
            partial[base + tap] = sums[o * plane_taps + tap];
        }
    }
}
