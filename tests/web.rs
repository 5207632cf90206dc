//! Browser tests: `wasm-pack test --headless --chrome` (see `./x test`): the core's numerics on
//! WebGPU against flex. They run in one page, so they share the WebGPU device that
//! `backend::acquire` initialises once. The page itself (its worker, its journey) is checked on
//! the Trunk-built page by `scripts/page_check.py` (`./x test page`).
#![cfg(target_arch = "wasm32")]

use gdl_lab::backend::{self, BackendKind};
use gdl_lab::train::{TrainingConfig, TrainingSession};
use gdl_lab::volume::{SyntheticConfig, synthetic_volume};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

mod common;

#[wasm_bindgen_test]
async fn webgpu_trains_simple_model_for_three_steps_at_16_cubed() {
    backend::run_static_constructors();
    let compute = backend::acquire().await;
    console_log!("adapter: {}", compute.describe());
    assert_eq!(
        compute.adapter.backend,
        BackendKind::WebGpu,
        "WebGPU did not initialise: {:?}",
        compute.fallback_reason
    );
    assert!(compute.adapter.max_buffer_size.unwrap_or(0) > 0);

    // The mixed loss with the GDL already on (λ = 0.5 from the first step), so that the whole
    // loss code runs on WebGPU.
    let config = TrainingConfig {
        warmup_epochs: 0.0,
        schedule: gdl_lab::loss::Schedule::Linear,
        ramp_epochs: 2.0,
        steps_per_epoch: 1,
        ..TrainingConfig::quick(16)
    };
    let volume = synthetic_volume(SyntheticConfig::default());
    // The same steps from the same weights on flex, in this page: wrong kernels once trained on
    // garbage here, and falling numbers alone would not show it. The two agree to ~1e-5 in our
    // runs; 1e-4 catches logits off by 1 % (that moves the BCE by 4.5e-4).
    let mut cpu = TrainingSession::new(config.clone(), &volume, &burn::prelude::Device::flex())
        .expect("valid settings");
    let mut session =
        TrainingSession::new(config, &volume, &compute.device).expect("valid settings");
    session
        .adopt_weights(cpu.net())
        .await
        .expect("flex's weights on WebGPU");
    let (mut losses, mut lambdas) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let report = session.step().await.expect("a training step failed");
        let reference = cpu.step().await.expect("a flex step failed");
        console_log!(
            "WebGPU step {}: λ {:.2}, total {:.5} (BCE {:.5}, GDL {:.5}), grad norm {:.4}, {:.0} ms; \
             flex: total {:.5} (BCE {:.5}, GDL {:.5})",
            report.step,
            report.lambda,
            report.total,
            report.warmup,
            report.gdl,
            report.grad_norm,
            report.millis,
            reference.total,
            reference.warmup,
            reference.gdl
        );
        assert_eq!(report.lambda, reference.lambda);
        for (what, ours, theirs) in [
            ("total", report.total, reference.total),
            ("BCE", report.warmup, reference.warmup),
            ("GDL", report.gdl, reference.gdl),
        ] {
            assert!(
                (ours - theirs).abs() <= 1e-4,
                "step {}: the {what} on WebGPU is {ours}, on flex {theirs}",
                report.step
            );
        }
        assert!((0.0..=1.0).contains(&report.gdl), "{report:?}");
        assert_eq!(report.anatomy.dice.len(), 4);
        // The monitor's whole-volume statistics, one WGSL kernel (`loss/maxima/`) here and
        // burn's reductions on flex: the target's exactly, the prediction's to rounding.
        let (ours, theirs) = (report.anatomy.monitor, reference.anatomy.monitor);
        for (what, ours, theirs, tolerance) in [
            ("p_min", ours.p_min, theirs.p_min, 1e-4),
            ("p_max", ours.p_max, theirs.p_max, 1e-4),
            ("g_min", ours.g_min, theirs.g_min, 0.0),
            ("g_max", ours.g_max, theirs.g_max, 0.0),
            ("g_fraction", ours.g_fraction, theirs.g_fraction, 0.0),
            (
                "g_not_two_valued",
                ours.g_not_two_valued,
                theirs.g_not_two_valued,
                0.0,
            ),
            ("g_has_3", ours.g_has_3, theirs.g_has_3, 0.0),
            ("g_has_4", ours.g_has_4, theirs.g_has_4, 0.0),
            (
                "g_channel_sum_max",
                ours.g_channel_sum_max,
                theirs.g_channel_sum_max,
                0.0,
            ),
            (
                "g_channel_sum_min",
                ours.g_channel_sum_min,
                theirs.g_channel_sum_min,
                0.0,
            ),
            (
                "p_channel_sum_gap",
                ours.p_channel_sum_gap,
                theirs.p_channel_sum_gap,
                1e-4,
            ),
        ] {
            assert!(
                (ours - theirs).abs() <= tolerance,
                "step {}: the monitor's {what} on WebGPU is {ours}, on flex {theirs}",
                report.step
            );
        }
        losses.push(report.warmup);
        lambdas.push(report.lambda);
    }
    assert_eq!(
        lambdas,
        [0.0, 0.5, 1.0],
        "the steps cover the warm-up, the ramp and λ = 1"
    );
    assert!(losses.iter().all(|loss| loss.is_finite()), "{losses:?}");
    let evaluation = session.evaluate().await.expect("sliding-window prediction");
    console_log!(
        "WebGPU evaluation: hard Dice {:?}, {:.0} ms",
        evaluation.dice,
        evaluation.millis
    );
    assert_eq!(evaluation.labels.len(), volume.voxel_count());
    assert!(
        losses.windows(2).all(|pair| pair[1] < pair[0]),
        "the BCE term did not decrease at every step: {losses:?}"
    );
}

/// Reads any tensor back without blocking (synchronous reads panic in the browser).
async fn floats<const D: usize>(tensor: burn::prelude::Tensor<D>) -> Vec<f32> {
    tensor
        .into_data_async()
        .await
        .expect("read back")
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// The GPU paths of the convolution on the browser's WebGPU, with the browser's kernels (no
/// autotuning): the project's tiled kernels (compiled to WGSL) and im2col + matmul (cubek's
/// matmul without cooperative matrices), also with the tiled kernels' two variants, against
/// burn's conv3d on flex: output and the three gradients, k3 with stride 1 and 2.
#[wasm_bindgen_test]
async fn webgpu_convolutions_match_flex_with_their_gradients() {
    use burn::prelude::*;
    use burn::tensor::Distribution;
    use gdl_lab::model::conv::{conv3d_burn, conv3d_gemm};
    use gdl_lab::model::kernels::conv3d_tiled;
    use gdl_lab::model::kernels::tiles::{Tiles, set_tiles};
    // Each path sets the tile sizes it runs with; they stay set until its results are read.
    let tiled = |input, weight, bias, stride: [usize; 3], padding: [usize; 3]| {
        set_tiles(Tiles::default());
        conv3d_tiled(input, weight, bias, stride[0], padding[0])
    };
    // The two variants written for a GPU's memory (bench/tiles.py compares them on a GPU): if
    // one wins there, the browser gets it too, so its WGSL must work here.
    let variants = |input, weight, bias, stride: [usize; 3], padding: [usize; 3]| {
        set_tiles("along=y,weight_grad=lanes".parse().unwrap());
        conv3d_tiled(input, weight, bias, stride[0], padding[0])
    };
    type Convolution =
        fn(Tensor<5>, Tensor<5>, Option<Tensor<1>>, [usize; 3], [usize; 3]) -> Tensor<5>;
    let paths: [(&str, Convolution); 4] = [
        ("burn on flex", conv3d_burn),
        ("im2col + matmul", conv3d_gemm),
        ("tiled", tiled),
        ("tiled, along=y and weight_grad=lanes", variants),
    ];
    backend::run_static_constructors();
    let compute = backend::acquire().await;
    assert_eq!(compute.adapter.backend, BackendKind::WebGpu);
    let cpu = Device::flex();
    cpu.seed(5);
    for (stride, dims) in [(1, [6, 7, 5]), (2, [8, 6, 7])] {
        let data = [
            Tensor::<5>::random(
                [2, 3, dims[0], dims[1], dims[2]],
                Distribution::Normal(0.0, 1.0),
                &cpu,
            )
            .into_data_async()
            .await
            .unwrap(),
            Tensor::<5>::random([4, 3, 3, 3, 3], Distribution::Normal(0.0, 0.3), &cpu)
                .into_data_async()
                .await
                .unwrap(),
        ];
        let mut results = Vec::new();
        for (index, (_, convolve)) in paths.iter().enumerate() {
            let device = if index == 0 { &cpu } else { &compute.device };
            let device = device.clone().autodiff();
            let input = Tensor::<5>::from_data(data[0].clone(), &device).require_grad();
            let weight = Tensor::<5>::from_data(data[1].clone(), &device).require_grad();
            let bias = Tensor::<1>::from_floats([0.5, -1.0, 0.25, 2.0], &device).require_grad();
            let output = convolve(
                input.clone(),
                weight.clone(),
                Some(bias.clone()),
                [stride; 3],
                [1; 3],
            );
            // The upstream gradient, made on the CPU: WebGPU's `sin` is not exact enough to
            // compare gradients that sum hundreds of its values.
            let dims = output.dims();
            let count = dims.iter().product::<usize>();
            let ramp: Vec<f32> = (0..count).map(|i| (i as f32).sin()).collect();
            let ramp = Tensor::<5>::from_data(TensorData::new(ramp, dims), &device);
            let gradients = (output.clone() * ramp).sum().backward();
            results.push([
                floats(output).await,
                floats(input.grad(&gradients).expect("input gradient")).await,
                floats(weight.grad(&gradients).expect("weight gradient")).await,
                floats(bias.grad(&gradients).expect("bias gradient")).await,
            ]);
        }
        set_tiles(Tiles::default());
        for (index, (name, _)) in paths.iter().enumerate().skip(1) {
            let what = format!("{name}, stride {stride}");
            let errors = common::assert_convolutions_agree(&results[index], &results[0], &what);
            console_log!("{what}: relative errors {errors:?} (output, dx, dW, db)");
        }
    }
}

/// The U-Net's fused InstanceNorm + LeakyReLU (`model/norm/`) compiled to WGSL, against burn's
/// two modules on flex: output and the gradients of x, γ and β, planes within one chunk of the
/// statistics kernels (1024 voxels) and of several.
#[wasm_bindgen_test]
async fn webgpu_fused_norm_matches_flex_with_its_gradients() {
    use burn::module::Param;
    use burn::nn::{InstanceNormConfig, LeakyReluConfig};
    use burn::prelude::*;
    use burn::tensor::Distribution;
    use gdl_lab::model::norm::instance_norm_leaky_relu;
    backend::run_static_constructors();
    let compute = backend::acquire().await;
    assert_eq!(compute.adapter.backend, BackendKind::WebGpu);
    let cpu = Device::flex();
    cpu.seed(9);
    for (batch, channels, [d, h, w]) in [(1, 3, [5, 6, 7]), (2, 4, [9, 8, 7]), (1, 2, [17, 16, 16])]
    {
        let input = Tensor::<5>::random(
            [batch, channels, d, h, w],
            Distribution::Normal(3.0, 2.0),
            &cpu,
        )
        .into_data_async()
        .await
        .unwrap();
        let gamma: Vec<f32> = (0..channels).map(|c| 0.5 + 0.3 * c as f32).collect();
        let beta: Vec<f32> = (0..channels).map(|c| 0.2 - 0.15 * c as f32).collect();
        let mut results = Vec::new();
        for (device, fused) in [(&cpu, false), (&compute.device, true)] {
            let device = device.clone().autodiff();
            let x = Tensor::<5>::from_data(input.clone(), &device).require_grad();
            let mut norm = InstanceNormConfig::new(channels).init(&device);
            norm.gamma = Some(Param::from_tensor(Tensor::from_floats(
                gamma.as_slice(),
                &device,
            )));
            norm.beta = Some(Param::from_tensor(Tensor::from_floats(
                beta.as_slice(),
                &device,
            )));
            let activation = LeakyReluConfig::new().init();
            let output = if fused {
                instance_norm_leaky_relu(&norm, &activation, x.clone())
            } else {
                activation.forward(norm.forward(x.clone()))
            };
            let dims = output.dims();
            let count = dims.iter().product::<usize>();
            let ramp: Vec<f32> = (0..count).map(|i| (i as f32 * 0.7).sin()).collect();
            let ramp = Tensor::<5>::from_data(TensorData::new(ramp, dims), &device);
            let gradients = (output.clone() * ramp).sum().backward();
            let param = |param: &Option<Param<Tensor<1>>>| {
                param
                    .as_ref()
                    .unwrap()
                    .val()
                    .grad(&gradients)
                    .expect("γ or β gradient")
            };
            results.push([
                floats(output).await,
                floats(x.grad(&gradients).expect("input gradient")).await,
                floats(param(&norm.gamma)).await,
                floats(param(&norm.beta)).await,
            ]);
        }
        let what = format!("fused norm on {batch}×{channels}×{d}×{h}×{w}");
        let errors = common::assert_convolutions_agree(&results[1], &results[0], &what);
        console_log!("{what}: relative errors {errors:?} (output, dx, dγ, dβ)");
    }
}

/// The lab's fp16 cause rounds with tensor operations (`loss/half.rs`): on WebGPU, where no
/// infinite constant may appear in a shader and a compiler may fuse products, it must give
/// flex's values exactly, ∞ past 65 504 included.
#[wasm_bindgen_test]
async fn webgpu_rounds_to_half_precision_exactly_as_flex() {
    use burn::prelude::*;
    use gdl_lab::loss::half::round_to_half;
    backend::run_static_constructors();
    let compute = backend::acquire().await;
    let values = [
        0.0f32, 1e-5, 6.1e-5, 0.1, 0.333_333, 255.0, 257.3, 2049.0, 31_000.7, 65_519.0, 65_520.0,
        1e9, -3.7, -70_000.0,
    ];
    let rounded = |device: &Device| {
        round_to_half(Tensor::<1>::from_floats(values.as_slice(), device)).into_data_async()
    };
    let theirs = rounded(&Device::flex())
        .await
        .unwrap()
        .try_to_vec::<f32>()
        .unwrap();
    let ours = rounded(&compute.device)
        .await
        .expect("the rounding ran on WebGPU")
        .try_to_vec::<f32>()
        .unwrap();
    console_log!("fp16 rounding on WebGPU: {ours:?}");
    assert_eq!(ours, theirs, "WebGPU's fp16 rounding differs from flex's");
    assert_eq!(theirs[10], f32::INFINITY);
}

/// The worker's CPU path runs its convolutions' matrix products on SIMD128 (gemm's wasm kernels,
/// chosen at run time by a flag that burn's `simd` feature and gdl-lab's `gemm` dependency set):
/// without it a page's CPU step would fall back to scalar loops. The device panel says so.
#[wasm_bindgen_test]
fn the_workers_cpu_path_uses_simd128_on_one_thread() {
    let flex = backend::ComputeDevice::flex(None);
    assert!(
        flex.adapter.name.ends_with("1 thread, SIMD128"),
        "flex in the browser: {}",
        flex.adapter.name
    );
}
