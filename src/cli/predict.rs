//! `gdl-lab predict`: a trained net (gdl-lab's weights, or a net saved from PyTorch) applied to
//! a scan it never saw, prepared as training prepares one (crop, resample, sliding window) and
//! written back in the scan's own grid with the label values of the file it trained on.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use web_time::Instant;

use super::train::PreparationFlags;
use crate::backend::{ComputeDevice, working_voxel_budget};
use crate::model::weights_info::{WeightsInfo, describe_weights};
use crate::train::{TrainingConfig, TrainingSession};
use crate::volume::files::modality_keys;
use crate::volume::files::read_scans;
use crate::volume::new_scan::new_scan;
use crate::volume::nifti::{img_beside, read_path};
use crate::volume::preprocess::PrepareOptions;
use crate::volume::{
    LabelMapping, Limits, NamedFile, REGION_NAMES, REGION_SHORT, RegionMap, Volume, write_label_map,
};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The net: a .safetensors that gdl-lab wrote (either export), or one saved from PyTorch
    /// (`safetensors.torch.save_file(net.state_dict(), …)`)
    #[arg(long)]
    weights: PathBuf,
    /// The scan's images, one per input channel (repeat it: the net's channels are matched by
    /// modality, t1, t1ce, t2, flair, when its weights name them)
    #[arg(long, required = true)]
    image: Vec<PathBuf>,
    /// Its label map, to score the prediction (hard Dice per label)
    #[arg(long)]
    label: Option<PathBuf>,
    /// Write the prediction here (.nii.gz, in the image's geometry, with the file's label values)
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    preparation: PreparationFlags,
    /// The label value of each of the net's classes, e.g. 0,1,2,4, for weights that do not say
    /// (a net saved from PyTorch); by default the --label map's values, else 0, 1, 2, …
    #[arg(long, value_delimiter = ',')]
    label_values: Vec<i64>,
    /// Write the net's logits for the whole image, in one forward pass, here (.safetensors,
    /// tensor `logits` [1, classes, z, y, x])
    #[arg(long)]
    write_logits: Option<PathBuf>,
    /// What the net's outputs are, for weights that do not say (a net saved from PyTorch):
    /// classes, or regions (BraTS's WT, TC and ET, a sigmoid each, of classes in BraTS's order:
    /// necrotic core, oedema, enhancing tumour)
    #[arg(long)]
    targets: Option<String>,
}

/// Predicts, writes what was asked, and prints a JSON summary as the last line.
pub fn predict(device: &ComputeDevice, args: &PredictArgs) -> ExitCode {
    match run(device, args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(device: &ComputeDevice, args: &PredictArgs) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    let bytes = std::fs::read(&args.weights)
        .map_err(|error| format!("Cannot read {}: {error}.", args.weights.display()))?;
    let mut info = describe_weights(&bytes, &device.device)
        .map_err(|error| format!("{}: {error}", args.weights.display()))?;
    match (args.targets.as_deref(), info.regions.is_some()) {
        (None, _) | (Some("classes"), false) | (Some("regions"), true) => {}
        (Some("regions"), false) if info.classes == REGION_NAMES.len() => {
            let map = RegionMap::brats();
            info.classes = map.classes();
            info.regions = Some(map);
        }
        (Some("regions"), false) => {
            return Err(format!(
                "--targets regions: the net has {} outputs, not the 3 regions WT, TC and ET.",
                info.classes
            ));
        }
        (Some("classes"), true) => {
            return Err(
                "--targets classes: these weights say they are a region net (WT, TC, \
                        ET)."
                    .into(),
            );
        }
        (Some(other), _) => {
            return Err(format!(
                "--targets takes classes or regions, not {other:?}."
            ));
        }
    }
    eprintln!("weights: {}", info.describe());

    let limits = Limits::default();
    let read = |path: &PathBuf| {
        read_path(path, &limits).map_err(|error| format!("{}: {error}", path.display()))
    };
    // Read as the page reads dropped files: a 4D image (the Decathlon's) gives its volumes as
    // channels, a `.hdr` brings the `.img` beside it.
    let mut files = Vec::new();
    for path in &args.image {
        let partner = img_beside(path).transpose()?;
        for path in std::iter::once(path.clone()).chain(partner) {
            let bytes = std::fs::read(&path)
                .map_err(|error| format!("Cannot read {}: {error}.", path.display()))?;
            files.push(NamedFile {
                name: path.display().to_string(),
                bytes,
            });
        }
    }
    let images = read_scans(&files, &limits)?;
    drop(files);
    let label = match &args.label {
        Some(path) => Some((path.display().to_string(), read(path)?)),
        None => None,
    };
    let mapping = LabelMapping {
        values: label_values(&info, &args.label_values, label.as_ref().map(|(_, l)| l))?,
    };
    let scan = new_scan(images, label, &info.channels, info.in_channels, &mapping)?;
    for warning in &scan.warnings {
        eprintln!("warning: {warning}");
    }

    let targets: &[(&str, &str)] = if info.regions.is_some() {
        &[("targets", "regions"), ("warmup", "bce")]
    } else {
        &[]
    };
    let query: Vec<(&str, &str)> = std::iter::once(("model", info.kind.name()))
        .chain(targets.iter().copied())
        .chain(args.preparation.given())
        .collect();
    let query = serde_urlencoded::to_string(query).map_err(|error| error.to_string())?;
    let config = TrainingConfig::from_query(&query)?;
    let options = PrepareOptions {
        crop: config.crop,
        resample: config.resample,
        max_voxels: working_voxel_budget(Some(&device.adapter)),
        margin: 8,
    };
    let mut session =
        TrainingSession::on(config, &scan.volume, device).map_err(|e| e.to_string())?;
    if let Some(map) = &info.regions {
        session
            .use_region_map(map.clone())
            .map_err(|error| error.to_string())?;
    }
    session
        .restore_checkpoint(&bytes, None, info.kind, 0, 0)
        .map_err(|error| format!("{}: {error}", args.weights.display()))?;
    let (evaluation, preparation) =
        pollster::block_on(session.apply_to(&scan, &options)).map_err(|error| error.to_string())?;
    eprintln!("{}", preparation.summary());

    if let Some(path) = &args.out {
        let written = write_label_map(&mapping.file_values(&evaluation.labels), &scan.image)?;
        std::fs::write(path, written)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.write_logits {
        let logits = pollster::block_on(session.whole_volume_logits(&scan.volume))
            .map_err(|error| error.to_string())?;
        super::train::write_logits(path, &logits, &scan.volume)?;
    }
    let mut summary = serde_json::json!({
        "model": info.kind.name(),
        "channels": modality_keys(&scan.names),
        "weights_channels": info.channels,
        "classes": info.classes,
        "label_values": mapping.values,
        "dims": scan.volume.dims,
        "working_dims": preparation.working_dims,
        "windows": evaluation.windows,
        "prediction_seconds": evaluation.millis / 1000.0,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if scan.labelled {
        let by_label: serde_json::Map<String, serde_json::Value> = evaluation
            .dice
            .iter()
            .enumerate()
            .skip(1)
            .map(|(class, d)| (mapping.values[class].to_string(), serde_json::json!(d)))
            .collect();
        summary["dice"] = by_label.into();
        summary["mean_foreground_dice"] = serde_json::json!(evaluation.mean_foreground_dice);
        if !evaluation.region_dice.is_empty() {
            let by_region: serde_json::Map<String, serde_json::Value> = REGION_SHORT
                .iter()
                .zip(&evaluation.region_dice)
                .map(|(region, d)| (region.to_string(), serde_json::json!(d)))
                .collect();
            summary["region_dice"] = by_region.into();
        }
    }
    Ok(summary)
}

/// The file label value of each of the net's classes: as the weights say, else as given, else
/// the label map's values (gdl-lab numbers a label map's values in order, so a map with every
/// class gives them), else 0, 1, 2, …; a sentence when none of these can say.
fn label_values(
    info: &WeightsInfo,
    given: &[i64],
    label: Option<&Volume>,
) -> Result<Vec<i64>, String> {
    if !given.is_empty() {
        if given.len() != info.classes {
            return Err(format!(
                "--label-values names {} values; the net has {} classes.",
                given.len(),
                info.classes
            ));
        }
        return Ok(given.to_vec());
    }
    if let Some(values) = &info.label_values {
        return Ok(values.clone());
    }
    let counting: Vec<i64> = (0..info.classes as i64).collect();
    let Some(label) = label else {
        return Ok(counting);
    };
    let mut seen: std::collections::BTreeSet<i64> = [0].into();
    for &value in &label.data {
        seen.insert(value as i64);
        if seen.len() > info.classes {
            break;
        }
    }
    if seen.len() == info.classes || seen.iter().all(|v| counting.contains(v)) {
        return Ok(if seen.len() == info.classes {
            seen.into_iter().collect()
        } else {
            counting
        });
    }
    Err(format!(
        "The weights do not say which label values their {} classes stand for (a net saved from \
         PyTorch), and the label map's values ({}) do not tell: give --label-values, e.g. \
         0,1,2,4.",
        info.classes,
        seen.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
