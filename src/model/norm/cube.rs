//! The kernels' launches on burn's CubeCL backend.

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{CubeCount, CubeDim};

use super::kernels::{
    instance_norm_apply_kernel, instance_norm_chunk_grad_sums_kernel,
    instance_norm_chunk_stats_kernel, instance_norm_combine_stats_kernel,
    instance_norm_combine_sums_kernel, instance_norm_input_grad_kernel,
};
use super::{NormKernels, pairs_per_plane};

/// Threads per workgroup: WebGPU's guaranteed maximum, a power of two for the tree reduction.
const CUBE_SIZE: usize = 256;

/// Threads per workgroup of the chunk kernels (a power of 4 for their sums).
const CHUNK_CUBE_SIZE: usize = 64;

/// Voxels each thread of a chunk kernel reads: a chunk is 1024 voxels, so a 64³ plane is 256
/// workgroups rather than one (one workgroup per plane left most of a GPU idle, each thread
/// waiting on one load at a time).
const VOXELS_PER_THREAD: usize = 16;

/// WebGPU's and Vulkan's guaranteed number of workgroups along one dispatch axis.
const MAX_GROUPS_PER_AXIS: usize = 65_535;

fn planes(x: &Shape) -> usize {
    let planes = x[0] * x[1];
    // Batch × channels; the page and the CLI refuse batches anywhere near this.
    assert!(
        planes <= MAX_GROUPS_PER_AXIS,
        "instance norm: {planes} channel planes, more than one dispatch holds"
    );
    planes
}

/// Threads per workgroup of the kernels with one thread per plane.
const PLANE_CUBE_SIZE: usize = 64;

/// One thread per channel plane of `x` `[B, C, …]`.
fn plane_workgroups(x: &Shape) -> CubeCount {
    CubeCount::Static(planes(x).div_ceil(PLANE_CUBE_SIZE) as u32, 1, 1)
}

/// The chunks of each plane of `x` (at most 65 535 × 1024 voxels a plane, beyond any buffer a
/// device binds).
fn chunks_per_plane(x: &Shape) -> usize {
    voxels_per_plane(x).div_ceil(CHUNK_CUBE_SIZE * VOXELS_PER_THREAD)
}

/// The chunk kernels' output: `[planes, chunks, 2]`.
fn pairs_per_chunk(x: &Shape) -> Shape {
    Shape::new([planes(x), chunks_per_plane(x), 2])
}

/// One workgroup per chunk (x) of each plane (y).
fn chunk_workgroups(x: &Shape) -> CubeCount {
    CubeCount::Static(chunks_per_plane(x) as u32, planes(x) as u32, 1)
}

/// One thread per voxel of `x`, the workgroups numbered along x then y.
fn voxel_workgroups(x: &Shape) -> CubeCount {
    let groups = x.num_elements().div_ceil(CUBE_SIZE);
    let groups_x = groups.clamp(1, MAX_GROUPS_PER_AXIS);
    CubeCount::Static(groups_x as u32, groups.div_ceil(groups_x) as u32, 1)
}

fn voxels_per_plane(x: &Shape) -> usize {
    x.num_elements() / (x[0] * x[1])
}

fn storage_type(tensor: &CubeTensor) -> ElemType {
    burn::backend::cubecl::dtype_to_storage_type(tensor.dtype)
}

fn empty_like(tensor: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_contiguous_dtype(
        tensor.client.clone(),
        tensor.device.clone(),
        shape,
        tensor.dtype,
    )
}

impl NormKernels for CubeBackend {
    fn instance_norm_leaky_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let stats = Self::instance_norm_stats(x.clone());
        Self::instance_norm_apply(x, stats, gamma, beta)
    }

    fn instance_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let x = into_contiguous(x);
        let shape = x.shape();
        let stats = empty_like(&x, pairs_per_plane(&shape));
        // A plane of one chunk (8³ and smaller: the U-Net's deeper levels on small patches)
        // gets its statistics from the chunk kernel itself, [planes, 1, 2] being laid out as
        // [planes, 2]: one launch instead of two.
        let whole_planes = chunks_per_plane(&shape) == 1;
        let partial = if whole_planes {
            stats.clone()
        } else {
            empty_like(&x, pairs_per_chunk(&shape))
        };
        let voxels = voxels_per_plane(&shape);
        let dtype = storage_type(&x);
        let client = x.client.clone();
        // SAFETY: every read and write inside its tensor (kernels.rs).
        unsafe {
            instance_norm_chunk_stats_kernel::launch_unchecked(
                &client,
                chunk_workgroups(&shape),
                CubeDim::new_1d(CHUNK_CUBE_SIZE as u32),
                x.into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                voxels,
                CHUNK_CUBE_SIZE,
                VOXELS_PER_THREAD,
                whole_planes,
                dtype,
            );
            if whole_planes {
                return stats;
            }
            instance_norm_combine_stats_kernel::launch_unchecked(
                &client,
                plane_workgroups(&shape),
                CubeDim::new_1d(PLANE_CUBE_SIZE as u32),
                partial.into_tensor_arg(),
                stats.clone().into_tensor_arg(),
                voxels,
                CHUNK_CUBE_SIZE,
                VOXELS_PER_THREAD,
                dtype,
            );
        }
        stats
    }

    fn instance_norm_apply(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [x, stats, gamma, beta] = [x, stats, gamma, beta].map(into_contiguous);
        let shape = x.shape();
        let output = empty_like(&x, shape.clone());
        let dtype = storage_type(&x);
        let client = x.client.clone();
        // SAFETY: threads past the last voxel return first (kernels.rs).
        unsafe {
            instance_norm_apply_kernel::launch_unchecked(
                &client,
                voxel_workgroups(&shape),
                CubeDim::new_1d(CUBE_SIZE as u32),
                x.into_tensor_arg(),
                stats.into_tensor_arg(),
                gamma.into_tensor_arg(),
                beta.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                voxels_per_plane(&shape),
                dtype,
            );
        }
        output
    }

    fn instance_norm_grad_sums(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [x, stats, gamma, beta, grad] = [x, stats, gamma, beta, grad].map(into_contiguous);
        let shape = x.shape();
        let sums = empty_like(&x, pairs_per_plane(&shape));
        // As for the statistics: a plane of one chunk has its sums once its chunk is summed.
        let whole_planes = chunks_per_plane(&shape) == 1;
        let partial = if whole_planes {
            sums.clone()
        } else {
            empty_like(&x, pairs_per_chunk(&shape))
        };
        let dtype = storage_type(&x);
        let client = x.client.clone();
        // SAFETY: as for the statistics.
        unsafe {
            instance_norm_chunk_grad_sums_kernel::launch_unchecked(
                &client,
                chunk_workgroups(&shape),
                CubeDim::new_1d(CHUNK_CUBE_SIZE as u32),
                x.into_tensor_arg(),
                stats.into_tensor_arg(),
                gamma.into_tensor_arg(),
                beta.into_tensor_arg(),
                grad.into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                voxels_per_plane(&shape),
                CHUNK_CUBE_SIZE,
                VOXELS_PER_THREAD,
                dtype,
            );
            if whole_planes {
                return sums;
            }
            instance_norm_combine_sums_kernel::launch_unchecked(
                &client,
                plane_workgroups(&shape),
                CubeDim::new_1d(PLANE_CUBE_SIZE as u32),
                partial.into_tensor_arg(),
                sums.clone().into_tensor_arg(),
                dtype,
            );
        }
        sums
    }

    fn instance_norm_input_grad(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        sums: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [x, stats, gamma, beta, grad, sums] =
            [x, stats, gamma, beta, grad, sums].map(into_contiguous);
        let shape = x.shape();
        let input_grad = empty_like(&x, shape.clone());
        let dtype = storage_type(&x);
        let client = x.client.clone();
        // SAFETY: as for the apply kernel.
        unsafe {
            instance_norm_input_grad_kernel::launch_unchecked(
                &client,
                voxel_workgroups(&shape),
                CubeDim::new_1d(CUBE_SIZE as u32),
                x.into_tensor_arg(),
                stats.into_tensor_arg(),
                gamma.into_tensor_arg(),
                beta.into_tensor_arg(),
                grad.into_tensor_arg(),
                sums.into_tensor_arg(),
                input_grad.clone().into_tensor_arg(),
                voxels_per_plane(&shape),
                dtype,
            );
        }
        input_grad
    }
}
