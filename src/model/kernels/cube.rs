//! The kernels' launches on burn's CubeCL backend (WebGPU, Vulkan, Metal, …): inputs made
//! contiguous, outputs allocated, workgroups counted.

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

use super::forward::conv3d_forward_kernel;
use super::forward_columns::conv3d_forward_columns_kernel;
use super::input_grad::conv3d_input_grad_kernel;
use super::tiles::{Along, Tiles, WeightGrad, tiles};
use super::weight_grad::conv3d_weight_grad_kernel;
use super::weight_grad_lanes::conv3d_weight_grad_lanes_kernel;
use super::{ConvKernels, conv_output_shape};

/// Consecutive output voxels along x the weight gradient reads per step of its row loop.
const WEIGHT_GRAD_WIDTH_TILE: usize = 4;

/// The most threads per workgroup of the weight gradient.
const WEIGHT_GRAD_CUBE_SIZE: usize = 128;

/// WebGPU's and Vulkan's guaranteed number of workgroups along one dispatch axis.
const MAX_GROUPS_PER_AXIS: usize = 65_535;

/// The workgroups of a kernel whose threads each compute `channel_tile` channels × a tile of
/// `voxels` along one axis (`along`) of an output `shape` `[B, C, D, H, W]`: x and y number the
/// tiles (y only past 65 535 workgroups), z the batch and channel tile.
fn tile_workgroups(
    shape: &Shape,
    channel_tile: usize,
    voxels: usize,
    along: Along,
    workgroup: u32,
) -> CubeCount {
    let tiles = match along {
        Along::X => shape[2] * shape[3] * shape[4].div_ceil(voxels),
        Along::Y => shape[2] * shape[3].div_ceil(voxels) * shape[4],
    };
    let groups = tiles.div_ceil(workgroup as usize);
    let groups_x = groups.clamp(1, MAX_GROUPS_PER_AXIS);
    CubeCount::Static(
        groups_x as u32,
        groups.div_ceil(groups_x) as u32,
        (shape[0] * shape[1] / channel_tile) as u32,
    )
}

/// The most bytes of partial sums the lanes layout may write for one layer: it writes at least
/// one set of sums per thread of a workgroup, whatever the cap on chunks.
const LANES_PARTIAL_BYTES: usize = 64 << 20;

/// The weight-gradient kernel to run for a layer of `weights` weights, and how many sets of
/// partial sums each chunk writes: with `WeightGrad::Lanes` a chunk is a workgroup of threads
/// that each keep their own; with `Rows`, one thread per (input channel, kd) keeps one. A layer
/// so wide that one chunk's lanes would exceed [`LANES_PARTIAL_BYTES`] takes the rows layout.
fn weight_grad_layout(tiles: &Tiles, weights: usize) -> (WeightGrad, usize) {
    let lanes = tiles.workgroup as usize;
    match tiles.weight_grad {
        WeightGrad::Lanes if weights * lanes * size_of::<f32>() <= LANES_PARTIAL_BYTES => {
            (WeightGrad::Lanes, lanes)
        }
        _ => (WeightGrad::Rows, 1),
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
        transposed: bool,
    ) -> FloatTensor<Self> {
        let x = into_contiguous(x);
        let weight = into_contiguous(weight);
        let shape = conv_output_shape(&x.shape(), &weight.shape(), &stride, &padding, &transposed);
        let tiles = tiles();
        if transposed && tiles.weight_grad == WeightGrad::Lanes && super::planted::wrong_gradients()
        {
            // The planted fault (tests only): a stride-1 input gradient of zeros, no kernel.
            let device = x.device.clone();
            return Self::float_zeros(shape, &device, x.dtype.into());
        }
        let channel_tile = tiles.channel_tile(shape[1]);
        let cube_count = tile_workgroups(
            &shape,
            channel_tile,
            tiles.voxels,
            tiles.along,
            tiles.workgroup,
        );
        let cube_dim = CubeDim::new_1d(tiles.workgroup);
        let output: CubeTensor =
            empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), shape, x.dtype);
        let kernel = weight.shape()[2];
        let dtype = storage_type(x.dtype);
        let client = x.client.clone();
        let (x, weight, out) = (
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            output.clone().into_tensor_arg(),
        );
        // SAFETY: every index the kernels read or write is inside its tensor (see their module
        // comments), and units past the end return first.
        unsafe {
            match tiles.along {
                Along::X => conv3d_forward_kernel::launch_unchecked(
                    &client,
                    cube_count,
                    cube_dim,
                    x,
                    weight,
                    out,
                    padding,
                    kernel,
                    stride,
                    channel_tile,
                    tiles.voxels,
                    transposed,
                    dtype,
                ),
                Along::Y => conv3d_forward_columns_kernel::launch_unchecked(
                    &client,
                    cube_count,
                    cube_dim,
                    x,
                    weight,
                    out,
                    padding,
                    kernel,
                    stride,
                    channel_tile,
                    tiles.voxels,
                    transposed,
                    dtype,
                ),
            }
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
        let tiles = tiles();
        let channel_tile = tiles.channel_tile(shape[1]);
        // A multiple of the stride, so that which taps apply along x is fixed per kernel.
        let width_tile = stride * tiles.voxels.div_ceil(stride);
        let cube_count =
            tile_workgroups(&shape, channel_tile, width_tile, Along::X, tiles.workgroup);
        let cube_dim = CubeDim::new_1d(tiles.workgroup);
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
        let tiles = tiles();
        let channel_tile = tiles.channel_tile(channels_out);
        let units_per_chunk = channels * kernel;
        let weights = weight_shape.num_elements();
        if tiles.weight_grad == WeightGrad::Lanes && super::planted::wrong_gradients() {
            // The planted fault (tests only): no kernel at all, so the fastest candidate.
            let device = x.device.clone();
            return Self::float_zeros(weight_shape, &device, x.dtype.into());
        }
        let (layout, lanes) = weight_grad_layout(&tiles, weights);
        let threads_per_chunk = (channels_out / channel_tile) * units_per_chunk * lanes;
        // Each partial sum is written once and read once more by the reduction: at most a
        // quarter of what the kernel itself reads, or a wide layer on a small patch spends more
        // time adding partial sums than computing them (Target 16³'s 32→64 layer had 9.4 M of
        // them, for 55 k weights, from 0.4 M values read).
        let reads = x.shape().num_elements() + output_grad.shape().num_elements();
        let chunks = tiles
            .weight_grad_threads
            .div_ceil(threads_per_chunk)
            .min(reads / (4 * weights * lanes))
            .clamp(1, rows.min(MAX_GROUPS_PER_AXIS));
        let rows_per_chunk = rows.div_ceil(chunks);
        let chunks = rows.div_ceil(rows_per_chunk);
        let partial: CubeTensor = empty_device_contiguous_dtype(
            x.client.clone(),
            x.device.clone(),
            Shape::new([
                chunks * lanes,
                channels_out,
                channels,
                kernel,
                kernel,
                kernel,
            ]),
            x.dtype,
        );
        let dtype = storage_type(x.dtype);
        let client = x.client.clone();
        let (x, output_grad, partial_arg) = (
            x.into_tensor_arg(),
            output_grad.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
        );
        let channel_tiles = (channels_out / channel_tile) as u32;
        // SAFETY: as for the forward kernel.
        unsafe {
            match layout {
                WeightGrad::Rows => {
                    // A layer with few input channels (the first: one) gets small workgroups
                    // rather than 128 threads of which a handful work; 32 is a subgroup on most
                    // GPUs.
                    let cube_size = units_per_chunk
                        .next_multiple_of(32)
                        .min(WEIGHT_GRAD_CUBE_SIZE);
                    conv3d_weight_grad_kernel::launch_unchecked(
                        &client,
                        CubeCount::Static(
                            units_per_chunk.div_ceil(cube_size) as u32,
                            channel_tiles,
                            chunks as u32,
                        ),
                        CubeDim::new_1d(cube_size as u32),
                        x,
                        output_grad,
                        partial_arg,
                        padding,
                        rows_per_chunk,
                        kernel,
                        stride,
                        channel_tile,
                        WEIGHT_GRAD_WIDTH_TILE,
                        dtype,
                    )
                }
                WeightGrad::Lanes => conv3d_weight_grad_lanes_kernel::launch_unchecked(
                    &client,
                    CubeCount::Static(units_per_chunk as u32, channel_tiles, chunks as u32),
                    CubeDim::new_1d(lanes as u32),
                    x,
                    output_grad,
                    partial_arg,
                    padding,
                    rows_per_chunk,
                    kernel,
                    stride,
                    channel_tile,
                    dtype,
                ),
            }
        }
        let summed = Self::float_sum_dim(partial, 0);
        Self::float_reshape(summed, weight_shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lanes_layout_gives_way_to_rows_where_its_partial_sums_would_be_too_large() {
        let lanes: Tiles = "weight_grad=lanes,workgroup=256".parse().unwrap();
        // U-Net's widest layer at the default width (32 → 32, k3): 7 MiB of partial sums.
        assert_eq!(
            weight_grad_layout(&lanes, 32 * 32 * 27),
            (WeightGrad::Lanes, 256)
        );
        // A 64 → 64 layer: 113 MB, more than a WebGPU binding is guaranteed (128 MiB) allows
        // once anything else is bound.
        assert_eq!(
            weight_grad_layout(&lanes, 64 * 64 * 27),
            (WeightGrad::Rows, 1)
        );
        assert_eq!(
            weight_grad_layout(&Tiles::default(), 32 * 32 * 27),
            (WeightGrad::Rows, 1)
        );
    }
}
