//! gdl-lab's own GPU kernels (the tiled convolutions, the fused InstanceNorm + LeakyReLU, the
//! monitor's maxima) and the im2col + matmul convolution on a real wgpu device against burn's
//! operations on flex: the GPU path must give the CPU's numbers, outputs and gradients. On CI the device is Mesa's
//! lavapipe (a Vulkan driver on the CPU, installed by `./x test`), so this runs where no GPU is.
#![cfg(not(target_arch = "wasm32"))]

use burn::module::{Module, Param};
use burn::nn::{InstanceNormConfig, LeakyReluConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use gdl_lab::loss::maxima::volume_maxima;
use gdl_lab::model::ModelKind;
use gdl_lab::model::conv::{conv3d_burn, conv3d_gemm_in_slabs};
use gdl_lab::model::kernels::conv3d_tiled;
use gdl_lab::model::norm::instance_norm_leaky_relu;

mod common;

/// The wgpu device, initialised once for the tests of this file (burn's wgpu runtime registers
/// once per process).
fn wgpu() -> Device {
    wgpu_compute().device
}

/// [`wgpu`] with its adapter's description.
fn wgpu_compute() -> gdl_lab::backend::ComputeDevice {
    static DEVICE: std::sync::OnceLock<gdl_lab::backend::ComputeDevice> =
        std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| match pollster::block_on(gdl_lab::backend::init_wgpu()) {
            Ok(compute) => compute,
            Err(reason) => panic!(
                "no wgpu device ({reason}); `./x test` installs Mesa's Vulkan driver \
                     (apt install mesa-vulkan-drivers)"
            ),
        })
        .clone()
}

/// The convolution algorithm and the tile sizes are process-wide: a test that sets them, or runs
/// the tiled kernels on wgpu, holds this lock so that the tests running beside it do not change
/// them under it. Dropping it (also when the test fails) puts both back to their defaults.
fn exclusive() -> Exclusive {
    static GLOBALS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    Exclusive(
        GLOBALS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

struct Exclusive(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Drop for Exclusive {
    fn drop(&mut self) {
        gdl_lab::model::conv::set_algorithm(gdl_lab::model::conv::ConvAlgorithm::Auto);
        gdl_lab::model::kernels::tiles::set_tiles(Default::default());
        gdl_lab::model::kernels::planted::plant_wrong_gradients(false);
    }
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

/// Which convolution runs, with the column cap of the matmul paths.
#[derive(Clone, Copy, Debug)]
enum Path {
    Burn,
    Gemm(usize),
    Tiled,
}

/// Output, input gradient, weight gradient and bias gradient of one convolution on `device`.
fn run(
    device: &Device,
    path: Path,
    data: &[TensorData; 3],
    stride: usize,
    padding: usize,
) -> [Vec<f32>; 4] {
    let device = device.clone().autodiff();
    let input = Tensor::<5>::from_data(data[0].clone(), &device).require_grad();
    let weight = Tensor::<5>::from_data(data[1].clone(), &device).require_grad();
    let bias = Tensor::<1>::from_data(data[2].clone(), &device).require_grad();
    let (stride, padding) = ([stride; 3], [padding; 3]);
    let (x, w, b) = (input.clone(), weight.clone(), Some(bias.clone()));
    let output = match path {
        Path::Burn => conv3d_burn(x, w, b, stride, padding),
        Path::Gemm(cap) => conv3d_gemm_in_slabs(x, w, b, stride, padding, cap),
        Path::Tiled => conv3d_tiled(x, w, b, stride[0], padding[0]),
    };
    // The upstream gradient, made on the CPU so that both devices get the same numbers.
    let dims = output.dims();
    let ramp: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|i| (i as f32).sin())
        .collect();
    let ramp = Tensor::<5>::from_data(TensorData::new(ramp, dims), &device);
    let gradients = (output.clone() * ramp).sum().backward();
    [
        values(output),
        values(input.grad(&gradients).expect("input gradient")),
        values(weight.grad(&gradients).expect("weight gradient")),
        values(bias.grad(&gradients).expect("bias gradient")),
    ]
}

/// Channels in → out, dims, kernel edge, stride, padding, column cap.
type ConvCase = ([usize; 2], [usize; 3], usize, usize, usize, usize);

/// The random input, weights and bias of one case, made on the CPU.
fn case_data(cin: usize, cout: usize, dims: [usize; 3], k: usize, batch: usize) -> [TensorData; 3] {
    let cpu = Device::flex();
    let [d, h, w] = dims;
    [
        Tensor::<5>::random([batch, cin, d, h, w], Distribution::Normal(0.0, 1.0), &cpu)
            .into_data(),
        Tensor::<5>::random([cout, cin, k, k, k], Distribution::Normal(0.0, 0.3), &cpu).into_data(),
        Tensor::<1>::random([cout], Distribution::Normal(0.0, 1.0), &cpu).into_data(),
    ]
}

/// Channels in → out, dims, kernel edge, stride, padding, batch.
type TiledCase = ([usize; 2], [usize; 3], usize, usize, usize, usize);

/// The nets' layers (k3 p1
/// stride 1 and 2, k1), valid padding (stride 1 and 2), widths that are not a multiple of the
/// kernels' 4- and 8-voxel tiles, channel counts that take every channel tile (8, 4, 2, 1), and
/// enough input channels (48 × 3 taps) for the weight gradient to need two workgroups a chunk.
const TILED_CASES: [TiledCase; 9] = [
    ([3, 5], [9, 8, 7], 3, 1, 1, 2),
    ([4, 16], [6, 5, 10], 3, 1, 1, 1),
    ([4, 6], [9, 8, 6], 3, 2, 1, 2),
    ([5, 4], [7, 5, 9], 1, 1, 0, 1),
    ([1, 8], [12, 11, 13], 3, 1, 1, 2),
    ([2, 4], [7, 6, 9], 3, 1, 0, 1),
    ([8, 3], [5, 7, 11], 3, 2, 1, 1),
    ([3, 4], [9, 7, 10], 3, 2, 0, 1),
    ([48, 8], [5, 6, 9], 3, 1, 1, 1),
];

/// On flex the extension is gdl-lab's CPU convolution (`model/kernels/cpu.rs`) and its backward
/// pass: output, input gradient, weight gradient and bias gradient must be burn's on the CPU.
#[test]
fn the_cpu_convolutions_give_burns_numbers_on_flex() {
    let cpu = Device::flex();
    cpu.seed(5);
    for ([cin, cout], dims, k, stride, padding, batch) in TILED_CASES {
        let data = case_data(cin, cout, dims, k, batch);
        let reference = run(&cpu, Path::Burn, &data, stride, padding);
        let ours = run(&cpu, Path::Tiled, &data, stride, padding);
        let what =
            format!("CPU {k}³ stride-{stride} pad-{padding} conv {cin}→{cout} on {dims:?} on flex");
        common::assert_convolutions_agree(&ours, &reference, &what);
    }
}

/// The same on shapes drawn at random (a fixed seed, so a failure repeats): kernel 1 or 3,
/// stride 1 or 2, padding 0 or 1, odd and even edges, batches of 1 to 3, and channel counts up to
/// 40 (a layer of 40 × 27 columns rows splits into several tiles and weight-gradient groups).
#[test]
fn the_cpu_convolutions_give_burns_numbers_on_random_shapes() {
    use rand::{RngExt, SeedableRng};
    let cpu = Device::flex();
    cpu.seed(9);
    let mut rng = rand::rngs::StdRng::seed_from_u64(30);
    for _ in 0..24 {
        let k = if rng.random_bool(0.7) { 3 } else { 1 };
        let stride = rng.random_range(1..=2);
        let padding = if k == 3 { rng.random_range(0..=1) } else { 0 };
        let dims = [0; 3].map(|_| rng.random_range(3..=13));
        let cin = if rng.random_bool(0.2) {
            40
        } else {
            rng.random_range(1..=6)
        };
        let (cout, batch) = (rng.random_range(1..=9), rng.random_range(1..=3));
        let data = case_data(cin, cout, dims, k, batch);
        let reference = run(&cpu, Path::Burn, &data, stride, padding);
        let ours = run(&cpu, Path::Tiled, &data, stride, padding);
        let what = format!(
            "CPU {k}³ stride-{stride} pad-{padding} conv {cin}→{cout} on {batch}×{dims:?} on flex"
        );
        common::assert_convolutions_agree(&ours, &reference, &what);
    }
}

#[test]
fn the_gpu_convolution_and_the_nets_on_wgpu_give_flexs_numbers() {
    let _globals = exclusive();
    let gpu = wgpu();
    let cpu = Device::flex();
    cpu.seed(11);
    // The project's own kernels: output and all three gradients.
    for ([cin, cout], dims, k, stride, padding, batch) in TILED_CASES {
        let data = case_data(cin, cout, dims, k, batch);
        let reference = run(&cpu, Path::Burn, &data, stride, padding);
        let ours = run(&gpu, Path::Tiled, &data, stride, padding);
        let what = format!(
            "tiled {k}³ stride-{stride} pad-{padding} conv {cin}→{cout} on {dims:?} on wgpu"
        );
        common::assert_convolutions_agree(&ours, &reference, &what);
    }

    // The nets' layers (k3 p1 stride 1 and 2, k1) on odd dims, and a cap that forces slabs.
    let cases: [ConvCase; 4] = [
        ([3, 5], [9, 8, 7], 3, 1, 1, usize::MAX),
        ([4, 6], [9, 8, 6], 3, 2, 1, usize::MAX),
        ([5, 3], [7, 5, 9], 1, 1, 0, usize::MAX),
        ([2, 4], [11, 6, 5], 3, 1, 1, 4 * 2 * 27 * 30),
    ];
    for ([cin, cout], [d, h, w], k, stride, padding, cap) in cases {
        let data = [
            Tensor::<5>::random([2, cin, d, h, w], Distribution::Normal(0.0, 1.0), &cpu)
                .into_data(),
            Tensor::<5>::random([cout, cin, k, k, k], Distribution::Normal(0.0, 0.3), &cpu)
                .into_data(),
            Tensor::<1>::random([cout], Distribution::Normal(0.0, 1.0), &cpu).into_data(),
        ];
        let reference = run(&cpu, Path::Burn, &data, stride, padding);
        let ours = run(&gpu, Path::Gemm(cap), &data, stride, padding);
        let what = format!("a {k}³ stride-{stride} conv {cin}→{cout} on {d}×{h}×{w} on wgpu");
        common::assert_convolutions_agree(&ours, &reference, &what);
    }

    // Every net, with the same weights: burn's conv3d on flex, im2col + matmul and the tiled
    // kernels on wgpu.
    use gdl_lab::model::conv::{ConvAlgorithm, set_algorithm};
    let input = Tensor::<5>::random([1, 1, 8, 12, 16], Distribution::Normal(0.0, 1.0), &cpu);
    for (kind, algorithm) in ModelKind::ALL
        .into_iter()
        .flat_map(|kind| [(kind, ConvAlgorithm::Gemm), (kind, ConvAlgorithm::Tiled)])
    {
        set_algorithm(ConvAlgorithm::Burn);
        let net = kind.init(4, &cpu);
        let reference = values(net.forward(input.clone()));
        assert!(
            reference.iter().any(|v| *v != 0.0),
            "{kind:?}: all-zero logits"
        );
        let on_gpu = net.to_device(&gpu);
        set_algorithm(algorithm);
        let ours = values(on_gpu.forward(Tensor::from_data(input.to_data(), &gpu)));
        let error = common::relative_error(&ours, &reference);
        assert!(
            error <= 1e-4,
            "{kind:?} logits on wgpu with {algorithm:?}: relative error {error}"
        );
    }
}

/// Tile sizes at the ends of what `gdl-lab bench --tiles` accepts, for the kernels that
/// `bench/gpu.sh` compares: they must all compute the same convolution.
const OTHER_TILES: [&str; 5] = [
    "channels=16,voxels=16,workgroup=256",
    "channels=1,voxels=1,workgroup=32,weight_grad_threads=1024",
    "channels=4,voxels=5,workgroup=64,weight_grad_threads=4096",
    "along=y,weight_grad=lanes",
    "along=y,channels=16,voxels=3,workgroup=32,weight_grad=lanes,weight_grad_threads=1024",
];

#[test]
fn every_tile_size_gives_flexs_numbers() {
    use gdl_lab::model::kernels::tiles::{Tiles, set_tiles};
    let _globals = exclusive();
    let gpu = wgpu();
    let cpu = Device::flex();
    cpu.seed(13);
    for tiles in OTHER_TILES {
        let tiles: Tiles = tiles.parse().unwrap();
        for ([cin, cout], dims, k, stride, padding, batch) in TILED_CASES {
            let data = case_data(cin, cout, dims, k, batch);
            let reference = run(&cpu, Path::Burn, &data, stride, padding);
            set_tiles(tiles);
            let ours = run(&gpu, Path::Tiled, &data, stride, padding);
            let what = format!(
                "tiled {k}³ stride-{stride} pad-{padding} conv {cin}→{cout} on {dims:?} with {tiles}"
            );
            common::assert_convolutions_agree(&ours, &reference, &what);
        }
    }
}

/// Every parameter's gradient of one (logits · ramp) sum through `net` on `device`, by parameter
/// id, in the module's order; `None` where the parameter got no gradient.
fn parameter_gradients(
    net: &gdl_lab::model::SegmentationNet,
    input: &TensorData,
    device: &Device,
) -> Vec<(String, Option<Vec<f32>>)> {
    use burn::module::ModuleVisitor;
    use burn::optim::GradientsParams;
    struct Collect<'a> {
        grads: &'a GradientsParams,
        found: Vec<(String, Option<Vec<f32>>)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = self.grads.get::<D>(param.id).map(values);
            self.found.push((param.id.to_string(), grad));
        }
    }
    let device = &device.clone().autodiff();
    let net = &net.clone().to_device(device).train();
    let logits = net.forward(Tensor::from_data(input.clone(), device));
    let dims = logits.dims();
    let ramp: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|i| (i as f32).sin())
        .collect();
    let ramp = Tensor::<5>::from_data(TensorData::new(ramp, dims), device);
    let grads = GradientsParams::from_grads((logits * ramp).sum().backward(), net);
    let mut collect = Collect {
        grads: &grads,
        found: Vec::new(),
    };
    net.visit(&mut collect);
    collect.found
}

/// The whole nets' backward passes: every parameter's gradient on wgpu (the tiled kernels, the
/// fused norm, the U-Net's conv biases before a norm left out) against burn's on flex. A
/// parameter without a gradient on wgpu must have none to speak of on flex: that is the claim
/// that a bias followed by an instance norm cancels.
#[test]
fn every_nets_parameter_gradients_on_wgpu_are_flexs() {
    let _globals = exclusive();
    use gdl_lab::model::conv::{ConvAlgorithm, set_algorithm};
    let gpu = wgpu();
    let cpu = Device::flex();
    cpu.seed(5);
    let input =
        Tensor::<5>::random([2, 1, 8, 12, 16], Distribution::Normal(0.0, 1.0), &cpu).into_data();
    for kind in ModelKind::ALL {
        set_algorithm(ConvAlgorithm::Burn);
        let net = kind.init(4, &cpu);
        let reference = parameter_gradients(&net, &input, &cpu);
        set_algorithm(ConvAlgorithm::Tiled);
        let ours = parameter_gradients(&net, &input, &gpu);
        // Gradients of one net share one scale: the largest of them.
        let scale = reference
            .iter()
            .filter_map(|(_, grad)| grad.as_ref())
            .flatten()
            .fold(0f32, |m, v| m.max(v.abs()));
        let mut left_out = 0;
        for (index, ((id, ours), (_, reference))) in ours.iter().zip(&reference).enumerate() {
            let reference = reference
                .as_ref()
                .expect("flex gives every parameter a gradient");
            let what = format!("{kind:?} parameter {index} ({id})");
            let error = match ours {
                Some(ours) => {
                    let differences = ours.iter().zip(reference).map(|(a, b)| (a - b).abs());
                    differences.fold(0f32, f32::max) / scale
                }
                None => {
                    left_out += 1;
                    reference.iter().fold(0f32, |m, v| m.max(v.abs())) / scale
                }
            };
            assert!(
                error <= 1e-4,
                "{what}: error {error} of the largest gradient"
            );
        }
        // The U-Net's ten conv blocks, each a conv before a norm; the other nets have none.
        let expected = if kind == ModelKind::Unet { 10 } else { 0 };
        assert_eq!(
            left_out, expected,
            "{kind:?}: parameters without a gradient"
        );
    }
}

/// Batch, channels, dims: planes within one chunk of the statistics kernels (1024 voxels) and
/// of 5 and 10 chunks with the last one partial, one and several planes per channel. Then the
/// inputs' mean and β's: mostly 3 and 0; once 500 (against a spread of 2, where a sum of squares around 0 would keep no digit of the variance) and 10. There the mean
/// itself is known to only ~1e-4 in f32, which moves the LeakyReLU's kink by as much, and a
/// voxel that lands on the other side of it changes the gradients by its whole share; with β at
/// 10 no voxel is near the kink, so that case checks the statistics alone.
const NORM_CASES: [(usize, usize, [usize; 3], f64, f64); 6] = [
    (1, 3, [5, 6, 7], 3.0, 0.0),
    (2, 8, [9, 8, 7], 3.0, 0.0),
    (2, 4, [16, 16, 17], 3.0, 0.0),
    (1, 2, [20, 21, 22], 3.0, 0.0),
    (1, 2, [20, 21, 22], 500.0, 10.0),
    (3, 5, [4, 4, 4], 3.0, 0.0),
];

/// The input, γ and β of one case. The input is noise around `mean` plus a ramp along z, so
/// that the chunks of a plane have different means (combining their variances must account for
/// that); β is noise around `beta`.
fn norm_case_data(
    batch: usize,
    channels: usize,
    dims: [usize; 3],
    mean: f64,
    beta: f64,
) -> [TensorData; 3] {
    let cpu = Device::flex();
    let [d, h, w] = dims;
    let shape = [batch, channels, d, h, w];
    let noise = Tensor::<5>::random(shape, Distribution::Normal(mean, 2.0), &cpu);
    let input: Vec<f32> = values(noise)
        .into_iter()
        .enumerate()
        .map(|(index, value)| value + 4.0 * ((index / (h * w)) % d) as f32 / d as f32)
        .collect();
    [
        TensorData::new(input, shape),
        Tensor::<1>::random([channels], Distribution::Normal(1.0, 0.5), &cpu).into_data(),
        Tensor::<1>::random([channels], Distribution::Normal(beta, 0.5), &cpu).into_data(),
    ]
}

/// Output, input gradient, γ gradient and β gradient of InstanceNorm + LeakyReLU on `device`:
/// burn's two modules, or the fused operation.
fn run_norm(device: &Device, fused: bool, data: &[TensorData; 3]) -> [Vec<f32>; 4] {
    let device = device.clone().autodiff();
    let input = Tensor::<5>::from_data(data[0].clone(), &device).require_grad();
    let channels = input.dims()[1];
    let mut norm = InstanceNormConfig::new(channels).init(&device);
    norm.gamma = Some(Param::from_tensor(Tensor::from_data(
        data[1].clone(),
        &device,
    )));
    norm.beta = Some(Param::from_tensor(Tensor::from_data(
        data[2].clone(),
        &device,
    )));
    let activation = LeakyReluConfig::new().init();
    let output = if fused {
        instance_norm_leaky_relu(&norm, &activation, input.clone())
    } else {
        activation.forward(norm.forward(input.clone()))
    };
    let dims = output.dims();
    let ramp: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|i| (i as f32 * 0.7).sin())
        .collect();
    let ramp = Tensor::<5>::from_data(TensorData::new(ramp, dims), &device);
    let gradients = (output.clone() * ramp).sum().backward();
    let param_grad = |param: &Option<Param<Tensor<1>>>| {
        values(
            param
                .as_ref()
                .unwrap()
                .val()
                .grad(&gradients)
                .expect("γ or β gradient"),
        )
    };
    [
        values(output),
        values(input.grad(&gradients).expect("input gradient")),
        param_grad(&norm.gamma),
        param_grad(&norm.beta),
    ]
}

/// On flex the fused operation is burn's tensor operations, but its backward pass is ours (one
/// formula for the input gradient, the γ and β sums): it must give burn's autodiff gradients.
#[test]
fn the_fused_norms_backward_pass_gives_burns_gradients_on_flex() {
    let cpu = Device::flex();
    cpu.seed(7);
    for (batch, channels, dims, mean, beta) in NORM_CASES {
        let data = norm_case_data(batch, channels, dims, mean, beta);
        let reference = run_norm(&cpu, false, &data);
        let ours = run_norm(&cpu, true, &data);
        let what = format!(
            "fused InstanceNorm + LeakyReLU on {batch}×{channels}×{dims:?} around {mean} on flex"
        );
        common::assert_convolutions_agree(&ours, &reference, &what);
    }
}

#[test]
fn the_fused_norm_on_wgpu_gives_flexs_numbers() {
    let gpu = wgpu();
    let cpu = Device::flex();
    cpu.seed(13);
    for (batch, channels, dims, mean, beta) in NORM_CASES {
        let data = norm_case_data(batch, channels, dims, mean, beta);
        let reference = run_norm(&cpu, false, &data);
        let ours = run_norm(&gpu, true, &data);
        let what = format!(
            "fused InstanceNorm + LeakyReLU on {batch}×{channels}×{dims:?} around {mean} on wgpu"
        );
        common::assert_convolutions_agree(&ours, &reference, &what);
    }
}

/// The monitor's statistics (`loss::maxima`) of a prediction and a target of `count` values on
/// `device`.
fn maxima_on(device: &Device, p: &[f32], g: &[f32]) -> Vec<f32> {
    let upload = |values: &[f32]| {
        Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    };
    values(volume_maxima(upload(p), upload(g)))
}

/// The kernel's one pass with eight running maxima against burn's reductions on flex: exact,
/// since a maximum does not round. Sizes below one workgroup, between, and past the most
/// workgroups it launches (4 194 304 values: then each thread reads more); targets with and
/// without a 3, a 0/255 mask, with fractions and negative values, and all zero; a lone maximum
/// where a combining step could drop it.
#[test]
fn the_monitors_maxima_on_wgpu_are_flexs() {
    let gpu = wgpu();
    let cpu = Device::flex();
    cpu.seed(17);
    let targets: [&[f32]; 4] = [
        &[0.0, 255.0],
        &[0.0, 1.0, 2.0, 3.0, 4.0, 255.0],
        &[0.0, 1.0, 2.0, 4.0],
        &[0.0, 1.0, 0.25, -2.0, 7.5],
    ];
    for count in [7, 1000, 300_001, 4_500_000] {
        let p = values(Tensor::<1>::random(
            [count],
            Distribution::Uniform(-0.5, 1.5),
            &cpu,
        ));
        let picks = values(Tensor::<1>::random(
            [count],
            Distribution::Uniform(0.0, 1.0),
            &cpu,
        ));
        for values_of_g in targets {
            let g: Vec<f32> = picks
                .iter()
                .map(|pick| {
                    let index = (pick * values_of_g.len() as f32) as usize;
                    values_of_g[index.min(values_of_g.len() - 1)]
                })
                .collect();
            let reference = maxima_on(&cpu, &p, &g);
            let ours = maxima_on(&gpu, &p, &g);
            assert_eq!(
                ours, reference,
                "the monitor's maxima of {count} values, g from {values_of_g:?}, on wgpu (left) \
                 and flex (right)"
            );
        }
    }
    // A lone extreme at each position a combining step could drop: the last thread of a
    // workgroup, the last workgroup's, the last value.
    for count in [1000, 300_001, 4_500_000] {
        let mut p = values(Tensor::<1>::random(
            [count],
            Distribution::Uniform(0.0, 1.0),
            &cpu,
        ));
        let g = vec![1.0; count];
        for position in [0, 255, 240 + 256 * 3, 262_143, count / 2 + 17, count - 1] {
            let position = position.min(count - 1);
            let kept = p[position];
            p[position] = 9.0;
            assert_eq!(
                maxima_on(&gpu, &p, &g),
                maxima_on(&cpu, &p, &g),
                "a maximum at {position} of {count}"
            );
            p[position] = kept;
        }
    }
    let zeros = vec![0.0; 5000];
    assert_eq!(
        maxima_on(&gpu, &zeros, &zeros),
        maxima_on(&cpu, &zeros, &zeros),
        "all zero"
    );
}

/// A fresh engine with the wgpu device as its GPU beside flex, given `commands` in order: the
/// events it told.
fn engine_events(commands: Vec<gdl_lab::engine::Command>) -> Vec<gdl_lab::engine::Event> {
    use gdl_lab::engine::{Devices, Engine, Envelope, Event};
    let events: std::rc::Rc<std::cell::RefCell<Vec<Event>>> = Default::default();
    let sink = events.clone();
    let mut engine = Engine::new(
        Devices {
            gpu: Ok(wgpu_compute()),
            cpu: gdl_lab::backend::ComputeDevice::flex(None),
        },
        Box::new(move |event| sink.borrow_mut().push(event.message)),
    );
    for command in commands {
        pollster::block_on(engine.handle(Envelope::new(command)));
    }
    events.take()
}

/// The tuning reports among `events`.
fn tuning_reports(
    events: &[gdl_lab::engine::Event],
) -> Vec<gdl_lab::engine::protocol::TuningReport> {
    events
        .iter()
        .filter_map(|event| match event {
            gdl_lab::engine::Event::Tuning(report) => Some(report.clone()),
            _ => None,
        })
        .collect()
}

/// The engine's auto probe with a real wgpu device beside flex: the GPU session starts from the
/// CPU's weights and its first step agrees with the CPU's (so a correct GPU is timed, not
/// refused), and the probe says which device won.
#[test]
fn the_auto_probe_finds_wgpu_agreeing_with_flex() {
    use gdl_lab::engine::{Command, Event};
    use gdl_lab::view::{BackendChoice, PageState};

    let _guard = exclusive();
    let mut state = PageState::default().small();
    state.page.backend = BackendChoice::Auto;
    let events = engine_events(vec![
        Command::Configure {
            settings: state.to_hash(),
        },
        Command::LoadDemo { size: 32 },
        Command::Step,
    ]);
    let probe = events
        .iter()
        .find_map(|event| match event {
            Event::Probe(report) => Some(report.clone()),
            _ => None,
        })
        .expect("a probe before the first step");
    assert!(
        probe.gpu_ms.as_ref().is_ok_and(|ms| *ms > 0.0),
        "wgpu's first step disagreed with flex's, or failed: {probe:?}"
    );
}

/// The tuning pass's case: the small settings (Target, 16³) on one patch of a normalised
/// volume. The convolutions are most of its step, so kernels that skip the gradients time
/// clearly faster (with Simple at 32³ they were only 12–40 % faster).
fn tuning_case() -> (
    gdl_lab::train::TrainingConfig,
    std::sync::Arc<gdl_lab::volume::LabelledVolume>,
) {
    let mut config = gdl_lab::view::PageState::default().small().config;
    config.batch = 1;
    let mut volume = gdl_lab::volume::synthetic_volume(gdl_lab::volume::SyntheticConfig {
        size: 24,
        ..Default::default()
    });
    gdl_lab::sample::normalise_channels(&mut volume);
    (config, std::sync::Arc::new(volume))
}

/// The tuning pass on lavapipe, with a planted candidate: the lanes setting made to return
/// zeros for the weight and input gradients without running (`kernels::planted`), wrong
/// gradients that are also the fastest. It is timed faster than the defaults, and the agreement with the CPU's first two
/// steps refuses it; the choice is a candidate that agreed.
#[test]
fn the_tuning_pass_refuses_a_faster_kernel_whose_gradient_is_wrong() {
    use gdl_lab::engine::probe::{PROBE_STEPS, time_steps};
    use gdl_lab::engine::tuning::{Reference, tune};
    use gdl_lab::model::kernel_choice::KernelChoice;

    let _guard = exclusive();
    let gpu = wgpu_compute();
    let (config, volume) = tuning_case();
    let cpu = pollster::block_on(time_steps(
        &config,
        &volume,
        &gdl_lab::backend::ComputeDevice::flex(None),
        None,
        None,
        PROBE_STEPS,
    ))
    .expect("the CPU's reference steps");
    let planted: KernelChoice = "tiled:weight_grad=lanes".parse().unwrap();
    gdl_lab::model::kernels::planted::plant_wrong_gradients(true);
    let reference = Reference {
        config: &config,
        volume: &volume,
        cpu: &cpu,
    };
    let tuning = pollster::block_on(tune(
        &reference,
        &gpu,
        &[KernelChoice::default(), planted],
        600.0,
        None,
        &mut |_| {},
    ));
    let [default, wrong] = &tuning.tried[..] else {
        panic!("both candidates timed: {tuning:?}")
    };
    assert!(default.outcome.is_ok(), "the defaults: {default:?}");
    eprintln!(
        "median step: the defaults {:.1} ms, the planted kernels {:.1} ms",
        default.timed_ms.unwrap(),
        wrong.timed_ms.unwrap()
    );
    assert!(
        wrong.timed_ms.unwrap() < default.timed_ms.unwrap(),
        "the planted kernels skip both gradients, so they must time faster: {tuning:?}"
    );
    let refused = wrong
        .outcome
        .as_ref()
        .expect_err("the planted kernel was not refused");
    assert!(
        refused.contains("the gradient norm"),
        "refused for another reason: {refused}"
    );
    assert_eq!(
        tuning.chosen().map(|(choice, _)| choice),
        Some(KernelChoice::default())
    );
}

/// `train` on a GPU: the first engine runs the tuning pass and says what it keeps; a second,
/// given that choice as an earlier visit's, uses it without a pass.
#[test]
fn a_kept_kernel_choice_skips_the_tuning_pass() {
    use gdl_lab::engine::{Command, Event};
    use gdl_lab::view::{BackendChoice, PageState};

    let _guard = exclusive();
    let first_step = |kept| {
        let mut state = PageState::default().small();
        state.config.model = gdl_lab::model::ModelKind::Simple;
        state.config.batch = 1;
        state.page.backend = BackendChoice::Gpu;
        let events = engine_events(vec![
            Command::KeptTunings { kept },
            Command::Configure {
                settings: state.to_hash(),
            },
            Command::LoadDemo { size: 24 },
            Command::Step,
        ]);
        let passes = events
            .iter()
            .filter(
                |event| matches!(event, Event::Progress { task, .. } if task.contains("tuning")),
            )
            .count();
        let stepped = events
            .iter()
            .any(|event| matches!(event, Event::Step { .. }));
        assert!(stepped, "no step was taken");
        (tuning_reports(&events), passes)
    };
    let (tuned, passes) = first_step(Vec::new());
    let [report] = &tuned[..] else {
        panic!("one tuning report: {tuned:?}")
    };
    assert!(passes > 0, "the first run showed no tuning progress");
    assert!(
        report.sentence.starts_with("tuned in "),
        "{}",
        report.sentence
    );
    let kept = report.keep.clone().expect("a choice to keep");
    let (again, passes) = first_step(vec![kept.clone()]);
    assert_eq!(passes, 0, "the kept choice was tuned again: {again:?}");
    assert_eq!(
        again.iter().map(|r| r.sentence.clone()).collect::<Vec<_>>(),
        [format!(
            "kernels kept from an earlier tuning pass: {}",
            kept.found
        )]
    );
    // A choice from another build is not used: the kernels may have changed.
    let mut other_build = kept;
    other_build.build = "another build".into();
    let (_, passes) = first_step(vec![other_build]);
    assert!(passes > 0, "a choice from another build skipped the pass");
}

/// Under `backend=auto` the probe checks a kept choice against the CPU like any GPU timing: a
/// kept choice whose numbers no longer agree (here the planted wrong gradients) is dropped,
/// said, and tuned again.
#[test]
fn a_kept_choice_that_no_longer_agrees_is_dropped() {
    use gdl_lab::engine::Command;
    use gdl_lab::engine::protocol::{KeptTuning, build};
    use gdl_lab::engine::tuning::tuning_key;
    use gdl_lab::view::{BackendChoice, PageState};

    let _guard = exclusive();
    gdl_lab::model::kernels::planted::plant_wrong_gradients(true);
    let mut state = PageState::default().small();
    state.config.model = gdl_lab::model::ModelKind::Simple;
    state.config.batch = 1;
    state.page.backend = BackendChoice::Auto;
    let key = tuning_key(&wgpu_compute(), &state.config);
    let kept = KeptTuning {
        key: key.clone(),
        build: build().to_string(),
        kernels: "tiled:weight_grad=lanes".into(),
        found: "planted".into(),
    };
    let reports = tuning_reports(&engine_events(vec![
        Command::KeptTunings { kept: vec![kept] },
        Command::Configure {
            settings: state.to_hash(),
        },
        Command::LoadDemo { size: 24 },
        Command::Step,
    ]));
    let [report] = &reports[..] else {
        panic!("one tuning report: {reports:?}")
    };
    assert_eq!(report.forget.as_ref(), Some(&key), "{report:?}");
    assert!(
        report.sentence.starts_with(
            "the kept choice (tiles 8×8, lanes weight gradient) was dropped: its numbers differ"
        ),
        "{}",
        report.sentence
    );
    assert!(
        report
            .keep
            .as_ref()
            .is_none_or(|new| new.kernels != "tiled:weight_grad=lanes"),
        "{report:?}"
    );
}

/// The CLI: `bench --tune` keeps its choice in the cache folder, and `train` on the same
/// adapter, net, patch and batch uses it without a pass.
#[test]
fn the_cli_keeps_the_tuned_kernels_for_train() {
    let _guard = exclusive();
    let dir = std::env::temp_dir().join(format!("gdl-lab-tuning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cli = |args: &[&str]| {
        let env = [
            ("GDL_LAB_CACHE", dir.as_os_str()),
            ("CUBECL_AUTOTUNE_LEVEL", "minimal".as_ref()),
        ];
        let (success, stdout, stderr) = common::gdl_lab_with_env(args, &env);
        assert!(success, "{args:?}: {stderr}");
        (stdout, stderr)
    };
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (stdout, stderr) = cli(&[
        "bench",
        "--backend",
        "wgpu",
        "--model",
        "simple",
        "--size",
        "16",
        "--tune",
        "--steps",
        "2",
        "--warmup",
        "1",
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
    let tuning = &summary["tuning"];
    assert!(
        tuning["sentence"]
            .as_str()
            .unwrap()
            .starts_with("tuned in "),
        "{stderr}"
    );
    assert_eq!(tuning["tried"].as_array().unwrap().len(), 7, "{tuning}");
    assert!(tuning["default_ms"].as_f64().unwrap() > 0.0, "{tuning}");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gpu-kernels.json")).unwrap())
            .unwrap();
    assert_eq!(kept.as_array().unwrap().len(), 1, "{kept}");
    assert_eq!(kept[0]["kernels"], tuning["chosen"]);
    cli(&[
        "phantom",
        "--dims",
        "24x24x24",
        "--image",
        &path("t1.nii.gz"),
        "--label",
        &path("seg.nii.gz"),
    ]);
    let (_, stderr) = cli(&[
        "train",
        "--backend",
        "wgpu",
        "--image",
        &path("t1.nii.gz"),
        "--label",
        &path("seg.nii.gz"),
        "--model",
        "simple",
        "--patch",
        "16",
        "--batch",
        "1",
        "--steps",
        "1",
    ]);
    assert!(
        stderr.contains("GPU kernels: kernels kept from an earlier tuning pass"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
