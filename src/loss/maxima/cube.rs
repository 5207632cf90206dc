//! The kernel's launch on burn's CubeCL backend, and the reduction of its threads' rows.

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use cubecl::{CubeCount, CubeDim};

use super::kernel::{combine_maxima_kernel, volume_maxima_kernel};
use super::{MAXIMA, MonitorKernels};

/// Threads per workgroup: WebGPU's guaranteed maximum, a power of 4 for the workgroup maxima.
const CUBE_SIZE: usize = 256;

/// Voxels a thread reads at least before another workgroup is added.
const VOXELS_PER_THREAD: usize = 16;

/// The most workgroups of the first kernel, and so rows for the second, which one workgroup
/// combines: 262 144 threads fill a large GPU (an H200 runs ~270 000 at once); a larger volume
/// gives each thread more voxels.
const MAX_GROUPS: usize = 1024;

impl MonitorKernels for CubeBackend {
    fn volume_maxima(p: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        let (p, g) = (into_contiguous(p), into_contiguous(g));
        let count = p.shape().num_elements();
        assert_eq!(count, g.shape().num_elements(), "p and g differ in size");
        let groups = count
            .div_ceil(CUBE_SIZE * VOXELS_PER_THREAD)
            .clamp(1, MAX_GROUPS);
        let empty = |shape: Shape| {
            empty_device_contiguous_dtype(p.client.clone(), p.device.clone(), shape, p.dtype)
        };
        let partial = empty(Shape::new([groups, MAXIMA]));
        let maxima = empty(Shape::new([MAXIMA]));
        let dtype = burn::backend::cubecl::dtype_to_storage_type(p.dtype);
        let client = p.client.clone();
        // SAFETY: reads below `count` in both volumes (of `count` values each) and below
        // `groups` rows of `partial`; one row written per workgroup (kernel.rs).
        unsafe {
            volume_maxima_kernel::launch_unchecked(
                &client,
                CubeCount::Static(groups as u32, 1, 1),
                CubeDim::new_1d(CUBE_SIZE as u32),
                p.into_tensor_arg(),
                g.into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                count,
                CUBE_SIZE,
                dtype,
            );
            combine_maxima_kernel::launch_unchecked(
                &client,
                CubeCount::Static(1, 1, 1),
                CubeDim::new_1d(CUBE_SIZE as u32),
                partial.into_tensor_arg(),
                maxima.clone().into_tensor_arg(),
                groups,
                CUBE_SIZE,
                dtype,
            );
        }
        maxima
    }
}
