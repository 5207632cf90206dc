//! [`ConvKernels`] on flex: gdl-lab's CPU convolution ([`super::cpu`]) for `f32`, burn's own
//! convolution and its backward passes for any other element type.

use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{DType, Flex, TensorMetadata};
use burn::tensor::TensorData;

use super::ConvKernels;
use super::cpu::{self, ConvShape};

impl ConvKernels for Flex {
    fn tiled_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        transposed: bool,
    ) -> FloatTensor<Self> {
        // `transposed`: the weights are `[C, Cout, k, k, k]`, read swapped and flipped.
        let (channels_out, channels) = if transposed { (1, 0) } else { (0, 1) };
        if let Some(shape) = shape_of(&x, &weight, [channels_out, channels], stride, padding) {
            let (x, weight) = (f32s(&x), f32s(&weight));
            let weight = if transposed {
                cpu::flipped_transposed(&weight, shape.channels, shape.channels_out, shape.kernel)
                    .into()
            } else {
                weight
            };
            return tensor(cpu::forward(&x, &weight, shape), output_dims(shape));
        }
        let weight = if transposed {
            Self::float_flip(Self::float_swap_dims(weight, 0, 1), &[2, 3, 4])
        } else {
            weight
        };
        Self::conv3d(x, weight, None, options(stride, padding))
    }

    fn tiled_conv3d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        match shape_of(&x, &weight, [0, 1], stride, padding) {
            Some(shape) => {
                let gradient = cpu::input_grad(&f32s(&weight), &f32s(&output_grad), shape);
                tensor(gradient, x.shape().dims())
            }
            None => Self::conv3d_x_backward(x, weight, output_grad, options(stride, padding)),
        }
    }

    fn tiled_conv3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        match shape_of(&x, &weight, [0, 1], stride, padding) {
            Some(shape) => {
                let gradient = cpu::weight_grad(&f32s(&x), &f32s(&output_grad), shape);
                tensor(gradient, weight.shape().dims())
            }
            None => Self::conv3d_weight_backward(x, weight, output_grad, options(stride, padding)),
        }
    }
}

/// The convolution's sizes where the CPU kernels take it: `f32`, a cubic kernel, the channels
/// agreeing (`axes`: where the weights keep their output and input channels) and a kernel that
/// fits the padded input.
fn shape_of(
    x: &FlexTensor,
    weight: &FlexTensor,
    axes: [usize; 2],
    stride: usize,
    padding: usize,
) -> Option<ConvShape> {
    let [batch, channels, d, h, w] = x.shape().dims();
    let weight_dims: [usize; 5] = weight.shape().dims();
    let [_, _, kd, kh, kw] = weight_dims;
    let shape = ConvShape {
        batch,
        channels,
        channels_out: weight_dims[axes[0]],
        input: [d, h, w],
        kernel: kd,
        stride,
        padding,
    };
    let f32s = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    let fits = shape.output().is_some() && batch * channels > 0 && shape.channels_out > 0;
    (f32s && fits && kd == kh && kh == kw && weight_dims[axes[1]] == channels).then_some(shape)
}

fn output_dims(shape: ConvShape) -> [usize; 5] {
    let [d, h, w] = shape.output().expect("checked in shape_of");
    [shape.batch, shape.channels_out, d, h, w]
}

/// The tensor's elements in order (a copy only where its layout is not already contiguous).
fn f32s(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) if values.len() == tensor.shape().num_elements() => values.into(),
        _ => tensor
            .to_contiguous()
            .as_slice::<f32>()
            .expect("contiguous f32")
            .to_vec()
            .into(),
    }
}

fn tensor(values: Vec<f32>, dims: [usize; 5]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

fn options(stride: usize, padding: usize) -> ConvOptions<3> {
    ConvOptions::new([stride; 3], [padding; 3], [1; 3], 1)
}
