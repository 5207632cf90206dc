//! The project's own 3D convolution kernels for the GPU, registered with burn as a backend
//! extension with their own autodiff op: a forward kernel, a strided layer's input gradient and
//! a weight gradient, written in CubeCL so that the same code compiles to WGSL for the browser
//! and for native Vulkan.
//!
//! Why by hand: burn-cubecl 0.22's `conv3d` runs a direct kernel that was 60 % of a Target 64³
//! step on an H200 and falls off a cliff above 64³ (BENCHMARKS.md, "GPU"), and in the browser,
//! where autotuning is off, its backward passes take fallbacks (the weight gradient as a
//! convolution whose kernel is the whole output gradient). Implicit GEMM in burn needs
//! cooperative-matrix hardware that WGSL lacks. These kernels need nothing but plain storage
//! buffers, so the browser gets them by construction.
//!
//! - Forward (`forward.rs`): each thread computes a tile of output channels × consecutive voxels
//!   along x, so one input load serves the whole channel tile and one weight load the whole row
//!   of voxels (register tiling; NCDHW in and out, so no layout copies).
//! - Input gradient: for stride 1 it is the same forward kernel over the output gradient with the
//!   weights read transposed and flipped (no flipped copy); for stride 2 (the U-Net's down-sampling) a gathering
//!   transposed convolution that multiplies only the taps that land on an output voxel
//!   (`input_grad.rs`).
//! - Weight gradient (`weight_grad.rs`): each thread sums one (output-channel tile, input
//!   channel, kd) × every (kh, kw) over one chunk of output rows; a reduction adds the chunks.
//! - Their sizes (`tiles.rs`) are one process-wide setting that benchmarks change at run time,
//!   with two variants written for a GPU's memory, for a GPU run to choose by measurement
//!   (`forward_columns.rs`, `weight_grad_lanes.rs`; `bench/tiles.py`).
//!
//! On flex the same operation runs on the CPU (`cpu.rs`: im2col tiles and the `gemm` crate, on
//! rayon's threads; `flex.rs` routes to it, and to burn's convolution where it does not apply),
//! so the autodiff wiring is checked on the CPU too.

mod autodiff;
pub mod cpu;
mod cube;
mod flex;
mod forward;
mod forward_columns;
mod input_grad;
mod row_tile;
pub mod tiles;
mod weight_grad;
mod weight_grad_lanes;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::Shape;

/// A fault for tests to plant: with it on, the lanes weight gradient (`weight_grad=lanes`)
/// returns zeros without running a kernel, and so does the stride-1 input gradient under the
/// same setting: wrong gradients that are also the fastest, so that the tuning pass's tests can
/// show its agreement check refuses them (`tests/gpu_kernels.rs`). Off unless a test turns it
/// on; nothing else reads it.
#[doc(hidden)]
pub mod planted {
    use std::sync::atomic::{AtomicBool, Ordering};

    static WRONG_GRADIENTS: AtomicBool = AtomicBool::new(false);

    pub fn plant_wrong_gradients(on: bool) {
        WRONG_GRADIENTS.store(on, Ordering::Relaxed);
    }

    pub fn wrong_gradients() -> bool {
        WRONG_GRADIENTS.load(Ordering::Relaxed)
    }
}

/// The 3D convolution (groups 1, dilation 1, the same stride and padding on every axis, no
/// bias) and its gradients, on every backend gdl-lab trains on.
#[backend_extension(Cube, Flex, Fusion, Autodiff)]
pub trait ConvKernels: Backend {
    /// `x` `[B, C, D, H, W]` convolved with `weight` `[Cout, C, k, k, k]`; with `transposed`,
    /// with `weight` `[C, Cout, k, k, k]` read with its channel axes swapped and every spatial
    /// axis flipped (a stride-1 layer's input gradient, see `autodiff.rs`).
    #[fusion(dtype = x, shape = conv_output_shape(x, weight, stride, padding, transposed))]
    fn tiled_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        transposed: bool,
    ) -> FloatTensor<Self>;

    /// The gradient of [`ConvKernels::tiled_conv3d`] with respect to `x` for a stride above 1
    /// (`x` is read for its shape only; stride 1 is a forward convolution, see `autodiff.rs`).
    #[fusion(dtype = x, shape = x)]
    fn tiled_conv3d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;

    /// The gradient of [`ConvKernels::tiled_conv3d`] with respect to `weight`, given the output
    /// gradient (`weight` is read for its shape only).
    #[fusion(dtype = weight, shape = weight)]
    fn tiled_conv3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
}

/// The output shape of a convolution of `x` by `weight`: `[B, Cout, D', H', W']` (`Cout` is
/// `weight`'s second axis when it is read `transposed`).
pub fn conv_output_shape(
    x: &Shape,
    weight: &Shape,
    stride: &usize,
    padding: &usize,
    transposed: &bool,
) -> Shape {
    let edge = |size: usize| (size + 2 * padding - weight[2]) / stride + 1;
    let channels_out = if *transposed { weight[1] } else { weight[0] };
    Shape::new([x[0], channels_out, edge(x[2]), edge(x[3]), edge(x[4])])
}

/// A 3D convolution of `input` `[B, C, D, H, W]` by `weight` `[Cout, C, k, k, k]` (k odd or 1)
/// with the same `stride` and zero `padding` on every axis, on the project's kernels where the
/// device is a GPU.
pub fn conv3d_tiled(
    input: Tensor<5>,
    weight: Tensor<5>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
) -> Tensor<5> {
    let [_, channels, ..] = input.dims();
    let [channels_out, weight_channels, kd, kh, kw] = weight.dims();
    assert_eq!(
        channels, weight_channels,
        "conv3d: the input has {channels} channels, the weights expect {weight_channels}"
    );
    assert!(
        kd == kh && kh == kw,
        "conv3d: the tiled kernels take cubic kernels, not {kd}×{kh}×{kw}"
    );
    let output = Tensor::from_dispatch(Dispatch::tiled_conv3d(
        input.into_dispatch(),
        weight.into_dispatch(),
        stride,
        padding,
        false,
    ));
    match bias {
        Some(bias) => output + bias.reshape([1, channels_out, 1, 1, 1]),
        None => output,
    }
}
