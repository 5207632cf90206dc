//! The CubeCL kernels and their launches on burn's CubeCL backend (WebGPU, Vulkan, Metal, …).
//!
//! Every tensor is read as contiguous NCDHW. Every read stays inside its buffer by construction
//! (a padded tap reads index 0 of its row and is multiplied away), so the kernels launch
//! unchecked: no bounds check per load.

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{DType, TensorMetadata};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{CubeCount, CubeDim};

use super::{ConvKernels, conv_output_shape};

/// Consecutive output voxels along x one forward thread computes: each weight load serves
/// `WIDTH_TILE` outputs (8 was 1.5× faster than 4 on lavapipe).
const WIDTH_TILE: usize = 8;

/// Consecutive output voxels along x the weight gradient reads per step of its row loop.
const WEIGHT_GRAD_WIDTH_TILE: usize = 4;

/// Threads per workgroup.
const CUBE_SIZE: u32 = 128;

/// WebGPU's and Vulkan's guaranteed number of workgroups along one dispatch axis.
const MAX_GROUPS_PER_AXIS: usize = 65_535;

/// How many threads the weight gradient aims for: enough to fill a large GPU (an H200 runs
/// ~270 000 at once); each thread sums one chunk of output rows.
const WEIGHT_GRAD_THREADS: usize = 1 << 17;

/// The output channels one thread computes: the largest of 8, 4, 2, 1 that divides them.
/// With 8 × [`WIDTH_TILE`] a thread holds 64 sums, as GPU matmul kernels commonly do. 16 was
/// 20 % faster on lavapipe (Target 32³: 1.43 against 1.77 s per step) but needs 128 sums per
/// thread, which laptop GPUs would spill; 4 × 4 was 40 % slower. Not yet measured on a GPU.
fn channel_tile(channels_out: usize) -> usize {
    [8, 4, 2, 1]
        .into_iter()
        .find(|tile| channels_out.is_multiple_of(*tile))
        .unwrap_or(1)
}

/// One thread: `channel_tile` output channels × `width_tile` consecutive voxels of one output
/// row (z, y). The workgroup's z position is the batch and channel tile, so every weight a
/// workgroup reads has the same address in all its threads (a scalar load where the compiler
/// sees it); x and y number the row tiles, x fastest, so neighbouring threads share input rows.
#[cube(launch_unchecked)]
fn conv3d_forward_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    output: &mut Tensor<F>,
    padding: usize,
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
    let channels_out = output.shape(1);
    let out_depth = output.shape(2);
    let out_height = output.shape(3);
    let out_width = output.shape(4);

    let width_tiles = out_width.div_ceil(width_tile);
    let unit = ((CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X) as usize;
    if unit >= out_depth * out_height * width_tiles {
        terminate!();
    }
    let x0 = (unit % width_tiles) * width_tile;
    let y = (unit / width_tiles) % out_height;
    let z = unit / (width_tiles * out_height);
    let channel_tiles = channels_out / channel_tile;
    let first_channel = (CUBE_POS_Z as usize % channel_tiles) * channel_tile;
    let b = CUBE_POS_Z as usize / channel_tiles;

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
        let weight_base = (first_channel * channels + c) * taps;
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
                        let w = weight
                            [weight_base + o * channels * taps + (kd * kernel + kh) * kernel + kw];
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

/// One thread: the weight gradient of `channel_tile` output channels × one input channel × one
/// kd × every (kh, kw), summed over one chunk of `rows_per_chunk` output rows (b, z, y), written
/// to `partial[chunk]`: each output-gradient value read serves all k² taps of the plane. The
/// workgroup's z position is the chunk and its y the channel tile, so every output-gradient
/// value a workgroup reads has the same address in all its threads; x numbers (input channel,
/// kd), kd fastest.
#[cube(launch_unchecked)]
fn conv3d_weight_grad_kernel<F: Float>(
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

/// The output-gradient columns (`q`, relative to `x0 / stride`) that the taps of one row tile
/// read in a strided layer's input gradient: the smallest and how many. A tap `kw` of input
/// voxel `x0 + t` reads output column `(x0 + t + padding − kw) / stride` when that divides.
fn strided_columns(
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
/// apply; along z and y a whole row of taps applies or not. Workgroups as in the forward kernel.
#[cube(launch_unchecked)]
fn conv3d_input_grad_kernel<F: Float>(
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

    let width_tiles = width.div_ceil(width_tile);
    let unit = ((CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X) as usize;
    if unit >= depth * height * width_tiles {
        terminate!();
    }
    let x0 = (unit % width_tiles) * width_tile;
    let y = (unit / width_tiles) % height;
    let z = unit / (width_tiles * height);
    let channel_tiles = channels / channel_tile;
    let first_channel = (CUBE_POS_Z as usize % channel_tiles) * channel_tile;
    let b = CUBE_POS_Z as usize / channel_tiles;

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

fn storage_type(dtype: DType) -> ElemType {
    burn::backend::cubecl::dtype_to_storage_type(dtype)
}

impl ConvKernels for CubeBackend {
    fn tiled_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let x = into_contiguous(x);
        let weight = into_contiguous(weight);
        let shape = conv_output_shape(&x.shape(), &weight.shape(), &stride, &padding);
        let channel_tile = channel_tile(shape[1]);
        let row_tiles = shape[2] * shape[3] * shape[4].div_ceil(WIDTH_TILE);
        let groups = row_tiles.div_ceil(CUBE_SIZE as usize);
        let groups_x = groups.min(MAX_GROUPS_PER_AXIS);
        let cube_count = CubeCount::Static(
            groups_x as u32,
            groups.div_ceil(groups_x) as u32,
            (shape[0] * shape[1] / channel_tile) as u32,
        );
        let cube_dim = CubeDim::new_1d(CUBE_SIZE);
        let output: CubeTensor =
            empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), shape, x.dtype);
        let kernel = weight.shape()[2];
        let dtype = storage_type(x.dtype);
        let client = x.client.clone();
        // SAFETY: every index the kernel reads or writes is inside its tensor (see the module
        // comment), and units past the end return first.
        unsafe {
            conv3d_forward_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                x.into_tensor_arg(),
                weight.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                padding,
                kernel,
                stride,
                channel_tile,
                WIDTH_TILE,
                dtype,
            );
        }
        output
    }

    fn tiled_conv3d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let weight = into_contiguous(weight);
        let output_grad = into_contiguous(output_grad);
        let shape = x.shape();
        let channel_tile = channel_tile(shape[1]);
        // A multiple of the stride, so that which taps apply along x is fixed per kernel.
        let width_tile = stride * WIDTH_TILE.div_ceil(stride);
        let row_tiles = shape[2] * shape[3] * shape[4].div_ceil(width_tile);
        let groups = row_tiles.div_ceil(CUBE_SIZE as usize);
        let groups_x = groups.min(MAX_GROUPS_PER_AXIS);
        let cube_count = CubeCount::Static(
            groups_x as u32,
            groups.div_ceil(groups_x) as u32,
            (shape[0] * shape[1] / channel_tile) as u32,
        );
        let cube_dim = CubeDim::new_1d(CUBE_SIZE);
        let input_grad: CubeTensor = empty_device_contiguous_dtype(
            output_grad.client.clone(),
            output_grad.device.clone(),
            shape,
            output_grad.dtype,
        );
        let kernel = weight.shape()[2];
        let dtype = storage_type(output_grad.dtype);
        let client = output_grad.client.clone();
        // SAFETY: as for the forward kernel.
        unsafe {
            conv3d_input_grad_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                output_grad.into_tensor_arg(),
                weight.into_tensor_arg(),
                input_grad.clone().into_tensor_arg(),
                kernel,
                stride,
                padding,
                channel_tile,
                width_tile,
                dtype,
            );
        }
        input_grad
    }

    fn tiled_conv3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let x = into_contiguous(x);
        let output_grad = into_contiguous(output_grad);
        let weight_shape = weight.shape();
        let [channels_out, channels, kernel] = [weight_shape[0], weight_shape[1], weight_shape[2]];
        let grad_shape = output_grad.shape();
        let rows = grad_shape[0] * grad_shape[2] * grad_shape[3];
        let channel_tile = channel_tile(channels_out);
        let units_per_chunk = channels * kernel;
        let threads_per_chunk = (channels_out / channel_tile) * units_per_chunk;
        let chunks = WEIGHT_GRAD_THREADS
            .div_ceil(threads_per_chunk)
            .clamp(1, rows.min(MAX_GROUPS_PER_AXIS));
        let rows_per_chunk = rows.div_ceil(chunks);
        let chunks = rows.div_ceil(rows_per_chunk);
        let partial: CubeTensor = empty_device_contiguous_dtype(
            x.client.clone(),
            x.device.clone(),
            Shape::new([chunks, channels_out, channels, kernel, kernel, kernel]),
            x.dtype,
        );
        let cube_dim = CubeDim::new_1d(CUBE_SIZE);
        let cube_count = CubeCount::Static(
            units_per_chunk.div_ceil(CUBE_SIZE as usize) as u32,
            (channels_out / channel_tile) as u32,
            chunks as u32,
        );
        let dtype = storage_type(x.dtype);
        let client = x.client.clone();
        // SAFETY: as for the forward kernel.
        unsafe {
            conv3d_weight_grad_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                x.into_tensor_arg(),
                output_grad.into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                padding,
                rows_per_chunk,
                kernel,
                stride,
                channel_tile,
                WEIGHT_GRAD_WIDTH_TILE,
                dtype,
            );
        }
        let summed = Self::float_sum_dim(partial, 0);
        Self::float_reshape(summed, weight_shape)
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

    #[test]
    fn the_channel_tile_divides_the_channels() {
        assert_eq!(channel_tile(64), 8);
        assert_eq!(channel_tile(4), 4);
        assert_eq!(channel_tile(6), 2);
        assert_eq!(channel_tile(5), 1);
    }
}
