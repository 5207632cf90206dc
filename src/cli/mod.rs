//! The native command line: the same core as the page, driven from a terminal.

mod bench;
mod phantom;
mod predict;
mod train;
mod tuning_store;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::str::FromStr;

use burn::prelude::{Tensor, TensorData};
use clap::{Parser, Subcommand, ValueEnum};

use crate::backend::{ComputeDevice, init_wgpu};
use crate::model::ModelKind;
use crate::train::{TrainingConfig, TrainingSession};
use crate::volume::nifti::read_path;
use crate::volume::{Limits, SyntheticConfig, synthetic_volume};

#[derive(Parser, Debug)]
#[command(
    name = "gdl-lab",
    version,
    about = "gdl-lab's native CLI: the training core of the gdl-lab page, driven from a \
             terminal: train on NIfTI files, inspect them, write the phantom, list the nets, check \
             the backends.",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run; the size of the `train` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Report which backends work on this machine (flex CPU and wgpu GPU)
    Doctor,
    /// Train on a scan and its label map, then predict the whole volume; the last stdout line
    /// is a JSON summary with the hard Dice per label
    Train {
        #[command(flatten)]
        args: train::TrainArgs,
        /// Backend to train on
        #[arg(long, value_enum, default_value_t = BackendChoice::Flex)]
        backend: BackendChoice,
    },
    /// Apply a trained net (gdl-lab's weights or a net saved from PyTorch) to a scan: crop,
    /// resample and sliding window as in training, the prediction written in the scan's grid;
    /// the last stdout line is a JSON summary (hard Dice per label with --label)
    Predict {
        #[command(flatten)]
        args: predict::PredictArgs,
        /// Backend to predict on
        #[arg(long, value_enum, default_value_t = BackendChoice::Flex)]
        backend: BackendChoice,
    },
    /// Print a NIfTI file's header and intensity range as one JSON line (exit 2 for a bad file)
    Inspect {
        /// .nii, .nii.gz, or .hdr (with its .img beside it)
        file: std::path::PathBuf,
    },
    /// Write the built-in brain-tumour phantom as NIfTI files: one image, or (--modalities,
    /// --cases) case folders of several MRI modalities
    Phantom(phantom::PhantomArgs),
    /// List the nets with their parameter counts
    Models {
        /// Classes, background included
        #[arg(long, default_value_t = 4)]
        classes: usize,
    },
    /// Time training steps (patch sampling, forward, mixed loss, backward, clipping, Adam, one
    /// read-back) after warm-up steps, or with --predict a whole-volume prediction; the last
    /// stdout line is a JSON summary
    Bench(bench::BenchArgs),
    /// Train the seed's Simple3DModel on the built-in synthetic volume with the mixed loss
    /// (BCE warm-up for 2 epochs of 25 steps, then GDL)
    Demo {
        /// Backend to train on
        #[arg(long, value_enum, default_value_t = BackendChoice::Flex)]
        backend: BackendChoice,
        /// Edge of the cubic synthetic volume, in voxels (4–128)
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(4..=128))]
        size: u16,
        /// Training steps
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Adam learning rate
        #[arg(long, default_value_t = TrainingConfig::quick(16).lr)]
        lr: f64,
        /// Seed of the weights and of the volume
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendChoice {
    /// burn's pure-Rust CPU backend
    Flex,
    /// burn's wgpu backend (Vulkan, Metal or DX12)
    Wgpu,
}

pub fn main() -> ExitCode {
    keep_freed_memory();
    match Cli::parse().command {
        Command::Doctor => doctor(),
        Command::Models { classes } => models(classes),
        Command::Inspect { file } => inspect(&file),
        Command::Train { args, backend } => match device_for(backend) {
            Ok(device) => train::train(&device, &args),
            Err(code) => code,
        },
        Command::Predict { args, backend } => match device_for(backend) {
            Ok(device) => predict::predict(&device, &args),
            Err(code) => code,
        },
        Command::Bench(args) => {
            match bench::pin_threads(&args).and_then(|()| device_for(args.backend)) {
                Ok(device) => bench::bench(&device, &args),
                Err(code) => code,
            }
        }
        Command::Phantom(args) => phantom::write_phantom(&args),
        Command::Demo {
            backend,
            size,
            steps,
            lr,
            seed,
        } => {
            let device = match device_for(backend) {
                Ok(device) => device,
                Err(code) => return code,
            };
            let volume = SyntheticConfig {
                size: size as usize,
                seed,
                ..SyntheticConfig::default()
            };
            let config = TrainingConfig {
                lr,
                seed,
                ..TrainingConfig::quick(size as usize)
            };
            demo(&device, config, volume, steps)
        }
    }
}

/// A training step on the CPU allocates and frees the same large buffers (activations, im2col
/// tiles, gradients) every time. With glibc's defaults, blocks of a few MiB come from `mmap`
/// and go back to the kernel when freed, so every step page-faults them in again (12 % of a
/// Target3DModel 32³ step in `perf`), and the heap top is trimmed. Keeping them in the heap made
/// that step 15 % faster (BENCHMARKS.md, "d"); the peak memory did not change measurably.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        // 32 MiB is the largest mmap threshold glibc accepts; setting it also stops the
        // threshold from adapting.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// The chosen backend, or the exit code after saying why it is not available.
fn device_for(backend: BackendChoice) -> Result<ComputeDevice, ExitCode> {
    match backend {
        BackendChoice::Flex => Ok(ComputeDevice::flex(None)),
        BackendChoice::Wgpu => match guarded(|| pollster::block_on(init_wgpu())) {
            Ok(Ok(device)) => Ok(device),
            Ok(Err(reason)) | Err(reason) => {
                eprintln!("gdl-lab: wgpu is not available: {reason}");
                eprintln!("Try `--backend flex`, or run `gdl-lab doctor`.");
                Err(ExitCode::FAILURE)
            }
        },
    }
}

/// Runs `work`, turning a panic inside burn or wgpu into an error sentence.
fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "it panicked".into())
    })
}

fn demo(
    device: &ComputeDevice,
    config: TrainingConfig,
    volume: SyntheticConfig,
    steps: usize,
) -> ExitCode {
    eprintln!("device: {}", device.describe());
    let mut session = match TrainingSession::on(config, &synthetic_volume(volume), device) {
        Ok(session) => session,
        Err(error) => {
            eprintln!("gdl-lab: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut last = None;
    for _ in 0..steps {
        match pollster::block_on(session.step()) {
            Ok(report) => {
                eprintln!("{}", report.summary());
                last = Some(report);
            }
            Err(error) => {
                eprintln!("gdl-lab: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let summary = serde_json::json!({
        "backend": device.adapter.backend,
        "adapter": device.adapter.name,
        "steps": session.steps_done(),
        "final_loss": last.as_ref().map(|report| report.total),
        "last_step_ms": last.as_ref().map(|report| report.millis),
    });
    println!("{summary}");
    ExitCode::SUCCESS
}

/// Tries one tiny training step on a device; `Ok(ms)` when it trains.
fn probe_training(device: &ComputeDevice) -> Result<f64, String> {
    let volume = synthetic_volume(SyntheticConfig {
        size: 8,
        ..SyntheticConfig::default()
    });
    let mut session = TrainingSession::new(TrainingConfig::quick(8), &volume, &device.device)
        .map_err(|error| error.to_string())?;
    guarded(|| pollster::block_on(session.step()))?
        .map(|report| report.millis)
        .map_err(|error| error.to_string())
}

/// Values in the reductions check: past 2¹⁸, where burn 0.22's reductions on lavapipe stop
/// reading (its loops end after 65 535 iterations; BENCHMARKS.md, "The monitor's statistics in
/// one pass").
const REDUCTION_CHECK_VALUES: usize = 1 << 21;

/// burn's `sum` and `max` of a long vector on `device` against the CPU: the losses' means and
/// the GDL's per-class sums run over this many voxels on 64³ patches and larger.
fn check_reductions(device: &ComputeDevice) -> Result<(), String> {
    let values: Vec<f32> = (0..REDUCTION_CHECK_VALUES)
        .map(|i| (i % 1000) as f32 / 1000.0)
        .collect();
    let expected_sum: f64 = values.iter().map(|&v| v as f64).sum();
    let mut with_peak = values.clone();
    with_peak[REDUCTION_CHECK_VALUES - 1] = 2.0;
    let upload = |values: Vec<f32>| {
        Tensor::<1>::from_data(
            TensorData::new(values, [REDUCTION_CHECK_VALUES]),
            &device.device,
        )
    };
    let read = guarded(|| {
        pollster::block_on(crate::backend::read_all(vec![
            upload(values).sum(),
            upload(with_peak).max(),
        ]))
    })??;
    let scalar = |index: usize| {
        read[index]
            .clone()
            .try_into_vec::<f32>()
            .map_err(|error| format!("{error:?}"))
            .map(|values| values[0])
    };
    let (sum, max) = (scalar(0)?, scalar(1)?);
    let sum_error = ((sum as f64 - expected_sum) / expected_sum).abs();
    if sum_error > 1e-3 || max != 2.0 {
        return Err(format!(
            "the sum of {REDUCTION_CHECK_VALUES} values came out {sum:.1} (expected \
             {expected_sum:.1}) and their maximum {max} (expected 2)"
        ));
    }
    Ok(())
}

fn inspect(file: &std::path::Path) -> ExitCode {
    let volume = match guarded(|| read_path(file, &Limits::default())) {
        Ok(Ok(volume)) => volume,
        Ok(Err(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
        Err(panic) => {
            eprintln!(
                "error: reading {} failed unexpectedly: {panic}",
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    for warning in &volume.warnings {
        eprintln!("warning: {warning}");
    }
    let data = &volume.data;
    let min = data.iter().cloned().fold(f32::INFINITY, f32::min);
    let max = data.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mean = data.iter().map(|&v| v as f64).sum::<f64>() / data.len().max(1) as f64;
    let header = &volume.header;
    let summary = serde_json::json!({
        "dims": header.dims,
        "datatype": header.datatype.name(),
        "nifti_version": header.version,
        "pixdim": header.pixdim,
        "affine": volume.affine,
        "scl_slope": header.scl_slope,
        "scl_inter": header.scl_inter,
        "min": min,
        "max": max,
        "mean": mean,
    });
    println!("{summary}");
    ExitCode::SUCCESS
}

/// `XxYxZ`, each edge 4–1024 voxels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims(pub [usize; 3]);

impl FromStr for Dims {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let edges: Vec<usize> = text
            .split(['x', 'X', '×'])
            .map(|edge| edge.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("`{text}` is not three whole numbers like 240x240x155"))?;
        match edges[..] {
            [x, y, z] if [x, y, z].iter().all(|edge| (4..=1024).contains(edge)) => {
                Ok(Self([x, y, z]))
            }
            [_, _, _] => Err(format!("each edge of `{text}` must be 4 to 1024 voxels")),
            _ => Err(format!("`{text}` is not three numbers like 240x240x155")),
        }
    }
}

fn models(classes: usize) -> ExitCode {
    if classes < 2 {
        eprintln!("gdl-lab: a segmentation net needs at least 2 classes");
        return ExitCode::FAILURE;
    }
    let device = ComputeDevice::flex(None).device;
    for kind in ModelKind::ALL {
        let parameters = burn::module::Module::num_params(&kind.init(classes, &device));
        println!(
            "{:<7} {:>9} parameters  {}",
            kind.name(),
            parameters,
            kind.describe()
        );
    }
    ExitCode::SUCCESS
}

fn doctor() -> ExitCode {
    println!("gdl-lab {} doctor", env!("CARGO_PKG_VERSION"));
    let flex = ComputeDevice::flex(None);
    let flex_works = match guarded(|| probe_training(&flex)).and_then(|result| result) {
        Ok(ms) => {
            println!(
                "ok    {}; a training step at 8³ took {ms:.1} ms",
                flex.describe()
            );
            true
        }
        Err(reason) => {
            println!("FAIL  flex (CPU): {reason}");
            false
        }
    };
    match guarded(|| pollster::block_on(init_wgpu())).and_then(|result| result) {
        Ok(gpu) => match guarded(|| probe_training(&gpu)).and_then(|result| result) {
            Ok(ms) => {
                println!(
                    "ok    {}; a training step at 8³ took {ms:.1} ms (the first step \
                     compiles shaders)",
                    gpu.describe()
                );
                match check_reductions(&gpu) {
                    Ok(()) => println!(
                        "ok    its reductions over {REDUCTION_CHECK_VALUES} values agree with \
                         the CPU"
                    ),
                    Err(reason) => {
                        println!(
                            "WARN  its reductions are wrong: {reason}. Losses over large \
                             patches (64³ and up) would be wrong on it; train with --backend \
                             flex, or with patches of 32³ or less."
                        );
                        if gpu.describe().contains("llvmpipe") {
                            println!(
                                "      (lavapipe ends every shader loop after 65 535 \
                                 iterations, and burn's reductions loop over the whole axis.)"
                            );
                        }
                    }
                }
            }
            Err(reason) => println!(
                "FAIL  {}: it initialised but cannot train: {reason}",
                gpu.describe()
            ),
        },
        Err(reason) => {
            println!("no    wgpu: {reason}");
            println!(
                "      Without a GPU driver, Debian's mesa-vulkan-drivers provides lavapipe, a \
                 software Vulkan that wgpu can use."
            );
        }
    }
    if flex_works {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The doctor's reductions check passes where reductions are right (flex); on lavapipe it
    /// warns (BENCHMARKS.md), which is the adapter's fault, not the check's.
    #[test]
    fn the_reductions_check_passes_on_the_cpu() {
        assert_eq!(check_reductions(&ComputeDevice::flex(None)), Ok(()));
    }
}
