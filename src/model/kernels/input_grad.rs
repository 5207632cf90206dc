//! The input-gradient kernel of a strided layer (reads as in `forward.rs`).

use cubecl::prelude::*;

use super::row_tile::{RowTile, row_tile};

/// The output-gradient columns (`q`, relative to `x0 / stride`) that the taps of one row tile
/// read in a strided layer's input gradient: the smallest and how many. A tap `kw` of input
/// voxel `x0 + t` reads output column `(x0 + t + padding − kw) / stride` when that divides.
pub(super) fn strided_columns(
    kernel: usize,
    stride: usize,
    padding: usize,
    width_tile: usize,
) -> (i64, usize) {
    let columns = (0..width_tile)
        .flat_map(|t| (0..kernel).filter_map(move |kw| strided_column(t, kw, stride, padding)));
    let (low, high) = columns.fold((i64::MAX, i64::MIN), |(low, high), q| {
        (low.min(q), high.max(q))
    });
    (low, (high - low + 1) as usize)
}

/// The output column `q` (relative to `x0 / stride`) tap `kw` of voxel `x0 + t` reads, if any.
fn strided_column(t: usize, kw: usize, stride: usize, padding: usize) -> Option<i64> {
    let numerator = (t + padding) as i64 - kw as i64;
    let stride = stride as i64;
    (numerator.rem_euclid(stride) == 0).then(|| numerator.div_euclid(stride))
}

/// The input gradient of a strided layer (a transposed convolution), gathered: one thread
/// computes `channel_tile` input channels × `width_tile` consecutive voxels of one input row.
/// Along x the taps that land on an output column are known when the kernel is compiled
/// (`width_tile` is a multiple of the stride), so no thread multiplies a tap that does not
/// apply; along z and y a whole row of taps applies or not. Workgroups: [`row_tile`].
#[cube(launch_unchecked)]
pub(super) fn conv3d_input_grad_kernel<F: Float>(
    output_grad: &Tensor<F>,
    weight: &Tensor<F>,
    input_grad: &mut Tensor<F>,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] padding: usize,
    #[comptime] channel_tile: usize,
    #[comptime] width_tile: usize,
    #[define(F)] _dtype: ElemType,
) {
    let channels_out = output_grad.shape(1);
    let out_depth = output_grad.shape(2);
    let out_height = output_grad.shape(3);
    let out_width = output_grad.shape(4);
    let channels = input_grad.shape(1);
    let depth = input_grad.shape(2);
    let height = input_grad.shape(3);
    let width = input_grad.shape(4);

    let tile = row_tile(input_grad, channel_tile, width_tile);
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

    let columns = comptime!(strided_columns(kernel, stride, padding, width_tile));
    let column_count = comptime!(columns.1);
    // Output column `x0 / stride + q` for q = low + i is read at `x0 / stride + i + up − down`.
    let up = comptime!(columns.0.max(0) as usize);
    let down = comptime!((-columns.0).max(0) as usize);
    let taps = comptime!(kernel * kernel * kernel);

    let mut sums = Array::<F>::new(comptime!(channel_tile * width_tile));
    #[unroll]
    for i in 0..channel_tile * width_tile {
        sums[i] = F::new(0.0);
    }
    let mut grads = Array::<F>::new(column_count);

    let out_plane = out_height * out_width;
    let out_volume = out_depth * out_plane;
    for o in 0..channels_out {
        let grad_channel = (b * channels_out + o) * out_volume;
        let weight_base = (o * channels + first_channel) * taps;
        for kd in 0..kernel {
            let nz = z + padding;
            if nz >= kd && (nz - kd).is_multiple_of(stride) && (nz - kd) / stride < out_depth {
                let plane_base = grad_channel + (nz - kd) / stride * out_plane;
                for kh in 0..kernel {
                    let ny = y + padding;
                    if ny >= kh
                        && (ny - kh).is_multiple_of(stride)
                        && (ny - kh) / stride < out_height
                    {
                        let row_base = plane_base + (ny - kh) / stride * out_width;
                        #[unroll]
                        for i in 0..column_count {
                            let shifted = x0 / stride + i + up;
                            let inside = shifted >= down && shifted < out_width + down;
                            let value = output_grad[row_base + select(inside, shifted - down, 0)];
                            grads[i] = select(inside, value, F::new(0.0));
                        }
                        #[unroll]
                        for kw in 0..kernel {
                            #[unroll]
                            for c in 0..channel_tile {
                                let w = weight
                                    [weight_base + c * taps + (kd * kernel + kh) * kernel + kw];
                                #[unroll]
                                for t in 0..width_tile {
                                    let column = comptime!(strided_column(t, kw, stride, padding));
                                    if comptime!(column.is_some()) {
                                        let i = comptime!((column.unwrap() - columns.0) as usize);
                                        sums[c * width_tile + t] += grads[i] * w;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    let plane = height * width;
    #[unroll]
    for c in 0..channel_tile {
        let base = ((b * channels + first_channel + c) * depth + z) * plane + y * width;
        #[unroll]
        for t in 0..width_tile {
            if x0 + t < width {
                input_grad[base + x0 + t] = sums[c * width_tile + t];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strided_row_tile_reads_the_output_columns_its_taps_land_on() {
        // k3, stride 2, padding 1: voxel t reads column (t + 1 − kw) / 2 where that divides.
        assert_eq!(strided_column(0, 1, 2, 1), Some(0));
        assert_eq!(strided_column(0, 0, 2, 1), None);
        assert_eq!(strided_column(0, 2, 2, 0), Some(-1));
        assert_eq!(strided_columns(3, 2, 1, 8), (0, 5));
        // Valid padding reaches one column before the tile's first.
        assert_eq!(strided_columns(3, 2, 0, 8), (-1, 5));
        assert_eq!(strided_columns(3, 1, 1, 8), (-1, 10));
    }
}
