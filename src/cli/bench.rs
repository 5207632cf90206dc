//! `gdl-lab bench`: times training steps, or a whole-volume prediction, and reports peak memory.
//! BENCHMARKS.md's rows come from here and from `bench/pytorch_step.py`.

use super::Dims;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use web_time::Instant;

use super::BackendChoice;
use crate::backend::ComputeDevice;
use crate::engine::probe;
use crate::engine::protocol::TuningReport;
use crate::engine::tuning::{self, Reference, TUNING_BUDGET_S, tuning_key};
use crate::model::ModelKind;
use crate::model::conv::{self, ConvAlgorithm};
use crate::model::kernel_choice::KernelChoice;
use crate::model::kernels::tiles::{Tiles, set_tiles};
use crate::sample::normalise_channels;
use crate::train::{TrainingConfig, TrainingSession};
use crate::volume::{LabelledVolume, SyntheticConfig, synthetic_volume};
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = BenchModel::Target)]
    model: BenchModel,
    /// Edge of the cubic volume and patch (the prediction window with --predict), in voxels; a
    /// multiple of 4 for the U-Net
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(4..=256))]
    size: u16,
    /// Timed steps
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps first (shader compilation, autotuning, allocator warm-up)
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Backend to train on
    #[arg(long, value_enum, default_value_t = BackendChoice::Flex)]
    pub backend: BackendChoice,
    /// Instead of training steps, time one sliding-window prediction (50 % overlap, Gaussian
    /// blending, --size windows) of a volume of these dims, e.g. 240x240x155
    #[arg(long)]
    predict: Option<Dims>,
    /// How the nets run their 3D convolutions: auto and tiled (gdl-lab's own kernels: tiled on a
    /// GPU, im2col tiles and gemm on flex), gemm (im2col + matmul in burn's tensor operations)
    /// or burn (burn's conv3d)
    #[arg(long, default_value = "auto", value_parser = parse_conv_algorithm)]
    conv: ConvAlgorithm,
    /// The tiled convolution kernels' tile sizes, to compare them on one GPU without a rebuild:
    /// e.g. channels=16,voxels=4,along=y,workgroup=64,weight_grad_threads=65536 (any of these;
    /// the others keep their defaults). Given several times, the same session times --warmup and
    /// --steps steps with each in turn, and the summary's `by_tiles` lists them all
    #[arg(long)]
    tiles: Vec<Tiles>,
    /// Input channels (modalities): the volume's image repeated, each copy scaled differently,
    /// to time what a four-modality case costs against one
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    channels: u8,
    /// Before timing, run the GPU's tuning pass at these settings as `train` does before its
    /// first step (each candidate kernel set checked against the CPU), keep its choice for
    /// `train`, and time the chosen kernels; the summary's `tuning` holds what each candidate
    /// took, the default's step time among them
    #[arg(long, conflicts_with = "tiles")]
    tune: bool,
    /// CPU threads for flex (rayon's pool), to match `pytorch_step.py --threads`; 0: one per core
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn parse_conv_algorithm(text: &str) -> Result<ConvAlgorithm, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("`{text}` is not one of auto, tiled, gemm, burn"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BenchModel {
    Simple,
    Target,
    Unet,
}

impl BenchModel {
    fn kind(self) -> ModelKind {
        match self {
            Self::Simple => ModelKind::Simple,
            Self::Target => ModelKind::Target,
            Self::Unet => ModelKind::Unet,
        }
    }
}

/// The settings `bench` times, matching `bench/pytorch_step.py`: the whole `size`³ volume as
/// one patch, 0.5 × BCE-with-logits + 0.5 × the 1/G-weighted GDL every step (the constant
/// schedule: λ = ½ from the first step), clipping at norm 1, Adam at 1e-3.
fn bench_config(model: ModelKind, size: usize) -> TrainingConfig {
    TrainingConfig {
        model,
        warmup: crate::loss::WarmupLoss::Bce,
        schedule: crate::loss::Schedule::Constant,
        warmup_epochs: 0.0,
        bce_weight: 1.0,
        gdl_weight: 1.0,
        w_type: crate::loss::WeightType::Simple,
        patch: size,
        batch: 1,
        lr: 1e-3,
        clip: 1.0,
        steps_per_epoch: 1,
        // As many as a session allows: the bench stops when it has timed enough.
        epochs: crate::train::config::MAX_STEPS,
        ..TrainingConfig::default()
    }
}

/// `--threads`: flex's thread pool, pinned before anything starts it (rayon's global pool is
/// made once, at its first use; describing the CPU device counts its threads, so this must come
/// before the device is chosen).
pub fn pin_threads(args: &BenchArgs) -> Result<(), ExitCode> {
    if args.threads > 0
        && let Err(error) = rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global()
    {
        eprintln!("error: cannot set {} threads: {error}", args.threads);
        return Err(ExitCode::from(2));
    }
    Ok(())
}

pub fn bench(device: &ComputeDevice, args: &BenchArgs) -> ExitCode {
    eprintln!("device: {}", device.describe());
    conv::set_algorithm(args.conv);
    let mut tiles = match args.tiles.as_slice() {
        [] => vec![Tiles::default()],
        given => given.to_vec(),
    };
    let model = args.model.kind();
    let size = args.size as usize;
    let mut volume = match args.predict {
        Some(Dims(dims)) => volume_of(dims, SyntheticConfig::default().classes),
        None => synthetic_volume(SyntheticConfig {
            size,
            ..SyntheticConfig::default()
        }),
    };
    let first = volume.image.clone();
    for channel in 1..args.channels as usize {
        volume
            .image
            .extend(first.iter().map(|v| v * (1.0 + channel as f32)));
        volume.channels += 1;
    }
    let tuning = match args.tune {
        true => match tune(device, &bench_config(model, size), &volume) {
            Ok((summary, chosen)) => {
                if let KernelChoice::Tiled(chosen) = chosen {
                    tiles = vec![chosen];
                }
                Some(summary)
            }
            Err(code) => return code,
        },
        false => None,
    };
    let mut session = match TrainingSession::on(bench_config(model, size), &volume, device) {
        Ok(session) => session,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let timing = match args.predict {
        Some(Dims(dims)) => {
            set_tiles(tiles[0]);
            time_prediction(&session, dims)
        }
        None => time_steps_with_each(&mut session, &tiles, args.steps, args.warmup),
    };
    let mut summary = match timing {
        Ok(summary) => summary,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let extra = serde_json::json!({
        "backend": device.adapter.backend,
        "adapter": device.adapter.name,
        "model": model.name(),
        "size": size,
        "channels": args.channels,
        "conv": args.conv.name(),
        // The path the net's layers take.
        "conv_path": args.conv.path().name(),
        "tiles": tiles[0].to_string(),
        "peak_rss_mib": peak_resident_mib(),
        "threads": rayon::current_num_threads(),
        "parameters": burn::module::Module::num_params(session.net()),
        "warmup_steps": args.warmup,
        "lambda": session.config().loss().lambda(0.0),
        "tuning": tuning,
    });
    if let (Some(summary), serde_json::Value::Object(extra)) = (summary.as_object_mut(), extra) {
        summary.extend(extra);
    }
    println!("{summary}");
    ExitCode::SUCCESS
}

/// `--tune`: the engine's tuning pass on `device` at `config`, against flex's first steps; the
/// choice is set, kept for `train`, and returned with a summary of every candidate.
fn tune(
    device: &ComputeDevice,
    config: &TrainingConfig,
    volume: &LabelledVolume,
) -> Result<(serde_json::Value, KernelChoice), ExitCode> {
    if !device.is_gpu_backend() {
        eprintln!("error: --tune chooses the GPU's kernels; add --backend wgpu");
        return Err(ExitCode::from(2));
    }
    let mut normalised = volume.clone();
    normalise_channels(&mut normalised);
    let volume = Arc::new(normalised);
    let cpu = ComputeDevice::flex(None);
    let on_cpu = match pollster::block_on(probe::time_steps(
        config,
        &volume,
        &cpu,
        None,
        None,
        probe::PROBE_STEPS,
    )) {
        Ok(timed) => timed,
        Err(error) => {
            eprintln!("error: the CPU's reference steps failed: {error}");
            return Err(ExitCode::FAILURE);
        }
    };
    let candidates = KernelChoice::candidates();
    let reference = Reference {
        config,
        volume: &volume,
        cpu: &on_cpu,
    };
    let tuning = pollster::block_on(tuning::tune(
        &reference,
        device,
        &candidates,
        TUNING_BUDGET_S,
        None,
        &mut |index| match candidates.get(index) {
            Some(choice) => eprintln!("tuning: timing {}", choice.describe()),
            None => eprintln!("tuning: the fastest and the defaults again"),
        },
    ));
    eprintln!("GPU kernels: {}", tuning.sentence());
    let chosen = tuning
        .chosen()
        .map(|(choice, _)| choice)
        .unwrap_or_default();
    chosen.apply();
    let report = TuningReport {
        sentence: tuning.sentence(),
        keep: tuning.to_keep(tuning_key(device, config)),
        forget: None,
    };
    if let Err(message) = super::tuning_store::keep(&report) {
        eprintln!("warning: {message}");
    }
    let tried: Vec<serde_json::Value> = tuning
        .tried
        .iter()
        .map(|tried| {
            serde_json::json!({
                "kernels": tried.choice.to_string(),
                "median_step_ms": tried.timed_ms,
                "refused": tried.outcome.as_ref().err(),
                "seconds": tried.seconds,
            })
        })
        .collect();
    let summary = serde_json::json!({
        "sentence": report.sentence,
        "chosen": chosen.to_string(),
        "chosen_ms": tuning.chosen().map(|(_, ms)| ms),
        "default_ms": tuning.default_ms(),
        "seconds": tuning.seconds,
        "untimed": tuning.untimed,
        "tried": tried,
    });
    Ok((summary, chosen))
}

/// [`time_steps`] with each of `tiles` in turn: the first's times, and with more than one,
/// `by_tiles` holding each one's.
fn time_steps_with_each(
    session: &mut TrainingSession,
    tiles: &[Tiles],
    steps: usize,
    warmup: usize,
) -> Result<serde_json::Value, String> {
    let mut each = Vec::with_capacity(tiles.len());
    for tiles in tiles {
        set_tiles(*tiles);
        eprintln!("tiles {tiles}");
        let mut timing = time_steps(session, steps, warmup)?;
        timing["tiles"] = tiles.to_string().into();
        each.push(timing);
    }
    let mut summary = each[0].clone();
    if each.len() > 1 {
        summary["by_tiles"] = each.into();
    }
    Ok(summary)
}

/// Median and first of `warmup + steps` training steps.
fn time_steps(
    session: &mut TrainingSession,
    steps: usize,
    warmup: usize,
) -> Result<serde_json::Value, String> {
    let mut seconds = Vec::with_capacity(steps + warmup);
    for index in 0..warmup + steps.max(1) {
        let started = Instant::now();
        let report = pollster::block_on(session.step()).map_err(|error| error.to_string())?;
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!(
            "{} step {:>3}: {:8.1} ms  (total loss {:.4})",
            if index < warmup { "warm-up" } else { "timed  " },
            index + 1,
            elapsed * 1000.0,
            report.total
        );
        seconds.push(elapsed);
    }
    let mut timed = seconds[warmup.min(seconds.len() - 1)..].to_vec();
    timed.sort_by(f64::total_cmp);
    let median = if timed.len() % 2 == 1 {
        timed[timed.len() / 2]
    } else {
        (timed[timed.len() / 2 - 1] + timed[timed.len() / 2]) / 2.0
    };
    Ok(serde_json::json!({
        "median_step_s": median,
        "first_step_s": seconds[0],
        "steps": timed.len(),
    }))
}

/// One whole-volume prediction of the (untrained) net: the cost does not depend on the weights.
fn time_prediction(
    session: &TrainingSession,
    dims: [usize; 3],
) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    let evaluation = pollster::block_on(session.evaluate()).map_err(|error| error.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "predicted {}x{}x{} in {:.2} s ({} windows)",
        dims[0], dims[1], dims[2], seconds, evaluation.windows
    );
    Ok(serde_json::json!({
        "predict_s": seconds,
        "dims": dims,
        "windows": evaluation.windows,
    }))
}

/// A volume of any dims for timing predictions: a sphere of class 1 in a background, so that
/// the session accepts it; the content does not change the cost.
fn volume_of(dims: [usize; 3], classes: usize) -> LabelledVolume {
    let [nx, ny, nz] = dims;
    let centre = dims.map(|n| n as f32 / 2.0);
    let radius = dims.iter().copied().min().unwrap_or(4) as f32 / 3.0;
    let mut image = Vec::with_capacity(nx * ny * nz);
    let mut labels = Vec::with_capacity(nx * ny * nz);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let distance = [x, y, z]
                    .iter()
                    .zip(centre)
                    .map(|(&p, c)| (p as f32 - c).powi(2))
                    .sum::<f32>()
                    .sqrt();
                let class = ((radius - distance) / radius * classes as f32)
                    .clamp(0.0, (classes - 1) as f32) as u8;
                labels.push(class);
                image.push(class as f32 + 0.1 * ((x ^ y ^ z) % 7) as f32);
            }
        }
    }
    LabelledVolume {
        dims,
        image,
        channels: 1,
        labels,
        classes,
    }
}

/// The process's peak resident memory (VmHWM) in MiB, where the OS reports it (Linux); on the
/// wgpu backend with a software Vulkan driver this includes the "GPU" buffers, which live in
/// host memory.
fn peak_resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
