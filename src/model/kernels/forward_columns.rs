//! The forward convolution with each thread's voxels along y (`gdl-lab bench --tiles along=y`),
//! a variant of `forward.rs` for GPUs to choose by measurement.
//!
//! Why a variant: in `forward.rs` neighbouring threads start 8 voxels apart along x, so one
//! load instruction of a GPU's 32 threads touches 8 cache lines; here neighbouring threads are
//! neighbouring voxels, so it touches one or two. The price is loads: each input row is read
//! once per kh (3 × 8 × 3 = 72 loads per channel and kd, against 30), which a CPU "GPU" such as
//! lavapipe, where every thread's load is its own, pays in full. Reads stay inside their buffers
//! as in `forward.rs`, so it launches unchecked.

use cubecl::prelude::*;

use super::row_tile::weight_index;

/// One thread: `channel_tile` output channels × `height_tile` consecutive voxels of one output
/// column (z, x). Workgroups count the column tiles with x fastest (neighbouring threads take
/// neighbouring x), then y tiles, then z; the z of the grid is the batch and channel tile, as
/// in `row_tile.rs`.
#[cube(launch_unchecked)]
pub(super) fn conv3d_forward_columns_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    output: &mut Tensor<F>,
    padding: usize,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] channel_tile: usize,
    #[comptime] height_tile: usize,
    #[comptime] transposed: bool,
    #[define(F)] _dtype: ElemType,
) {
    let channels = input.shape(1);
    let depth = input.shape(2);
    let height = input.shape(3);
    let width = input.shape(4);
    let channels_out = output.shape(1);
    let out_depth = output.shape(2);
    let out_height = output.shape(3);
    let out_width = output.shape(4);

    let height_tiles = out_height.div_ceil(height_tile);
    let unit = ((CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X) as usize;
    if unit >= out_depth * height_tiles * out_width {
        terminate!();
    }
    let channel_tiles = channels_out / channel_tile;
    let b = CUBE_POS_Z as usize / channel_tiles;
    let first_channel = (CUBE_POS_Z as usize % channel_tiles) * channel_tile;
    let x = unit % out_width;
    let y0 = ((unit / out_width) % height_tiles) * height_tile;
    let z = unit / (out_width * height_tiles);

    let taps = comptime!(kernel * kernel * kernel);
    let mut sums = Array::<F>::new(comptime!(channel_tile * height_tile));
    #[unroll]
    for i in 0..channel_tile * height_tile {
        sums[i] = F::new(0.0);
    }
    // The weights of one (kd, kh): every output channel of the tile × every kw.
    let mut taps_kw = Array::<F>::new(comptime!(channel_tile * kernel));

    let plane = height * width;
    let volume = depth * plane;
    for c in 0..channels {
        let input_base = (b * channels + c) * volume;
        for kd in 0..kernel {
            let pz = z * stride + kd;
            let z_inside = pz >= padding && pz < padding + depth;
            let plane_base = input_base + select(z_inside, (pz - padding) * plane, 0);
            for kh in 0..kernel {
                #[unroll]
                for o in 0..channel_tile {
                    #[unroll]
                    for kw in 0..kernel {
                        let tap = (kd * kernel + kh) * kernel + kw;
                        taps_kw[o * kernel + kw] = weight[weight_index(
                            c,
                            first_channel,
                            o,
                            tap,
                            channels,
                            channels_out,
                            taps,
                            transposed,
                        )];
                    }
                }
                #[unroll]
                for t in 0..height_tile {
                    let py = (y0 + t) * stride + kh;
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
                            sums[o * height_tile + t] += taps_kw[o * kernel + kw] * value;
                        }
                    }
                }
            }
        }
    }

    let out_plane = out_height * out_width;
    #[unroll]
    for o in 0..channel_tile {
        let out_base = ((b * channels_out + first_channel + o) * out_depth + z) * out_plane + x;
        #[unroll]
        for t in 0..height_tile {
            if y0 + t < out_height {
                output[out_base + (y0 + t) * out_width] = sums[o * height_tile + t];
            }
        }
    }
}
