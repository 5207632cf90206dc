//! `backend=auto`: time a few training steps on each device and train on the faster one.
//!
//! A software WebGPU adapter (SwiftShader, lavapipe) can be ~20× slower than flex compiled to
//! wasm, and a real GPU many times faster, so the choice is measured, never guessed from the
//! adapter's name.

use std::sync::Arc;

use web_time::Instant;

use crate::backend::{BackendKind, ComputeDevice};
use crate::model::SegmentationNet;
use crate::train::{TrainError, TrainingConfig, TrainingSession};
use crate::volume::LabelledVolume;

use super::protocol::ProbeReport;

/// Steps timed per device after one untimed step (which builds the net and compiles kernels).
pub const TIMED_STEPS: usize = 2;

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

/// What [`time_steps`] measured on one device.
pub struct Timed {
    /// The median step time, in milliseconds.
    pub median_ms: f64,
    /// The first (untimed) step's total, warm-up term and GDL.
    pub first: [f32; 3],
    /// The net as it was before that step, for the other device to start from.
    pub initial: SegmentationNet,
}

/// Times `TIMED_STEPS` steps (after one untimed step) of a throwaway session, started from
/// `start`'s weights when given (so that two devices' first steps can be compared).
pub async fn time_steps(
    config: &TrainingConfig,
    volume: &Arc<LabelledVolume>,
    device: &ComputeDevice,
    start: Option<&SegmentationNet>,
) -> Result<Timed, TrainError> {
    let mut session = TrainingSession::on_normalised(config.clone(), volume.clone(), device)?;
    if let Some(start) = start {
        session.adopt_weights(start).await?;
    }
    let initial = session.net().clone();
    let report = session.step().await?;
    let first = [report.total, report.warmup, report.gdl];
    let mut times = Vec::with_capacity(TIMED_STEPS);
    for _ in 0..TIMED_STEPS {
        let started = Instant::now();
        session.step().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(Timed {
        median_ms: times[times.len() / 2],
        first,
        initial,
    })
}

/// How far a GPU's first step may land from the CPU's, from the same weights and patch: f32
/// sums in another order differ by ~1e-5 (`tests/web.rs`); garbage differs by far more.
pub const AGREEMENT: f32 = 1e-3;

/// Whether the GPU computed what the CPU did on the first probe step (`[total, warm-up, GDL]`
/// each): a driver or kernel that trains on garbage (as CubeCL's autotuned kernels once did on
/// SwiftShader) must not win the probe by being fast. The sentence says what differed.
pub fn agreement(cpu: [f32; 3], gpu: [f32; 3]) -> Result<(), String> {
    for (name, cpu, gpu) in [
        ("the total loss", cpu[0], gpu[0]),
        ("the warm-up term", cpu[1], gpu[1]),
        ("the GDL", cpu[2], gpu[2]),
    ] {
        let close = (gpu - cpu).abs() <= AGREEMENT;
        // A NaN on either side is not close.
        if !close {
            return Err(format!(
                "its numbers differ from the CPU's on the same weights and patch: {name} is \
                 {gpu:.5} on the GPU, {cpu:.5} on the CPU"
            ));
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
        let cpu = [0.35121, 0.70243, 0.98853];
        assert_eq!(agreement(cpu, [0.35122, 0.70241, 0.98853]), Ok(()));
        let garbage = agreement(cpu, [0.35121, 0.70243, 0.5]).unwrap_err();
        assert_eq!(
            garbage,
            "its numbers differ from the CPU's on the same weights and patch: the GDL is 0.50000 \
             on the GPU, 0.98853 on the CPU"
        );
        assert!(agreement(cpu, [f32::NAN, 0.70243, 0.98853]).is_err());
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
