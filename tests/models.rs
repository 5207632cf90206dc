//! The nets: shapes, sizes, and Net2Net widening that keeps the function.
#![cfg(not(target_arch = "wasm32"))]

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Distribution;
use gdl_lab::model::{
    ModelKind, Simple3DModelConfig, Target3DModelConfig, UNet3dConfig, unet::upsample_nearest,
    widen_simple_to_target,
};

fn flex() -> Device {
    Device::flex()
}

fn max_abs_difference(a: Tensor<5>, b: Tensor<5>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn every_net_maps_one_channel_to_class_logits_of_the_same_size() {
    let device = flex();
    for kind in ModelKind::ALL {
        let net = kind.init(3, &device);
        let output = net.forward(Tensor::zeros([2, 1, 8, 12, 16], &device));
        assert_eq!(output.dims(), [2, 3, 8, 12, 16], "{kind:?}");
    }
}

#[test]
fn the_seed_nets_have_the_seed_layers() {
    let device = flex();
    let simple = Simple3DModelConfig::new().with_num_classes(4).init(&device);
    assert_eq!(
        simple.num_params(),
        (8 * 27 + 8) + (16 * 8 * 27 + 16) + (4 * 16 + 4)
    );
    let target = Target3DModelConfig::new().with_num_classes(4).init(&device);
    assert_eq!(
        target.num_params(),
        (16 * 27 + 16) + (32 * 16 * 27 + 32) + (64 * 32 * 27 + 64) + (4 * 64 + 4)
    );
}

#[test]
fn unet_has_three_levels_and_a_wider_view() {
    let device = flex();
    let unet = UNet3dConfig::new().with_num_classes(4).init(&device);
    // A single bright voxel: the U-Net's output moves far beyond the seed nets' 7 voxels.
    let mut impulse = vec![0.0f32; 16 * 16 * 16];
    impulse[8 + 16 * (8 + 16 * 8)] = 10.0;
    let input = Tensor::<5>::from_data(TensorData::new(impulse, [1, 1, 16, 16, 16]), &device);
    let response = (unet.forward(input) - unet.forward(Tensor::zeros([1, 1, 16, 16, 16], &device)))
        .abs()
        .sum_dim(1)
        .reshape([16, 16, 16]);
    // Voxel (0, 0, 0) is 8 voxels from the impulse on each axis.
    let far: f32 = response.slice([0..1, 0..1, 0..1]).into_scalar();
    assert!(far > 0.0, "the corner does not see the centre");
    assert!(unet.num_params() > 20_000 && unet.num_params() < 200_000);
}

#[test]
fn nearest_upsampling_repeats_each_voxel_into_a_2x2x2_block() {
    let device = flex();
    let input = Tensor::<5>::from_data(
        TensorData::new(
            (0..8).map(|v| v as f32).collect::<Vec<_>>(),
            [1, 1, 2, 2, 2],
        ),
        &device,
    );
    let output: Vec<f32> = upsample_nearest(input).into_data().try_to_vec().unwrap();
    for z in 0..4 {
        for y in 0..4 {
            for x in 0..4 {
                let source = (x / 2) + 2 * ((y / 2) + 2 * (z / 2));
                assert_eq!(output[x + 4 * (y + 4 * z)], source as f32);
            }
        }
    }
}

#[test]
fn widening_keeps_the_function_within_1e_5() {
    let device = flex();
    device.seed(3);
    let simple = Simple3DModelConfig::new().with_num_classes(4).init(&device);
    let target = widen_simple_to_target(&simple, 0.0);
    for _ in 0..3 {
        let input = Tensor::<5>::random([2, 1, 9, 10, 11], Distribution::Normal(0.0, 1.0), &device);
        let difference = max_abs_difference(simple.forward(input.clone()), target.forward(input));
        assert!(
            difference <= 1e-5,
            "Target(x) − Simple(x) reaches {difference}"
        );
    }
}

#[test]
fn widening_with_noise_stays_close_but_breaks_the_symmetry() {
    let device = flex();
    device.seed(4);
    let simple = Simple3DModelConfig::new().with_num_classes(4).init(&device);
    let target = widen_simple_to_target(&simple, 1e-3);
    let input = Tensor::<5>::random([1, 1, 8, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let difference = max_abs_difference(simple.forward(input.clone()), target.forward(input));
    assert!(difference > 0.0 && difference < 0.05, "{difference}");
    // The two copies of conv1's first filter now differ.
    let weight = target.conv1.weight.val();
    let copies = max_abs_difference(
        weight.clone().slice([0..1, 0..1, 0..3, 0..3, 0..3]),
        weight.slice([8..9, 0..1, 0..3, 0..3, 0..3]),
    );
    assert!(copies > 0.0);
}
