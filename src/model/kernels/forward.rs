//! The forward convolution kernel (also the input gradient of a stride-1 layer).
//!
//! Every tensor is read as contiguous NCDHW. Every read stays inside its buffer by construction
//! (a padded tap reads index 0 of its row and is multiplied away), so it launches unchecked.

use cubecl::prelude::*;

use super::row_tile::{RowTile, row_tile, weight_index};

/// One thread: `channel_tile` output channels × `width_tile` consecutive voxels of one output
/// row ([`row_tile`]). `transposed`: the weights are read as [`weight_index`] says.
#[cube(launch_unchecked)]
pub(super) fn conv3d_forward_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    output: &mut Tensor<F>,
    padding: usize,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] channel_tile: usize,
    #[comptime] width_tile: usize,
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

    let tile = row_tile(output, channel_tile, width_tile);
    if !tile.inside {
        terminate!();
    }
    let RowTile {
        b,
        first_channel,
        z,
        y,
        x0,
        ..
    } = tile;

    let taps = comptime!(kernel * kernel * kernel);
    let span = comptime!((width_tile - 1) * stride + kernel);
    let mut sums = Array::<F>::new(comptime!(channel_tile * width_tile));
    #[unroll]
    for i in 0..channel_tile * width_tile {
        sums[i] = F::new(0.0);
    }
    let mut row = Array::<F>::new(span);

    let plane = height * width;
    let volume = depth * plane;
    for c in 0..channels {
        let input_base = (b * channels + c) * volume;
        // kd and kh stay loops: unrolled, the kernel took seconds longer to compile (SwiftShader
        // compiles WGSL with LLVM in the page's first step) for no measured speed.
        for kd in 0..kernel {
            // Coordinates in the padded input; a tap outside the image reads 0.
            let pz = z * stride + kd;
            let z_inside = pz >= padding && pz < padding + depth;
            for kh in 0..kernel {
                let py = y * stride + kh;
                let row_inside = z_inside && py >= padding && py < padding + height;
                let row_base = input_base
                    + select(
                        row_inside,
                        (pz - padding) * plane + (py - padding) * width,
                        0,
                    );
                #[unroll]
                for i in 0..span {
                    let px = x0 * stride + i;
                    let inside = row_inside && px >= padding && px < padding + width;
                    let value = input[row_base + select(inside, px - padding, 0)];
                    row[i] = select(inside, value, F::new(0.0));
                }
                #[unroll]
                for kw in 0..kernel {
                    #[unroll]
                    for o in 0..channel_tile {
                        let tap = (kd * kernel + kh) * kernel + kw;
                        let w = weight[weight_index(
                            c,
                            first_channel,
                            o,
                            tap,
                            channels,
                            channels_out,
                            taps,
                            transposed,
                        )];
                        #[unroll]
                        for t in 0..width_tile {
                            sums[o * width_tile + t] += w * row[t * stride + kw];
                        }
                    }
                }
            }
        }
    }

    let out_plane = out_height * out_width;
    #[unroll]
    for o in 0..channel_tile {
        let out_base =
            ((b * channels_out + first_channel + o) * out_depth + z) * out_plane + y * out_width;
        #[unroll]
        for t in 0..width_tile {
            if x0 + t < out_width {
                output[out_base + x0 + t] = sums[o * width_tile + t];
            }
        }
    }
}
