//! `gdl-lab train`: the page's engine on NIfTI files, from a terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use web_time::Instant;

use std::cell::RefCell;
use std::rc::Rc;

use crate::backend::ComputeDevice;
use crate::engine::{Command, Devices, Engine, Envelope, Event, ScanIdentity};
use crate::report::ValidationReport;
use crate::train::TrainingConfig;
use crate::view::{BackendChoice, ExportedWeights, PageSettings, PageState};
use crate::volume::cases::read_cases_folder;
use crate::volume::files::{modality_keys, stack_channels};
use crate::volume::nifti::read_path;
use crate::volume::{Dataset, LabelledVolume, Limits, NamedFile, REGION_SHORT};

/// The session settings as flags, with the names of the page's URL state (`--warmup-epochs` or
/// `--warmup_epochs`). Each one left out keeps its default (see README, "The training settings").
#[derive(Args, Debug, Default)]
pub struct SessionFlags {
    /// simple, target or unet
    #[arg(long)]
    model: Option<String>,
    /// What the net outputs: classes (softmax) or regions (BraTS's WT, TC, ET, a sigmoid each)
    #[arg(long)]
    targets: Option<String>,
    /// With --model target: train Simple this many epochs first, then widen it
    #[arg(long, alias = "pretrain_epochs")]
    pretrain_epochs: Option<String>,
    /// The warm-up term: bce or ce
    #[arg(long)]
    warmup: Option<String>,
    /// switch, linear, cosine, sigmoid or constant (λ = ½ after the warm-up)
    #[arg(long)]
    schedule: Option<String>,
    /// Epochs of warm-up before the GDL comes in
    #[arg(long, alias = "warmup_epochs")]
    warmup_epochs: Option<String>,
    /// Epochs over which λ rises from 0 to 1 (not for switch)
    #[arg(long, alias = "ramp_epochs")]
    ramp_epochs: Option<String>,
    /// Weight of the warm-up term
    #[arg(long, alias = "bce_weight")]
    bce_weight: Option<String>,
    /// Weight of the GDL term
    #[arg(long, alias = "gdl_weight")]
    gdl_weight: Option<String>,
    /// GDL class weights: square, simple or uniform
    #[arg(long, alias = "w_type")]
    w_type: Option<String>,
    /// Keep class 0 in the GDL (true or false)
    #[arg(long, alias = "include_background")]
    include_background: Option<String>,
    /// Pool the GDL sums over the batch
    #[arg(long, alias = "batch_dice")]
    batch_dice: Option<String>,
    /// GDL numerator smoothing
    #[arg(long, alias = "smooth_nr")]
    smooth_nr: Option<String>,
    /// GDL denominator smoothing
    #[arg(long, alias = "smooth_dr")]
    smooth_dr: Option<String>,
    /// Inject a lab misuse into the GDL (e.g. label_map_as_target)
    #[arg(long)]
    misuse: Option<String>,
    /// Adam's learning rate
    #[arg(long)]
    lr: Option<String>,
    /// Maximum global gradient norm (0 = no clipping)
    #[arg(long)]
    clip: Option<String>,
    /// Patches per step
    #[arg(long)]
    batch: Option<String>,
    /// Patch steps per epoch
    #[arg(long, alias = "steps_per_epoch")]
    steps_per_epoch: Option<String>,
    /// Epochs to train
    #[arg(long)]
    epochs: Option<String>,
    /// Seeds the weights and the patch sampler
    #[arg(long)]
    seed: Option<String>,
    #[command(flatten)]
    preparation: PreparationFlags,
}

/// How a scan is prepared and predicted: the flags `train` and `predict` share, with the
/// names of the page's URL state.
#[derive(Args, Debug, Default)]
pub struct PreparationFlags {
    /// Edge of the cubic training patches and prediction windows
    #[arg(long)]
    patch: Option<String>,
    /// Crop the scan to the head first (true or false)
    #[arg(long)]
    crop: Option<String>,
    /// Resample the cropped scan to fit the voxel budget (true or false)
    #[arg(long)]
    resample: Option<String>,
    /// Overlap of the prediction windows, per cent: 0, 25 or 50
    #[arg(long)]
    overlap: Option<String>,
}

impl PreparationFlags {
    /// Each flag given, as `(key, value)` of the page's `key=value&…` string.
    pub fn given(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("patch", &self.patch),
            ("crop", &self.crop),
            ("resample", &self.resample),
            ("overlap", &self.overlap),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|value| (key, value)))
    }
}

impl SessionFlags {
    /// The flags given, as the page's `key=value&…` string, parsed and checked by the same code.
    pub fn config(&self) -> Result<TrainingConfig, String> {
        let given = [
            ("model", &self.model),
            ("targets", &self.targets),
            ("pretrain_epochs", &self.pretrain_epochs),
            ("warmup", &self.warmup),
            ("schedule", &self.schedule),
            ("warmup_epochs", &self.warmup_epochs),
            ("ramp_epochs", &self.ramp_epochs),
            ("bce_weight", &self.bce_weight),
            ("gdl_weight", &self.gdl_weight),
            ("w_type", &self.w_type),
            ("include_background", &self.include_background),
            ("batch_dice", &self.batch_dice),
            ("smooth_nr", &self.smooth_nr),
            ("smooth_dr", &self.smooth_dr),
            ("misuse", &self.misuse),
            ("lr", &self.lr),
            ("clip", &self.clip),
            ("batch", &self.batch),
            ("steps_per_epoch", &self.steps_per_epoch),
            ("epochs", &self.epochs),
            ("seed", &self.seed),
        ];
        let pairs: Vec<(&str, &str)> = given
            .iter()
            .filter_map(|(key, value)| value.as_deref().map(|value| (*key, value)))
            .chain(self.preparation.given())
            .collect();
        let query = serde_urlencoded::to_string(pairs).map_err(|error| error.to_string())?;
        TrainingConfig::from_query(&query)
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The scan: .nii, .nii.gz, or .hdr with its .img; given several times, a case's
    /// modalities, each an input channel (in BraTS's order: T1, T1ce, T2, FLAIR, then by name)
    #[arg(long, required_unless_present = "cases", conflicts_with = "cases")]
    image: Vec<PathBuf>,
    /// Its label map, same dims (labels are renumbered to consecutive classes)
    #[arg(long, required_unless_present = "cases", conflicts_with = "cases")]
    label: Option<PathBuf>,
    /// Several cases: a folder of case folders (BraTS's layout: each with its modalities and
    /// its _seg), a folder of several cases' files, or a Decathlon task folder (dataset.json,
    /// imagesTr/, labelsTr/). The last case by name is held out unless --val says otherwise
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Hold this case out for validation (repeatable; replaces the default, the last by name);
    /// `--val none` trains on every case
    #[arg(long, requires = "cases")]
    val: Vec<String>,
    /// Score the held-out cases every this many steps (default: once per epoch) and at the end
    #[arg(long, alias = "val_every")]
    val_every: Option<usize>,
    /// Which weights --export-pytorch and --export-weights write: last, or best (the step with the best mean
    /// validation Dice)
    #[arg(long, default_value = "last")]
    weights: String,
    #[command(flatten)]
    session: SessionFlags,
    /// Steps to train (default: epochs × steps_per_epoch)
    #[arg(long)]
    steps: Option<usize>,
    /// Write every step's report as CSV here
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the whole-volume prediction here (.nii.gz, in the image's geometry)
    #[arg(long)]
    predict: Option<PathBuf>,
    /// Start from these weights rather than a fresh net: a .safetensors that gdl-lab wrote, or
    /// a net saved from PyTorch; it must be for --model with the scan's channels and classes
    /// (Adam starts afresh)
    #[arg(long)]
    init_weights: Option<PathBuf>,
    /// Write the whole run here when training ends (settings, weights, Adam's moments, the
    /// sampler's position, the history, the held-out scores and the SHA-256 of the scan's
    /// files): what --resume and the page's "Open run" take
    #[arg(long)]
    save_run: Option<PathBuf>,
    /// Go on with a run saved by --save-run or the page's "Save run", on the same scan (checked
    /// by the SHA-256 of its files), with its settings (the flags' are not used): --steps more
    /// steps (default: the rest of its epochs), each as the uninterrupted run would have made it
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Write the trained net here (.safetensors under burn's module paths, its metadata naming
    /// the net, classes, channels and label values: what `gdl-lab predict --weights` takes)
    #[arg(long)]
    export_weights: Option<PathBuf>,
    /// Write the trained net for PyTorch into this folder: its weights under PyTorch's names
    /// (.safetensors) and gdl_lab_model.py (the nets, the run's mixed loss, a NIfTI loader)
    #[arg(long)]
    export_pytorch: Option<PathBuf>,
    /// Write the net's logits for the whole image, in one forward pass, here (.safetensors,
    /// tensor `logits` [1, classes, z, y, x]): what the PyTorch copy must reproduce
    #[arg(long)]
    write_logits: Option<PathBuf>,
}

/// Trains, evaluates, writes what was asked, and prints a JSON summary as the last line.
pub fn train(device: &ComputeDevice, args: &TrainArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    let config = match args.session.config() {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let dataset = match load_dataset(args) {
        Ok(dataset) => dataset,
        Err(message) => return fail(message),
    };
    let weights: ExportedWeights = match serde_json::from_value(serde_json::json!(args.weights)) {
        Ok(weights) => weights,
        Err(_) => {
            return fail(format!(
                "--weights takes last or best, not {:?}",
                args.weights
            ));
        }
    };
    let first = &dataset.cases()[0].scan;
    let channels = if first.modalities.is_empty() {
        vec!["image".to_string()]
    } else {
        modality_keys(&first.modalities)
    };
    eprintln!(
        "device: {}\ncases: {} ({} held out), channels: {}\nclasses {}\nsettings: {}",
        device.describe(),
        dataset.cases().len(),
        dataset.validation().count(),
        channels.join(", "),
        first.mapping.describe().join(", "),
        match config.to_query() {
            query if query.is_empty() => "defaults".to_string(),
            query => query,
        }
    );
    for case in dataset.cases() {
        eprintln!(
            "  {}{}: {:?} voxels",
            case.name,
            if dataset.validation().any(|v| v.name == case.name) {
                " (held out)"
            } else {
                ""
            },
            case.scan.volume.dims
        );
    }
    let steps = args.steps.unwrap_or(config.total_steps());
    let steps_per_epoch = config.steps_per_epoch;
    // The page's engine, driven step by step: predictions only when asked (eval_every=0).
    let settings = PageState {
        config,
        page: PageSettings {
            backend: if device.is_gpu_backend() {
                BackendChoice::Gpu
            } else {
                BackendChoice::Cpu
            },
            eval_every: 0,
            val_every: args.val_every.unwrap_or(0),
            weights,
            ..PageSettings::default()
        },
    };
    let devices = Devices {
        gpu: if device.is_gpu_backend() {
            Ok(device.clone())
        } else {
            Err("not asked for".into())
        },
        cpu: ComputeDevice::flex(None),
    };
    let events = Rc::new(RefCell::new(Vec::<Envelope<Event>>::new()));
    let sink_events = events.clone();
    let mut engine = Engine::new(
        devices,
        Box::new(move |event| sink_events.borrow_mut().push(event)),
    );
    let run = |engine: &mut Engine, command: Command| {
        pollster::block_on(engine.handle(Envelope::new(command)));
        std::mem::take(&mut *events.borrow_mut())
    };
    run(
        &mut engine,
        Command::KeptTunings {
            kept: super::tuning_store::load(),
        },
    );
    run(
        &mut engine,
        Command::Configure {
            settings: settings.to_hash(),
        },
    );
    engine.use_dataset(dataset);
    let mut working = None;
    for event in std::mem::take(&mut *events.borrow_mut()) {
        if let Event::Prepared(preparation) = event.message {
            eprintln!("{}", preparation.summary());
            working = Some(preparation.working_dims);
        }
    }
    if let Some(path) = &args.init_weights {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => return fail(format!("Cannot read {}: {error}.", path.display())),
        };
        let name = path.display().to_string();
        let command = Command::LoadWeights { name: Some(name) };
        pollster::block_on(engine.handle(Envelope::with(command, vec![bytes])));
        for event in std::mem::take(&mut *events.borrow_mut()) {
            match event.message {
                Event::Weights {
                    refused: Some(message),
                    ..
                } => return fail(message),
                Event::Weights {
                    loaded: Some(loaded),
                    ..
                } => eprintln!("{loaded}"),
                _ => {}
            }
        }
    }
    match scan_identity(args) {
        Ok(identity) => engine.set_scan_identity(identity),
        Err(message) => return fail(message),
    }
    let mut steps = steps;
    if let Some(path) = &args.resume {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => return fail(format!("Cannot read {}: {error}.", path.display())),
        };
        pollster::block_on(engine.handle(Envelope::with(Command::OpenRun { run: 0 }, vec![bytes])));
        let events = std::mem::take(&mut *events.borrow_mut());
        let opened = events.iter().find_map(|event| match &event.message {
            Event::RunOpened { opened, .. } => Some(opened.clone()),
            _ => None,
        });
        match opened {
            Some(Ok(opened)) if opened.continued => {
                eprintln!("{}", opened.sentence);
                let total = engine.settings().config.total_steps();
                let done = engine.session().map_or(0, |s| s.steps_done());
                steps = args.steps.unwrap_or(total.saturating_sub(done));
            }
            Some(Ok(opened)) => return fail(opened.sentence),
            Some(Err(message)) => return fail(format!("{}: {message}", path.display())),
            None => {
                let failed = events.iter().find_map(|event| match &event.message {
                    Event::Failed { failure, .. } => Some(failure.message.clone()),
                    _ => None,
                });
                return fail(failed.unwrap_or_else(|| "the run could not be opened".into()));
            }
        }
    }
    let scan = engine.scan().expect("just loaded").clone();
    let started = Instant::now();
    // Drawn only when stderr is a terminal; the per-epoch lines are printed either way.
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("{bar:32} {pos}/{len} steps  {msg}  {elapsed} (eta {eta})")
            .expect("a valid template"),
    );
    let failure = |events: &[Envelope<Event>]| {
        events.iter().find_map(|event| match &event.message {
            Event::Failed { failure, .. } => Some(failure.message.clone()),
            Event::ExportFailed { message } => Some(message.clone()),
            _ => None,
        })
    };
    for _ in 0..steps {
        let events = run(&mut engine, Command::Step);
        if let Some(message) = failure(&events) {
            bar.abandon();
            return fail(message);
        }
        for event in &events {
            if let Event::Step { report, .. } = &event.message {
                bar.set_message(format!(
                    "loss {:.4}  GDL {:+.4}  λ {:.2}",
                    report.total, report.gdl, report.lambda
                ));
                bar.inc(1);
                bar.suspend(|| {
                    if report.step % steps_per_epoch == 0 || report.step == steps {
                        eprintln!("{}  ({steps} steps)", report.summary());
                    }
                    if let Some(explanation) = &report.anatomy.explanation {
                        eprintln!("monitor: {explanation}");
                    }
                });
            }
            if let Event::Tuning(report) = &event.message {
                bar.suspend(|| eprintln!("GPU kernels: {}", report.sentence));
                if let Err(message) = super::tuning_store::keep(report) {
                    bar.suspend(|| eprintln!("warning: {message}"));
                }
            }
            if let Event::Validation { report, .. } = &event.message {
                let per_label: Vec<String> = if report.regions {
                    REGION_SHORT
                        .iter()
                        .zip(&report.dice)
                        .map(|(region, dice)| format!("{region} {dice:.3}"))
                        .collect()
                } else {
                    report
                        .dice
                        .iter()
                        .enumerate()
                        .skip(1)
                        .map(|(class, dice)| format!("{} {dice:.3}", scan.mapping.values[class]))
                        .collect()
                };
                bar.suspend(|| {
                    eprintln!(
                        "held out  step {:5}  Dice {}  (mean {:.3})",
                        report.step,
                        per_label.join(" · "),
                        report.mean_foreground_dice
                    )
                });
            }
        }
    }
    bar.finish_and_clear();
    let steps_done = engine.session().map_or(0, |s| s.steps_done());
    let evaluated_now = engine.evaluation().is_some()
        && engine.history().last().map(|r| r.step) == Some(steps_done);
    if !evaluated_now {
        eprintln!("predicting the whole volume with sliding windows…");
        if let Some(message) = failure(&run(&mut engine, Command::Predict)) {
            return fail(message);
        }
    }
    let Some(evaluation) = engine.evaluation().cloned() else {
        return fail("the prediction was not made".into());
    };
    let seconds = started.elapsed().as_secs_f64();
    let exported = |engine: &mut Engine, command: Command| -> Result<Vec<u8>, String> {
        let mut events = run(engine, command);
        if let Some(message) = failure(&events) {
            return Err(message);
        }
        match events.pop() {
            Some(Envelope {
                message: Event::Export { .. },
                mut buffers,
            }) if buffers.len() == 1 => Ok(buffers.remove(0)),
            _ => Err("the export gave no file".into()),
        }
    };
    for (path, command) in [
        (&args.report, Command::ExportHistory),
        (&args.predict, Command::ExportPrediction),
        (&args.export_weights, Command::ExportWeights),
        (
            &args.save_run,
            Command::SaveRun {
                scan_files: Vec::new(),
            },
        ),
    ] {
        let Some(path) = path else {
            continue;
        };
        let written = exported(&mut engine, command).and_then(|bytes| {
            std::fs::write(path, bytes)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))
        });
        if let Err(message) = written {
            return fail(message);
        }
    }
    if let Some(dir) = &args.export_pytorch
        && let Err(message) = export_pytorch(&run(&mut engine, Command::ExportPytorch), dir)
    {
        return fail(message);
    }
    if let Some(path) = &args.write_logits {
        let session = engine.session().expect("trained");
        let logits = scan.full_volume().and_then(|volume| {
            pollster::block_on(session.whole_volume_logits(&volume))
                .map_err(|error| error.to_string())
                .and_then(|logits| write_logits(path, &logits, &volume))
        });
        if let Err(message) = logits {
            return fail(message);
        }
    }
    let mapping = &scan.mapping;
    let by_label = |dice: &[f32]| -> serde_json::Map<String, serde_json::Value> {
        dice.iter()
            .enumerate()
            .skip(1)
            .map(|(class, dice)| (mapping.values[class].to_string(), serde_json::json!(dice)))
            .collect()
    };
    let by_region = |dice: &[f32]| -> serde_json::Map<String, serde_json::Value> {
        REGION_SHORT
            .iter()
            .zip(dice)
            .map(|(region, dice)| (region.to_string(), serde_json::json!(dice)))
            .collect()
    };
    let scored = |report: &ValidationReport| {
        if report.regions {
            by_region(&report.dice)
        } else {
            by_label(&report.dice)
        }
    };
    let train = match pollster::block_on(engine.score_cases(false)) {
        Ok(report) => report,
        Err(error) => return fail(error.to_string()),
    };
    // The held-out cases scored at the last step, also when `--steps` ended the run before an
    // epoch (or the run's end) scored them.
    let scored_now = match engine.validation().last() {
        Some(report) if report.step == steps_done => None,
        _ => match pollster::block_on(engine.score_cases(true)) {
            Ok(report) => report,
            Err(error) => return fail(error.to_string()),
        },
    };
    let last_val = scored_now.as_ref().or(engine.validation().last());
    let best = engine.best_validation();
    println!(
        "{}",
        serde_json::json!({
            "dice": by_label(&evaluation.dice),
            "mean_foreground_dice": evaluation.mean_foreground_dice,
            "region_dice": (!evaluation.region_dice.is_empty())
                .then(|| by_region(&evaluation.region_dice)),
            "train_dice": train.as_ref().map(scored),
            "val_dice": last_val.map(scored),
            "val_mean_foreground_dice": last_val.map(|r| r.mean_foreground_dice),
            "best_step": best.map(|r| r.step),
            "best_val_dice": best.map(scored),
            "val_history": engine
                .validation()
                .iter()
                .map(|r| serde_json::json!([r.step, r.mean_foreground_dice]))
                .collect::<Vec<_>>(),
            "cases": {
                "train": engine.training_case_names(),
                "val": last_val.map(|r| r.cases.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>()),
            },
            "channels": channels,
            "class_names": scan.class_names,
            "steps": steps_done,
            "seconds": seconds,
            "working_dims": working,
            "prediction_seconds": evaluation.millis / 1000.0,
            "prediction_windows": evaluation.windows,
            "backend": device.adapter.backend,
        })
    );
    ExitCode::SUCCESS
}

/// The cases to train on: `--cases` (held out as `--val` says), or `--image` (one or more
/// modalities) with `--label`.
fn load_dataset(args: &TrainArgs) -> Result<Dataset, String> {
    let limits = Limits::default();
    if let Some(dir) = &args.cases {
        let mut dataset = read_cases_folder(dir, &limits)?;
        match &args.val[..] {
            [] => {}
            [none] if none == "none" => dataset.hold_out(&[])?,
            names => dataset.hold_out(names)?,
        }
        return Ok(dataset);
    }
    let read = |path: &Path| {
        read_path(path, &limits)
            .map(|volume| (path.display().to_string(), volume))
            .map_err(|error| format!("{}: {error}", path.display()))
    };
    let label = args
        .label
        .as_ref()
        .ok_or("--label is needed with --image")?;
    let label = read(label)?;
    let images = args
        .image
        .iter()
        .map(|path| read(path))
        .collect::<Result<Vec<_>, _>>()?;
    for (_, volume) in images.iter().chain([&label]) {
        for warning in &volume.warnings {
            eprintln!("warning: {warning}");
        }
    }
    stack_channels(images, label, None, &[]).map(Dataset::single)
}

/// Which scan this is, by the SHA-256 of the files given (`--image`s and `--label`, with the
/// `.img` beside a `.hdr`; or every file of the `--cases` folder), for a saved run to know it.
fn scan_identity(args: &TrainArgs) -> Result<ScanIdentity, String> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &args.cases {
        let mut todo = vec![dir.clone()];
        while let Some(folder) = todo.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|error| {
                format!("Cannot read the folder {}: {error}.", folder.display())
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    paths.push(path);
                }
            }
        }
    } else {
        for path in args.image.iter().chain(&args.label) {
            paths.push(path.clone());
            let img = path.with_extension("img");
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("hdr"))
                && img.exists()
            {
                paths.push(img);
            }
        }
    }
    paths.sort();
    let files = paths
        .iter()
        .map(|path| {
            std::fs::read(path)
                .map(|bytes| NamedFile {
                    name: path.display().to_string(),
                    bytes,
                })
                .map_err(|error| format!("Cannot read {}: {error}.", path.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ScanIdentity::of_files(&files))
}

/// The files of an `ExportPytorch` into `dir` (made if missing), under the names the engine
/// gave them.
fn export_pytorch(events: &[Envelope<Event>], dir: &Path) -> Result<(), String> {
    if let Some(message) = events.iter().find_map(|event| match &event.message {
        Event::ExportFailed { message } => Some(message.clone()),
        _ => None,
    }) {
        return Err(message);
    }
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot make {}: {error}", dir.display()))?;
    for event in events {
        if let (Event::Export { name, .. }, [bytes]) = (&event.message, &event.buffers[..]) {
            let path = dir.join(name);
            std::fs::write(&path, bytes)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// `logits` (`[1, classes, z, y, x]` of `volume`) as a `.safetensors` file with one tensor.
pub(super) fn write_logits(
    path: &Path,
    logits: &[f32],
    volume: &LabelledVolume,
) -> Result<(), String> {
    let [nx, ny, nz] = volume.dims;
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape = vec![1, logits.len() / (nx * ny * nz), nz, ny, nx];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
        .map_err(|error| error.to_string())?;
    let file = safetensors::serialize([("logits", view)], None).map_err(|e| e.to_string())?;
    std::fs::write(path, file).map_err(|error| format!("cannot write {}: {error}", path.display()))
}
