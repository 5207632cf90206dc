//! `backend=auto`: time a few training steps on each device and train on the faster one.
//!
//! A software WebGPU adapter (SwiftShader, lavapipe) can be ~20× slower than flex compiled to
//! wasm, and a real GPU many times faster, so the choice is measured, never guessed from the
//! adapter's name.

use std::sync::Arc;

use web_time::Instant;

use crate::backend::{BackendKind, ComputeDevice};
use crate::model::SegmentationNet;
use crate::train::session::shard::BatchHelpers;
use crate::train::{TrainError, TrainingConfig, TrainingSession};
use crate::volume::LabelledVolume;

use super::protocol::ProbeReport;

/// How many steps a timing runs: `untimed` first (the first builds the net and compiles
/// kernels), then at least `timed`, and more (up to `most`) until they add up to `at_least_ms`;
/// their median counts. A second step longer than `give_up_above_ms` ends the timing there: it
/// is the step time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCounts {
    pub untimed: usize,
    pub timed: usize,
    pub at_least_ms: f64,
    pub most: usize,
    pub give_up_above_ms: f64,
}

/// What the probe times on the CPU: 2 steps after two untimed ones. A fresh session's first
/// steps allocate, in each helper worker too: the page's defaults took 881, 396, 209, then ~170
/// ms split across two workers (701, 307, 272, then ~277 on one), so after one untimed step the
/// probe read about twice the split's steady step.
pub const PROBE_STEPS: StepCounts = StepCounts {
    untimed: 2,
    timed: 2,
    at_least_ms: 0.0,
    most: 2,
    give_up_above_ms: f64::INFINITY,
};

/// A CPU step at the current settings projected above this is too slow to probe: the probe
/// then times the same net on one 16³ patch instead.
pub const PROBE_BUDGET_MS: f64 = 1500.0;

/// The settings the probe times: the current ones, or (`small`) the same net and loss on one
/// patch of 16³ (the model's smallest edge when it needs more).
pub fn probe_config(config: &TrainingConfig, small: bool) -> TrainingConfig {
    let mut probe = TrainingConfig {
        // The final net: with pretraining, the run spends most of its steps on it.
        pretrain_epochs: 0,
        epochs: config.epochs.max(1),
        ..config.clone()
    };
    if small {
        probe.patch = 16usize.next_multiple_of(config.model.edge_multiple());
        probe.batch = 1;
    }
    probe
}

/// "unet, 2 × 32³".
pub fn describe_settings(config: &TrainingConfig) -> String {
    format!(
        "{}, {} × {}³",
        config.model.name(),
        config.batch,
        config.patch
    )
}

/// The cost of the current settings relative to the small probe's (voxels per step).
pub fn scale_to_full(config: &TrainingConfig) -> f64 {
    let small = probe_config(config, true);
    (config.batch * config.patch.pow(3)) as f64 / (small.batch * small.patch.pow(3)) as f64
}

/// What one training step showed, for comparing two devices' (or two kernels') steps from the
/// same weights and patch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub total: f32,
    pub warmup: f32,
    pub gdl: f32,
    /// The global gradient norm before clipping: a wrong gradient shows here first.
    pub grad_norm: f32,
}

impl Reading {
    fn of(report: &crate::report::StepReport) -> Self {
        Self {
            total: report.total,
            warmup: report.warmup,
            gdl: report.gdl,
            grad_norm: report.grad_norm,
        }
    }
}

/// What [`time_steps`] measured on one device.
pub struct Timed {
    /// The median step time, in milliseconds.
    pub median_ms: f64,
    /// The first two steps (the untimed one and the first timed one): the second starts from the
    /// weights the first step's gradient moved, so a wrong gradient shows in its losses.
    pub first_steps: [Reading; 2],
    /// The net as it was before the first step, for another device to start from.
    pub initial: SegmentationNet,
}

/// Times `steps` of a throwaway session, started from `start`'s weights when given (so that
/// two devices' first steps can be compared), its batches split with `helpers` as training
/// would split them.
pub async fn time_steps(
    config: &TrainingConfig,
    volume: &Arc<LabelledVolume>,
    device: &ComputeDevice,
    start: Option<&SegmentationNet>,
    helpers: Option<&dyn BatchHelpers>,
    steps: StepCounts,
) -> Result<Timed, TrainError> {
    let mut session = TrainingSession::on_normalised(config.clone(), volume.clone(), device)?;
    if let Some(start) = start {
        session.adopt_weights(start).await?;
    }
    let initial = session.net().clone();
    let mut readings = Vec::with_capacity(2);
    let mut times: Vec<f64> = Vec::with_capacity(steps.timed);
    let enough = |times: &[f64]| {
        times.len() >= steps.most.max(1)
            || (times.len() >= steps.timed.max(1) && times.iter().sum::<f64>() >= steps.at_least_ms)
    };
    let mut index = 0;
    while !enough(&times) {
        let started = Instant::now();
        let report = session.step_with(helpers).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if readings.len() < 2 {
            readings.push(Reading::of(&report));
        }
        if index == 1 && ms > steps.give_up_above_ms {
            times = vec![ms];
            break;
        }
        if index >= steps.untimed.max(1) {
            times.push(ms);
        }
        index += 1;
    }
    times.sort_by(f64::total_cmp);
    Ok(Timed {
        median_ms: times[times.len() / 2],
        first_steps: [readings[0], readings[1]],
        initial,
    })
}

/// How far a GPU's losses may land from the CPU's, from the same weights and patch: f32 sums in
/// another order differ by ~1e-5 (`tests/web.rs`); garbage differs by far more. The gradient
/// norm is held to the same bound relative to its size.
pub const AGREEMENT: f32 = 1e-3;

/// Whether the GPU computed what the CPU did on the first two steps from the same weights and
/// patch: a driver or kernel that trains on garbage (as CubeCL's autotuned kernels once did on
/// SwiftShader) must not win the probe, or the tuning pass, by being fast. The first step checks
/// the forward pass and the gradient's norm, the second the update the gradient made. The
/// sentence says what differed.
pub fn agreement(cpu: &[Reading; 2], gpu: &[Reading; 2]) -> Result<(), String> {
    for (step, (cpu, gpu)) in cpu.iter().zip(gpu).enumerate() {
        let when = if step == 0 { "" } else { "after one update, " };
        for (name, cpu, gpu, bound) in [
            ("the total loss", cpu.total, gpu.total, AGREEMENT),
            ("the warm-up term", cpu.warmup, gpu.warmup, AGREEMENT),
            ("the GDL", cpu.gdl, gpu.gdl, AGREEMENT),
            (
                "the gradient norm",
                cpu.grad_norm,
                gpu.grad_norm,
                AGREEMENT * cpu.grad_norm.abs().max(1.0),
            ),
        ] {
            // A NaN on either side is not close.
            let close = (gpu - cpu).abs() <= bound;
            if !close {
                return Err(format!(
                    "its numbers differ from the CPU's on the same weights and patch: {when}{name} \
                     is {gpu:.5} on the GPU, {cpu:.5} on the CPU"
                ));
            }
        }
    }
    Ok(())
}

/// The choice from the measured times: the GPU when it was timed and is faster, else the CPU.
pub fn decide(
    probed_at: String,
    gpu: Option<&ComputeDevice>,
    gpu_ms: Result<f64, String>,
    cpu_ms: f64,
    cpu_threads: usize,
) -> ProbeReport {
    let choice = match &gpu_ms {
        Ok(gpu_ms) if *gpu_ms < cpu_ms => gpu.map_or(BackendKind::Flex, |g| g.adapter.backend),
        _ => BackendKind::Flex,
    };
    let gpu_part = match (&gpu_ms, gpu) {
        (Ok(ms), Some(gpu)) => format!(
            "{}: {ms:.0} ms/step ({}{})",
            gpu.adapter.backend.label(),
            gpu.adapter.name,
            if gpu.adapter.software {
                ", software"
            } else {
                ""
            }
        ),
        (Ok(ms), None) => format!("GPU: {ms:.0} ms/step"),
        (Err(reason), _) => format!("GPU: not used ({reason})"),
    };
    let target = if choice == BackendKind::Flex {
        "the CPU".to_string()
    } else {
        choice.label().to_string()
    };
    let sentence = format!(
        "{gpu_part} · CPU: {cpu_ms:.0} ms/step on {cpu_threads} thread{}, timed at {probed_at} \
         → training on {target}",
        if cpu_threads == 1 { "" } else { "s" }
    );
    ProbeReport {
        probed_at,
        gpu_ms,
        cpu_ms,
        choice,
        sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::AdapterSummary;
    use crate::model::ModelKind;

    fn gpu(software: bool) -> ComputeDevice {
        ComputeDevice {
            adapter: AdapterSummary {
                backend: BackendKind::WebGpu,
                name: if software {
                    "SwiftShader Device (Subzero)".into()
                } else {
                    "NVIDIA H200".into()
                },
                architecture: String::new(),
                software,
                max_buffer_size: Some(1 << 30),
            },
            ..ComputeDevice::flex(None)
        }
    }

    #[test]
    fn the_faster_measured_device_wins_whatever_the_adapter_says() {
        let swiftshader = gpu(true);
        let slow = decide(
            "simple, 1 × 16³".into(),
            Some(&swiftshader),
            Ok(722.0),
            33.0,
            1,
        );
        assert_eq!(slow.choice, BackendKind::Flex);
        assert_eq!(
            slow.sentence,
            "WebGPU: 722 ms/step (SwiftShader Device (Subzero), software) · CPU: 33 ms/step on \
             1 thread, timed at simple, 1 × 16³ → training on the CPU"
        );
        let real = gpu(false);
        let fast = decide("unet, 2 × 32³".into(), Some(&real), Ok(40.0), 2600.0, 8);
        assert!(fast.sentence.contains("CPU: 2600 ms/step on 8 threads,"));
        assert_eq!(fast.choice, BackendKind::WebGpu);
        assert!(fast.sentence.ends_with("→ training on WebGPU"));
        // A software adapter that measures faster is still chosen: the measurement decides.
        let odd = decide(
            "simple, 1 × 16³".into(),
            Some(&swiftshader),
            Ok(20.0),
            33.0,
            1,
        );
        assert_eq!(odd.choice, BackendKind::WebGpu);
        // A tie goes to the CPU, which has no device to lose.
        let tie = decide("simple, 1 × 16³".into(), Some(&real), Ok(33.0), 33.0, 1);
        assert_eq!(tie.choice, BackendKind::Flex);
    }

    #[test]
    fn without_a_gpu_timing_the_cpu_is_chosen_and_the_reason_shown() {
        let none = decide(
            "unet, 1 × 16³".into(),
            None,
            Err("navigator.gpu is missing".into()),
            150.0,
            1,
        );
        assert_eq!(none.choice, BackendKind::Flex);
        assert!(
            none.sentence
                .starts_with("GPU: not used (navigator.gpu is missing)")
        );
        let failed = decide(
            "unet, 1 × 16³".into(),
            Some(&gpu(false)),
            Err("The device failed: lost".into()),
            150.0,
            1,
        );
        assert_eq!(failed.choice, BackendKind::Flex);
    }

    #[test]
    fn a_gpu_whose_first_step_differs_from_the_cpus_is_not_used() {
        let reading = |total, warmup, gdl, grad_norm| Reading {
            total,
            warmup,
            gdl,
            grad_norm,
        };
        let cpu = [
            reading(0.35121, 0.70243, 0.98853, 2.5),
            reading(0.35021, 0.70043, 0.98803, 2.4),
        ];
        let mut close = cpu;
        close[0].total += 1e-5;
        close[1].grad_norm *= 1.0 + 1e-4;
        assert_eq!(agreement(&cpu, &close), Ok(()));
        let mut wrong_gdl = cpu;
        wrong_gdl[0].gdl = 0.5;
        let garbage = agreement(&cpu, &wrong_gdl).unwrap_err();
        assert_eq!(
            garbage,
            "its numbers differ from the CPU's on the same weights and patch: the GDL is 0.50000 \
             on the GPU, 0.98853 on the CPU"
        );
        let mut nan = cpu;
        nan[0].total = f32::NAN;
        assert!(agreement(&cpu, &nan).is_err());
        // A wrong gradient: the first step's losses agree, its norm and the next step do not.
        let mut wrong_gradient = cpu;
        wrong_gradient[0].grad_norm = 1.9;
        assert!(
            agreement(&cpu, &wrong_gradient)
                .unwrap_err()
                .contains("the gradient norm is 1.90000 on the GPU, 2.50000 on the CPU")
        );
        let mut wrong_update = cpu;
        wrong_update[1].total = 0.3515;
        assert!(
            agreement(&cpu, &wrong_update)
                .unwrap_err()
                .contains("after one update, the total loss is 0.35150")
        );
        let report = decide(
            "simple, 1 × 16³".into(),
            Some(&gpu(false)),
            Err(garbage),
            33.0,
            1,
        );
        assert_eq!(report.choice, BackendKind::Flex);
        assert!(
            report
                .sentence
                .starts_with("GPU: not used (its numbers differ from the CPU's"),
            "{}",
            report.sentence
        );
    }

    #[test]
    fn large_settings_are_probed_small_with_the_same_net() {
        let config = TrainingConfig::default();
        let small = probe_config(&config, true);
        assert_eq!(
            (small.model, small.patch, small.batch),
            (ModelKind::Unet, 16, 1)
        );
        assert_eq!(scale_to_full(&config), 16.0);
        let full = probe_config(&config, false);
        assert_eq!((full.patch, full.batch), (config.patch, config.batch));
        let pretrained = TrainingConfig {
            model: ModelKind::Target,
            pretrain_epochs: 2,
            ..TrainingConfig::default()
        };
        assert_eq!(probe_config(&pretrained, false).pretrain_epochs, 0);
        assert_eq!(describe_settings(&config), "unet, 2 × 32³");
    }
}
