//! The nets' 3D convolutions, by one of three paths ([`ConvAlgorithm`]): burn's `conv3d`, the
//! project's own kernels ([`super::kernels`], the default: tiled kernels on a GPU, im2col tiles
//! and `gemm` on the CPU), or im2col + batched matmul built from burn's own tensor ops (this
//! file).
//!
//! Why im2col by hand: on the GPU backends burn-cubecl 0.22 runs the forward 3D convolution
//! through a direct kernel that was 60 % of a Target 64³ step on an H200, and above 64³ burn's
//! path falls off a cliff (BENCHMARKS.md, "GPU"). Written as tensor ops, the same layer runs
//! on burn's tiled matmul instead (no cooperative-matrix hardware needed, so WebGPU gets it
//! too), burn's autodiff derives both backward passes, and nothing here depends on a backend:
//! the native tests check it against burn's `conv3d` on flex, and on a Vulkan device. It was
//! the H200's fastest path at 96³ and 128³; the tiled kernels have not run there yet, so it
//! stays selectable (`gdl-lab bench --conv gemm`).
//!
//! The padded input is read as `T = kd·kh·kw` strided views (slices, so autodiff can send the
//! input gradient back through them) and stacked into columns `[B·S, C·T, V/S]`, which are
//! multiplied by the weights `[Cout, C·T]`.
//!
//! The output depth is cut into `S` chunks that become matmul batches, so the weight gradient
//! (a reduction over every voxel) runs as `B·S` independent matmuls rather than one with a K of
//! 262 144 that leaves most of the GPU idle; and a layer whose columns would exceed
//! [`MAX_COLUMN_BYTES`] runs in depth slabs, so that no single buffer outgrows what a GPU (or a
//! browser's WebGPU) binds. The price is memory: the columns are `T` (27) times the
//! layer's input, and autodiff keeps them for the backward pass.

use std::sync::atomic::{AtomicU8, Ordering};

use burn::nn::PaddingConfig3d;
use burn::nn::conv::Conv3d;
use burn::prelude::*;
use burn::tensor::module::conv3d as burn_conv3d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Slice, s};
use serde::{Deserialize, Serialize};

/// The largest column buffer one matmul gets; bigger layers run in depth slabs. 128 MiB is
/// WebGPU's default `maxStorageBufferBindingSize`, what Chrome grants unless asked for more
/// (and lavapipe's limit), so every device binds it.
pub const MAX_COLUMN_BYTES: usize = 128 << 20;

/// The output voxels one matmul batch of the gemm path should cover: enough for the weight
/// gradient's per-batch matmul to be worth a launch, few enough that there are many batches.
const TARGET_CHUNK_VOXELS: usize = 4096;

/// How the nets run their 3D convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgorithm {
    /// The project's own kernels on every device: on a GPU the tiled kernels, on flex the CPU
    /// convolution (`kernels/cpu.rs`: im2col tiles and `gemm` on rayon's threads, 2.1× faster
    /// than burn-flex's `conv3d` for a Target 64³ step, BENCHMARKS.md, section a). The tiled
    /// kernels need no autotuning, so the browser, where it is off, runs the same kernels as
    /// native; on lavapipe they made the nets' steps 1.5–2.6× faster than burn's, with a first
    /// step of seconds where burn's autotuning took minutes, and the page's WebGPU steps
    /// 3.7–4.6× faster (BENCHMARKS.md, "GPU").
    #[default]
    Auto,
    /// Always the project's own kernels ([`super::kernels`], and the U-Net's fused
    /// InstanceNorm + LeakyReLU, [`super::norm`], written in burn's tensor operations on flex).
    Tiled,
    /// Always im2col + matmul ([`conv3d_gemm`]).
    Gemm,
    /// Always burn's `conv3d`.
    Burn,
}

impl ConvAlgorithm {
    const ALL: [ConvAlgorithm; 4] = [Self::Auto, Self::Tiled, Self::Gemm, Self::Burn];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Tiled => "tiled",
            Self::Gemm => "gemm",
            Self::Burn => "burn",
        }
    }

    /// The path a layer takes: never [`ConvAlgorithm::Auto`]. (The device decides what the
    /// project's kernels are, not whether they run.)
    pub fn path(self) -> ConvAlgorithm {
        match self {
            Self::Auto => Self::Tiled,
            chosen => chosen,
        }
    }
}

/// The process-wide choice, for benchmarks that compare the paths (`gdl-lab bench --conv`).
static ALGORITHM: AtomicU8 = AtomicU8::new(0);

pub fn set_algorithm(algorithm: ConvAlgorithm) {
    let index = ConvAlgorithm::ALL.iter().position(|a| *a == algorithm);
    ALGORITHM.store(index.unwrap_or(0) as u8, Ordering::Relaxed);
}

pub fn algorithm() -> ConvAlgorithm {
    ConvAlgorithm::ALL[ALGORITHM.load(Ordering::Relaxed) as usize % ConvAlgorithm::ALL.len()]
}

/// `conv.forward(input)`, through the path chosen for the input's device.
pub fn forward(conv: &Conv3d, input: Tensor<5>) -> Tensor<5> {
    let bias = conv.bias.as_ref().map(|bias| bias.val());
    forward_with_bias(conv, input, bias)
}

/// `conv.forward(input)` without the bias, for a layer whose output is instance-normalised
/// next: the norm subtracts each channel's mean, so the bias cancels exactly and its gradient is
/// 0. Skipping it saves the bias's add and the reduction of its gradient over every voxel. (Where
/// a layer falls back to burn's `Conv3d::forward`, the bias is added as usual: it cancels too.)
pub fn forward_without_bias(conv: &Conv3d, input: Tensor<5>) -> Tensor<5> {
    forward_with_bias(conv, input, None)
}

fn forward_with_bias(conv: &Conv3d, input: Tensor<5>, bias: Option<Tensor<1>>) -> Tensor<5> {
    let padding = match &conv.padding {
        PaddingConfig3d::Explicit(d, h, w) => Some([*d, *h, *w]),
        PaddingConfig3d::Valid => Some([0; 3]),
        _ => None,
    };
    let Some(padding) = padding.filter(|_| conv.groups == 1 && conv.dilation == [1; 3]) else {
        return conv.forward(input);
    };
    let weight = conv.weight.val();
    let [_, _, kd, kh, kw] = weight.dims();
    let uniform = |axes: [usize; 3]| axes.iter().all(|axis| *axis == axes[0]);
    let tiled_applies = uniform(conv.stride) && uniform(padding) && kd == kh && kh == kw;
    match algorithm().path() {
        ConvAlgorithm::Gemm => conv3d_gemm(input, weight, bias, conv.stride, padding),
        ConvAlgorithm::Tiled if tiled_applies => {
            super::kernels::conv3d_tiled(input, weight, bias, conv.stride[0], padding[0])
        }
        _ => conv.forward(input),
    }
}

/// burn's `conv3d` with the same arguments as [`conv3d_gemm`], for comparisons.
pub fn conv3d_burn(
    input: Tensor<5>,
    weight: Tensor<5>,
    bias: Option<Tensor<1>>,
    stride: [usize; 3],
    padding: [usize; 3],
) -> Tensor<5> {
    burn_conv3d(
        input,
        weight,
        bias,
        ConvOptions::new(stride, padding, [1; 3], 1),
    )
}

/// A 3D convolution (groups 1, dilation 1) of `input` `[B, C, D, H, W]` with `weight`
/// `[Cout, C, kd, kh, kw]`, zero `padding` on both sides of each axis, as im2col + matmul.
pub fn conv3d_gemm(
    input: Tensor<5>,
    weight: Tensor<5>,
    bias: Option<Tensor<1>>,
    stride: [usize; 3],
    padding: [usize; 3],
) -> Tensor<5> {
    conv3d_gemm_in_slabs(input, weight, bias, stride, padding, MAX_COLUMN_BYTES)
}

/// [`conv3d_gemm`] with another cap on one matmul's column buffer (tests use a small one to
/// exercise the depth slabs).
pub fn conv3d_gemm_in_slabs(
    input: Tensor<5>,
    weight: Tensor<5>,
    bias: Option<Tensor<1>>,
    stride: [usize; 3],
    padding: [usize; 3],
    max_column_bytes: usize,
) -> Tensor<5> {
    let output = in_slabs(input, weight, stride, padding, max_column_bytes);
    match bias {
        Some(bias) => {
            let channels_out = bias.dims()[0];
            output + bias.reshape([1, channels_out, 1, 1, 1])
        }
        None => output,
    }
}

/// Pads `input`, runs im2col + matmul over depth slabs whose columns stay within
/// `max_column_bytes`, and concatenates the slabs' outputs along depth (no bias).
fn in_slabs(
    input: Tensor<5>,
    weight: Tensor<5>,
    stride: [usize; 3],
    padding: [usize; 3],
    max_column_bytes: usize,
) -> Tensor<5> {
    let [batch, channels, _, _, _] = input.dims();
    let [channels_out, weight_channels, kd, kh, kw] = weight.dims();
    assert_eq!(
        channels, weight_channels,
        "conv3d: the input has {channels} channels, the weights expect {weight_channels}"
    );
    let padded = if padding == [0; 3] {
        input
    } else {
        let [pd, ph, pw] = padding;
        input.pad([(pd, pd), (ph, ph), (pw, pw)], PadMode::Constant(0.0))
    };
    let [_, _, depth, height, width] = padded.dims();
    let out_edge = |size: usize, kernel: usize, step: usize| {
        assert!(
            size >= kernel,
            "conv3d: a padded edge of {size} is smaller than the kernel ({kernel})"
        );
        (size - kernel) / step + 1
    };
    let kernel = [kd, kh, kw];
    let out_dims = [
        out_edge(depth, kd, stride[0]),
        out_edge(height, kh, stride[1]),
        out_edge(width, kw, stride[2]),
    ];
    // [Cout, C, kd, kh, kw] → [1, Cout, C·T]: the column order is (channel, tap).
    let weight = weight.reshape([1, channels_out, channels * kd * kh * kw]);
    let slab = |window: Tensor<5>, dims: [usize; 3]| {
        let (columns, planes_per_batch) = columns(window, kernel, stride, dims);
        let [out_d, out_h, out_w] = dims;
        // [1, Cout, C·T] × [B·S, C·T, V/S] → [B·S, Cout, V/S] → [B, Cout, D, H, W].
        weight
            .clone()
            .matmul(columns)
            .reshape([
                batch,
                out_d / planes_per_batch,
                channels_out,
                planes_per_batch,
                out_h,
                out_w,
            ])
            .swap_dims(1, 2)
            .reshape([batch, channels_out, out_d, out_h, out_w])
    };

    let column_bytes_per_plane = 4 * batch * channels * kd * kh * kw * out_dims[1] * out_dims[2];
    let slab_depth = (max_column_bytes / column_bytes_per_plane.max(1)).clamp(1, out_dims[0]);
    if slab_depth >= out_dims[0] {
        return slab(padded, out_dims);
    }
    // Each slab of output planes reads its own window of the padded input, with the halo the
    // kernel needs.
    let slabs = (0..out_dims[0])
        .step_by(slab_depth)
        .map(|first| {
            let planes = slab_depth.min(out_dims[0] - first);
            let start = first * stride[0];
            let end = (first + planes - 1) * stride[0] + kd;
            let window = padded.clone().slice(s![.., .., start..end, .., ..]);
            slab(window, [planes, out_dims[1], out_dims[2]])
        })
        .collect();
    Tensor::cat(slabs, 2)
}

/// The columns of one slab of a padded input, `[B·S, C·T, V/S]` with the column order
/// (channel, tap), and how many output planes each of the `B·S` batches covers: `T` strided
/// slices stacked into one tensor, so that autodiff sends the input gradient back through
/// each slice. (`unfold` would make them with one copy, but burn's backward of `unfold` loops
/// over windows, one launch each.)
fn columns(
    padded: Tensor<5>,
    kernel: [usize; 3],
    stride: [usize; 3],
    out_dims: [usize; 3],
) -> (Tensor<3>, usize) {
    let [batch, channels, _, _, _] = padded.dims();
    let [out_d, out_h, out_w] = out_dims;
    let plane = out_h * out_w;
    let planes_per_batch = chunk_depth(out_d, plane);
    let chunks = out_d / planes_per_batch;
    let taps = kernel[0] * kernel[1] * kernel[2];
    let along = |offset: usize, step: usize, count: usize| {
        Slice::new(
            offset as isize,
            Some((offset + step * (count - 1) + 1) as isize),
            step as isize,
        )
    };
    let mut views = Vec::with_capacity(taps);
    for a in 0..kernel[0] {
        for b in 0..kernel[1] {
            for c in 0..kernel[2] {
                // The input voxels tap (a, b, c) of every output voxel reads, as
                // [B, C, S, D/S, H, W] → [B, S, C, D/S, H, W].
                let view = padded
                    .clone()
                    .slice([
                        Slice::full(),
                        Slice::full(),
                        along(a, stride[0], out_d),
                        along(b, stride[1], out_h),
                        along(c, stride[2], out_w),
                    ])
                    .reshape([batch, channels, chunks, planes_per_batch, out_h, out_w])
                    .swap_dims(1, 2);
                views.push(view);
            }
        }
    }
    // [B, S, C, T, D/S, H, W], written once, contiguous → [B·S, C·T, V/S].
    let columns = if taps == 1 {
        views.pop().expect("one tap").unsqueeze_dim::<7>(3)
    } else {
        Tensor::stack::<7>(views, 3)
    }
    .reshape([batch * chunks, channels * taps, planes_per_batch * plane]);
    (columns, planes_per_batch)
}

/// Output planes per matmul batch: the smallest divisor of `depth` whose chunk holds at least
/// [`TARGET_CHUNK_VOXELS`] voxels (or all of `depth`).
fn chunk_depth(depth: usize, plane: usize) -> usize {
    (1..=depth)
        .find(|&planes| depth.is_multiple_of(planes) && planes * plane >= TARGET_CHUNK_VOXELS)
        .unwrap_or(depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_divide_the_depth_and_reach_the_target_size() {
        assert_eq!(chunk_depth(64, 64 * 64), 1);
        assert_eq!(chunk_depth(32, 32 * 32), 4);
        assert_eq!(chunk_depth(16, 16 * 16), 16);
        assert_eq!(chunk_depth(7, 100), 7);
        assert_eq!(chunk_depth(12, 1000), 6);
    }
}
