//! The nets: shapes, sizes, and Net2Net widening that keeps the function.
#![cfg(not(target_arch = "wasm32"))]

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Distribution;
use gdl_lab::model::{
    ModelKind, Simple3DModelConfig, Target3DModelConfig, UNet3dConfig, unet::upsample_nearest,
    widen_simple_to_target,
};

mod common;

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
fn one_channel_nets_are_the_seeds_and_each_modality_adds_only_first_layer_weights() {
    let device = flex();
    // The seed's parameter counts, with 1 channel by default and when asked for.
    let one = [
        (
            ModelKind::Simple,
            (8 * 27 + 8) + (16 * 8 * 27 + 16) + (4 * 16 + 4),
            8,
        ),
        (
            ModelKind::Target,
            (16 * 27 + 16) + (32 * 16 * 27 + 32) + (64 * 32 * 27 + 64) + (4 * 64 + 4),
            16,
        ),
        (
            ModelKind::Unet,
            ModelKind::Unet.init(4, &device).num_params(),
            8,
        ),
    ];
    for (kind, seed_count, first_filters) in one {
        assert_eq!(kind.init(4, &device).num_params(), seed_count, "{kind:?}");
        assert_eq!(
            kind.init_for(1, 4, &device).num_params(),
            seed_count,
            "{kind:?}"
        );
        let four = kind.init_for(4, 4, &device);
        assert_eq!(four.in_channels(), 4);
        // Three more input channels: three more 3×3×3 kernels per filter of the first layer.
        assert_eq!(
            four.num_params(),
            seed_count + 3 * 27 * first_filters,
            "{kind:?}"
        );
        let output = four.forward(Tensor::zeros([1, 4, 8, 8, 8], &device));
        assert_eq!(output.dims(), [1, 4, 8, 8, 8], "{kind:?}");
    }
}

#[test]
fn widening_a_four_channel_net_keeps_the_function_within_1e_5() {
    let device = flex();
    device.seed(5);
    let simple = Simple3DModelConfig::new()
        .with_in_channels(4)
        .with_num_classes(4)
        .init(&device);
    let target = widen_simple_to_target(&simple, 0.0);
    assert_eq!(target.conv1.weight.dims(), [16, 4, 3, 3, 3]);
    for _ in 0..3 {
        let input = Tensor::<5>::random([2, 4, 9, 10, 11], Distribution::Normal(0.0, 1.0), &device);
        let difference = max_abs_difference(simple.forward(input.clone()), target.forward(input));
        assert!(
            difference <= 1e-5,
            "Target(x) − Simple(x) reaches {difference} with four channels"
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

/// Which convolution a test runs, with the column cap of the matmul paths.
#[derive(Clone, Copy, Debug)]
enum Path {
    Burn,
    Gemm(usize),
}

/// One convolution's output and its three gradients (input, weight, bias) on flex.
fn convolution_and_gradients(
    path: Path,
    input: &Tensor<5>,
    weight: &Tensor<5>,
    bias: &Tensor<1>,
    stride: [usize; 3],
    padding: [usize; 3],
) -> [Vec<f32>; 4] {
    use gdl_lab::model::conv::{conv3d_burn, conv3d_gemm_in_slabs};
    let input = input.clone().require_grad();
    let weight = weight.clone().require_grad();
    let bias = bias.clone().require_grad();
    let (x, w, b) = (input.clone(), weight.clone(), Some(bias.clone()));
    let output = match path {
        Path::Burn => conv3d_burn(x, w, b, stride, padding),
        Path::Gemm(cap) => conv3d_gemm_in_slabs(x, w, b, stride, padding, cap),
    };
    // A loss whose gradient differs at every output voxel, so no tap can hide.
    let [b, c, d, h, w] = output.dims();
    let ramp = Tensor::<1, Int>::arange(0..(b * c * d * h * w) as i64, &output.device())
        .float()
        .reshape([b, c, d, h, w])
        .sin();
    let gradients = (output.clone() * ramp).sum().backward();
    let values = |tensor: Tensor<5>| tensor.into_data().try_to_vec::<f32>().unwrap();
    [
        values(output),
        values(input.grad(&gradients).expect("input gradient")),
        values(weight.grad(&gradients).expect("weight gradient")),
        bias.grad(&gradients)
            .expect("bias gradient")
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    ]
}

/// Batch, channels in → out, dims, kernel edge, stride, padding, column cap.
type ConvCase = (usize, [usize; 2], [usize; 3], usize, usize, usize, usize);

#[test]
fn the_im2col_matmul_convolution_matches_burns_conv3d_with_its_gradients() {
    let device = flex().autodiff();
    device.seed(3);
    // (batch, channels in → out, dims, kernel, stride, padding, column cap): the nets' layers
    // (k3 p1 stride 1 and 2, k1), odd and anisotropic dims, and tiny caps that force depth slabs.
    let cases: [ConvCase; 8] = [
        (1, [1, 8], [6, 7, 5], 3, 1, 1, usize::MAX),
        (2, [3, 5], [8, 6, 7], 3, 1, 1, usize::MAX),
        (2, [4, 6], [9, 8, 6], 3, 2, 1, usize::MAX),
        (1, [5, 3], [7, 5, 9], 1, 1, 0, usize::MAX),
        (2, [2, 4], [5, 6, 4], 3, 1, 0, usize::MAX),
        (1, [3, 4], [11, 6, 5], 3, 1, 1, 4 * 3 * 27 * 30 * 2),
        (2, [3, 2], [9, 7, 6], 3, 2, 1, 1),
        (1, [2, 3], [32, 33, 31], 3, 1, 1, usize::MAX),
    ];
    for (batch, [cin, cout], [d, h, w], k, stride, padding, cap) in cases {
        let input = Tensor::<5>::random(
            [batch, cin, d, h, w],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let weight = Tensor::<5>::random(
            [cout, cin, k, k, k],
            Distribution::Normal(0.0, 0.3),
            &device,
        );
        let bias = Tensor::<1>::random([cout], Distribution::Normal(0.0, 1.0), &device);
        let run = |path| {
            convolution_and_gradients(path, &input, &weight, &bias, [stride; 3], [padding; 3])
        };
        let reference = run(Path::Burn);
        let ours = run(Path::Gemm(cap));
        let what = format!("a {k}³ stride-{stride} conv {cin}→{cout} on {d}×{h}×{w} (cap {cap})");
        common::assert_convolutions_agree(&ours, &reference, &what);
    }
}

#[test]
fn every_net_gives_the_same_logits_through_either_convolution() {
    use gdl_lab::model::conv::{ConvAlgorithm, set_algorithm};
    let device = flex();
    let input = Tensor::<5>::random([1, 1, 8, 12, 16], Distribution::Normal(0.0, 1.0), &device);
    for kind in ModelKind::ALL {
        let net = kind.init(3, &device);
        set_algorithm(ConvAlgorithm::Burn);
        let burn = net.forward(input.clone());
        set_algorithm(ConvAlgorithm::Gemm);
        let gemm = net.forward(input.clone());
        set_algorithm(ConvAlgorithm::Auto);
        let difference = max_abs_difference(burn, gemm);
        assert!(difference < 1e-4, "{kind:?}: {difference}");
    }
}

/// The PyTorch export's names and shapes: the seed's module names for Simple and Target, the
/// documented layout for the U-Net (InstanceNorm's gamma/beta as weight/bias), no burn prefix.
#[test]
fn the_pytorch_export_uses_the_seeds_names_and_pytorchs_shapes() {
    use gdl_lab::model::weights::{pytorch_key, to_safetensors_named};
    let keys = |kind: ModelKind| {
        let net = kind.init(4, &flex());
        let bytes = pollster::block_on(to_safetensors_named(&net, &[], pytorch_key)).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut named: Vec<(String, Vec<usize>)> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect();
        named.sort();
        named
    };
    let simple = keys(ModelKind::Simple);
    let expected: Vec<(String, Vec<usize>)> = [
        ("conv1.bias", vec![8]),
        ("conv1.weight", vec![8, 1, 3, 3, 3]),
        ("conv2.bias", vec![16]),
        ("conv2.weight", vec![16, 8, 3, 3, 3]),
        ("conv3.bias", vec![4]),
        ("conv3.weight", vec![4, 16, 1, 1, 1]),
    ]
    .into_iter()
    .map(|(name, shape)| (name.to_string(), shape))
    .collect();
    assert_eq!(simple, expected);
    let target: Vec<String> = keys(ModelKind::Target)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        target,
        [
            "conv1.bias",
            "conv1.weight",
            "conv2.bias",
            "conv2.weight",
            "conv3.bias",
            "conv3.weight",
            "conv4.bias",
            "conv4.weight"
        ]
    );
    let unet = keys(ModelKind::Unet);
    let has = |name: &str, shape: &[usize]| unet.iter().any(|(n, s)| n == name && s == shape);
    assert!(has("encode1.0.conv.weight", &[8, 1, 3, 3, 3]), "{unet:?}");
    assert!(has("encode1.1.norm.weight", &[8]) && has("encode1.1.norm.bias", &[8]));
    assert!(has("down1.conv.weight", &[16, 8, 3, 3, 3]));
    assert!(has("decode2.conv.weight", &[16, 32, 3, 3, 3]));
    assert!(has("head.weight", &[4, 8, 1, 1, 1]));
    // Ten blocks of conv weight and bias and norm weight and bias, and the head's two.
    assert_eq!(unet.len(), 10 * 4 + 2);
    assert!(
        unet.iter()
            .all(|(n, _)| !n.contains("gamma") && !n.contains("beta") && !n.starts_with("Unet"))
    );
}

#[test]
fn weights_load_back_under_either_naming_and_a_file_for_another_net_is_refused_by_name() {
    use gdl_lab::model::weights::{from_safetensors, pytorch_key, to_safetensors_named};
    use gdl_lab::model::weights_info::describe_weights;
    let device = flex();
    let input = Tensor::<5>::random([1, 4, 8, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    for kind in ModelKind::ALL {
        let net = kind.init_for(4, 3, &device);
        let expected = net.forward(input.clone());
        let metadata = [
            ("format", "gdl-lab".to_string()),
            ("model", kind.name().to_string()),
            ("channels", "t1,t1ce,t2,flair".to_string()),
            ("label_values", "0,1,4".to_string()),
        ];
        // gdl-lab's own file (burn's module paths, its metadata) and a PyTorch state_dict's
        // (PyTorch's names, no metadata: what `safetensors.torch.save_file` writes).
        let own = pollster::block_on(to_safetensors_named(&net, &metadata, str::to_string));
        let torch = pollster::block_on(to_safetensors_named(&net, &[], pytorch_key));
        for (file, named) in [(own.unwrap(), true), (torch.unwrap(), false)] {
            let info = describe_weights(&file, &device).unwrap();
            assert_eq!(
                (
                    info.kind,
                    info.in_channels,
                    info.classes,
                    info.pytorch_names
                ),
                (kind, 4, 3, !named)
            );
            if named {
                assert_eq!(info.channels, ["t1", "t1ce", "t2", "flair"]);
                assert_eq!(info.label_values, Some(vec![0, 1, 4]));
            } else {
                assert!(info.channels.is_empty());
                assert_eq!(info.label_values, None);
            }
            let loaded = from_safetensors(&file, kind.init_for(4, 3, &device)).unwrap();
            let difference = max_abs_difference(loaded.forward(input.clone()), expected.clone());
            assert!(difference == 0.0, "{kind:?}: {difference}");
            // Another class count: a sentence naming the tensor and both shapes.
            let refused = from_safetensors(&file, kind.init_for(4, 5, &device)).unwrap_err();
            assert!(
                refused.contains("[3, ") && refused.contains("[5, "),
                "{kind:?}: {refused}"
            );
            // Another channel count.
            let refused = from_safetensors(&file, kind.init_for(1, 3, &device)).unwrap_err();
            assert!(refused.contains("weight"), "{kind:?}: {refused}");
        }
    }
    // A Simple net's file onto a Target net: the first tensor that differs, named.
    let simple = ModelKind::Simple.init_for(1, 4, &device);
    let file = pollster::block_on(to_safetensors_named(&simple, &[], pytorch_key)).unwrap();
    let refused = from_safetensors(&file, ModelKind::Target.init_for(1, 4, &device)).unwrap_err();
    assert!(
        refused.contains("conv1.weight") && refused.contains("[8, 1, 3, 3, 3]"),
        "{refused}"
    );
    // Not a weights file at all.
    let refused = describe_weights(b"not a safetensors file", &device).unwrap_err();
    assert!(refused.contains("not a .safetensors"), "{refused}");
}
