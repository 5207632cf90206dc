//! Initialise `Target3DModel` from a trained `Simple3DModel` so that it computes the same
//! function (Net2Net, Chen et al. 2015).
//!
//! The seed copied 8-filter weights into 16-filter layers, which breaks the very next layer.
//! Here instead:
//! - **widen** conv1 (8→16 filters) and conv2 (16→32) by replicating output channels; each layer
//!   that reads replicated channels divides the matching input weights by the number of copies,
//!   so the sums are unchanged;
//! - **deepen** with an identity 3×3×3 conv as conv3 (exact, because its input is already ReLU'd);
//! - the head reads 64 channels that are 4 copies of Simple's 16, weighted by ¼.
//!
//! Every step is a tensor op on the device (`select`, scaling), so it also runs in the browser,
//! where reading weights back synchronously is impossible.

use burn::module::Param;
use burn::nn::conv::Conv3d;
use burn::prelude::*;
use burn::tensor::Distribution;

use super::simple::Simple3DModel;
use super::target::{Target3DModel, Target3DModelConfig};

/// Which source channel each of `to` channels copies (`i mod from`) and how many copies each
/// source has.
fn replicas(from: usize, to: usize) -> (Vec<i64>, f64) {
    assert!(
        to.is_multiple_of(from),
        "{to} channels are not whole copies of {from}"
    );
    (
        (0..to).map(|i| (i % from) as i64).collect(),
        (to / from) as f64,
    )
}

fn indices(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// `conv` with its outputs replicated to `out` channels and its inputs read from `input`
/// channels that are copies of its own (weights split by the copy count).
fn widen_conv(conv: &Conv3d, input: usize, out: usize, noise: f64) -> (Tensor<5>, Tensor<1>) {
    let weight = conv.weight.val();
    let device = weight.device();
    let [out_before, in_before, ..] = weight.dims();
    let (out_map, _) = replicas(out_before, out);
    let (in_map, copies) = replicas(in_before, input);
    let mut weight = weight
        .select(0, indices(out_map.clone(), &device))
        .select(1, indices(in_map, &device))
        .div_scalar(copies);
    if noise > 0.0 {
        // Replicas get identical gradients forever; a little noise lets them diverge.
        weight = weight.clone()
            + weight
                .random_like(Distribution::Normal(0.0, 1.0))
                .mul_scalar(noise);
    }
    let bias = conv
        .bias
        .as_ref()
        .expect("the seed's convs have biases")
        .val()
        .select(0, indices(out_map, &device));
    (weight, bias)
}

fn set(conv: &mut Conv3d, weight: Tensor<5>, bias: Tensor<1>) {
    conv.weight = Param::from_tensor(weight.detach());
    conv.bias = Some(Param::from_tensor(bias.detach()));
}

/// Target3DModel computing the same function as `simple` (exactly, up to f32 rounding, when
/// `noise` is 0). `noise` is the standard deviation of Gaussian noise added to the widened
/// weights; keep it small (≈1e-3).
pub fn widen_simple_to_target(simple: &Simple3DModel, noise: f64) -> Target3DModel {
    let device = simple.conv1.weight.val().device();
    let classes = simple.conv3.weight.dims()[0];
    let channels = simple.conv1.weight.dims()[1];
    let mut target = Target3DModelConfig::new()
        .with_in_channels(channels)
        .with_num_classes(classes)
        .init(&device);

    // The input channels are not widened: each modality is read once, as before.
    let (weight, bias) = widen_conv(&simple.conv1, channels, 16, noise);
    set(&mut target.conv1, weight, bias);
    let (weight, bias) = widen_conv(&simple.conv2, 16, 32, noise);
    set(&mut target.conv2, weight, bias);

    // conv3: output channel o copies input channel o mod 32 (the kernel's centre tap is 1).
    let mut identity = vec![0.0f32; 64 * 32 * 27];
    for out in 0..64 {
        identity[(out * 32 + out % 32) * 27 + 13] = 1.0;
    }
    let identity = Tensor::from_data(TensorData::new(identity, [64, 32, 3, 3, 3]), &device);
    set(&mut target.conv3, identity, Tensor::zeros([64], &device));

    // conv4 reads 64 channels: 4 copies of Simple's 16.
    let (weight, bias) = widen_conv(&simple.conv3, 64, classes, 0.0);
    set(&mut target.conv4, weight, bias);
    target
}
