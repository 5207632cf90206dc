//! A whole run in one file ("Save run", `gdl-lab train --save-run`) and opened again ("Open
//! run", `--resume`). The file is a `.safetensors`, so any safetensors reader can look inside:
//! the weights and Adam's moments (each a `.safetensors` of its own, stored as a byte tensor),
//! the scan's files when asked, and the run's record (settings, step, sampler position, history,
//! held-out scores, and the scan's file names with the SHA-256 of their bytes, by which a later
//! scan is known to be the same one) as MessagePack; the metadata names the format, its version,
//! the settings, the step and the scan, for anyone looking.

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Engine;
use crate::engine::protocol::{Checkpoint, Event, OpenedRun};
use crate::report::{StepReport, ValidationReport};
use crate::view::PageState;
use crate::volume::Limits;
use crate::volume::NamedFile;
use crate::volume::cases::load_dropped_cases;

/// The `format` in a run file's metadata.
const RUN_FORMAT: &str = "gdl-lab-run";
/// The newest run file this build reads (and the one it writes).
const RUN_VERSION: u32 = 1;

/// Which scan a run was trained on: its files' names, and the SHA-256 of each file's bytes
/// (sorted: the same files under other names, or dropped in another order, are the same scan);
/// for the built-in phantoms, a description instead.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanIdentity {
    pub names: Vec<String>,
    pub digests: Vec<String>,
}

impl ScanIdentity {
    /// The files' names and the SHA-256 of their bytes.
    pub fn of_files(files: &[NamedFile]) -> Self {
        let mut digests: Vec<String> = files
            .iter()
            .map(|file| {
                Sha256::digest(&file.bytes)
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect()
            })
            .collect();
        digests.sort();
        Self {
            names: files.iter().map(|file| file.name.clone()).collect(),
            digests,
        }
    }

    /// A scan made in memory (the phantoms): what makes it, e.g. `demo phantom 64`.
    pub fn built_in(description: String) -> Self {
        Self {
            names: vec![description.clone()],
            digests: vec![description],
        }
    }
}

/// What a run file's metadata holds.
#[derive(Serialize, Deserialize)]
struct RunRecord {
    version: u32,
    settings: String,
    checkpoint: Checkpoint,
    history: Vec<StepReport>,
    validation: Vec<ValidationReport>,
    scan: ScanIdentity,
    scan_name: String,
    /// The names of the scan's files stored in the file (tensors `scan.0`, `scan.1`, …).
    included: Vec<String>,
}

/// A run file read back: the record, the weights, Adam's moments and the scan's files if any.
struct RunFile {
    record: RunRecord,
    weights: Vec<u8>,
    moments: Vec<u8>,
    files: Vec<NamedFile>,
}

fn bytes_tensor(bytes: &[u8]) -> Result<TensorView<'_>, String> {
    TensorView::new(Dtype::U8, vec![bytes.len()], bytes).map_err(|error| error.to_string())
}

/// The run file of `record`; a sentence if it cannot be written.
fn write_run(
    record: &RunRecord,
    weights: &[u8],
    moments: &[u8],
    files: &[Vec<u8>],
) -> Result<Vec<u8>, String> {
    let mut tensors = vec![
        ("weights".to_string(), bytes_tensor(weights)?),
        ("moments".to_string(), bytes_tensor(moments)?),
    ];
    for (index, bytes) in files.iter().enumerate() {
        tensors.push((format!("scan.{index}"), bytes_tensor(bytes)?));
    }
    // The record as MessagePack (floats bit for bit: a step's time is an f64 that JSON text
    // does not always bring back to the same bits), its summary readable in the metadata.
    let encoded = rmp_serde::to_vec_named(record).map_err(|error| error.to_string())?;
    tensors.push(("record".to_string(), bytes_tensor(&encoded)?));
    let metadata = [
        ("format".to_string(), RUN_FORMAT.to_string()),
        ("version".to_string(), record.version.to_string()),
        ("settings".to_string(), record.settings.clone()),
        ("step".to_string(), record.checkpoint.step.to_string()),
        ("scan".to_string(), record.scan_name.clone()),
    ]
    .into_iter()
    .collect();
    safetensors::serialize(tensors, Some(metadata)).map_err(|error| error.to_string())
}

/// A run file's parts; a sentence for anything that is not a run file this build can open.
fn read_run(bytes: &[u8]) -> Result<RunFile, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|error| {
        // A run file cut short still names its format near the start.
        let head = &bytes[..bytes.len().min(1 << 16)];
        if head
            .windows(RUN_FORMAT.len())
            .any(|w| w == RUN_FORMAT.as_bytes())
        {
            format!("The run file is damaged ({error}); nothing was changed.")
        } else {
            format!("This is not a gdl-lab run file ({error}).")
        }
    })?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if metadata.get("format").map(String::as_str) != Some(RUN_FORMAT) {
        return Err(
            "This is not a gdl-lab run file (a .safetensors without a run in it: \
                    weights go to “Start from weights”)."
                .into(),
        );
    }
    let version = metadata.get("version").and_then(|v| v.parse::<u64>().ok());
    match version {
        Some(v) if v > u64::from(RUN_VERSION) => {
            return Err(format!(
                "This run file is of version {v}, newer than this gdl-lab reads ({RUN_VERSION}): \
                 open it with a newer gdl-lab."
            ));
        }
        None => return Err("The run file is damaged (it has no version).".into()),
        _ => {}
    }
    let file = SafeTensors::deserialize(bytes)
        .map_err(|error| format!("The run file is damaged ({error})."))?;
    let record: RunRecord = file
        .tensor("record")
        .map_err(|_| "The run file is damaged (it has no record).".to_string())
        .and_then(|view| {
            rmp_serde::from_slice(view.data())
                .map_err(|error| format!("The run file's record is damaged ({error})."))
        })?;
    PageState::from_hash(&record.settings)
        .map_err(|error| format!("The run file's settings cannot be used: {error}"))?;
    let tensor = |name: &str| -> Result<Vec<u8>, String> {
        file.tensor(name)
            .map(|view| view.data().to_vec())
            .map_err(|_| format!("The run file has no {name}."))
    };
    let files = record
        .included
        .iter()
        .enumerate()
        .map(|(index, name)| {
            tensor(&format!("scan.{index}")).map(|bytes| NamedFile {
                name: name.clone(),
                bytes,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(RunFile {
        weights: tensor("weights")?,
        moments: tensor("moments")?,
        files,
        record,
    })
}

impl Engine {
    /// The run as one file (an `Export`), with the scan's files `scan_files` (buffers) in it
    /// when given.
    pub(super) async fn save_run(&mut self, scan_files: Vec<String>, buffers: Vec<Vec<u8>>) {
        let Some(session) = &self.session else {
            return self.export_failed("Train a step first: a run is saved with its net.");
        };
        let checkpoint = Checkpoint {
            step: session.steps_done(),
            model: session.net().kind(),
            sampler_position: session.sampler_position(),
        };
        let weights = crate::model::weights::to_safetensors(session.net(), &[]).await;
        let moments = session.adam_moments().await.map_err(|e| e.to_string());
        let (weights, moments) = match (weights, moments) {
            (Ok(weights), Ok(moments)) => (weights, moments),
            (Err(message), _) | (_, Err(message)) => return self.export_failed(&message),
        };
        if scan_files.len() != buffers.len() {
            return self.export_failed("The scan's files came without their bytes.");
        }
        let scan_name = self
            .scan
            .as_ref()
            .map_or_else(String::new, |scan| scan.image_name.clone());
        let step = checkpoint.step;
        let record = RunRecord {
            version: RUN_VERSION,
            settings: self.settings.to_hash(),
            checkpoint,
            history: self.history.clone(),
            validation: self.validation.clone(),
            scan: self.scan_identity.clone(),
            scan_name: scan_name.clone(),
            included: scan_files,
        };
        match write_run(&record, &weights, &moments, &buffers) {
            Ok(bytes) => {
                let stem = super::exports::scan_stem(&scan_name);
                let name = format!("gdl-lab-run-{stem}-step{step}.gdlrun");
                self.export(&name, "application/octet-stream", bytes);
            }
            Err(message) => self.export_failed(&message),
        }
    }

    /// Opens a run file as run `run`: on the scan it was trained on it goes on from where it
    /// stopped (bit for bit, on the same device and thread count); on another it opens for
    /// viewing; a damaged file or one of an unknown version gets a sentence and changes nothing.
    pub(super) async fn open_run(&mut self, run: u64, bytes: Vec<u8>) {
        let refuse = |engine: &mut Self, message: String| {
            engine.emit(Event::RunOpened {
                run,
                opened: Err(message),
            });
        };
        let file = match read_run(&bytes) {
            Ok(file) => file,
            Err(message) => return refuse(self, message),
        };
        drop(bytes);
        let RunFile {
            record,
            weights,
            moments,
            files,
        } = file;
        if !files.is_empty() {
            let identity = ScanIdentity::of_files(&files);
            match load_dropped_cases(files, &Limits::default(), None) {
                Ok(dataset) => {
                    self.use_dataset(dataset);
                    self.scan_identity = identity;
                }
                Err(message) => {
                    return refuse(self, format!("The scan in the run file: {message}"));
                }
            }
        }
        let same_scan =
            !record.scan.digests.is_empty() && record.scan.digests == self.scan_identity.digests;
        // The run's settings, on the device chosen here (a device belongs to the machine, not
        // to the run).
        let mut settings = PageState::from_hash(&record.settings).expect("checked when read");
        settings.page.backend = self.settings.page.backend;
        let settings = settings.to_hash();
        let opened = |continued: bool, sentence: String| OpenedRun {
            continued,
            settings: settings.clone(),
            history: record.history.clone(),
            validation: record.validation.clone(),
            scan_name: record.scan_name.clone(),
            sentence,
        };
        if !same_scan {
            let sentence = format!(
                "This run was trained on {} ({} steps); the scan loaded now is another, so it \
                 opens for viewing. Load that scan (the same files) and open it again to go on.",
                record.scan_name,
                record.history.len()
            );
            self.emit(Event::RunOpened {
                run,
                opened: Ok(opened(false, sentence)),
            });
            return;
        }
        let step = record.checkpoint.step;
        self.configure(&settings);
        self.restore(
            run,
            record.checkpoint.clone(),
            record.history.clone(),
            vec![weights, moments],
        )
        .await;
        if self.session.is_none() {
            return; // restore said why
        }
        self.validation = record.validation.clone();
        let sentence = format!(
            "Opened the run on {} at step {step}; the next steps go on from there.",
            record.scan_name
        );
        self.emit(Event::RunOpened {
            run,
            opened: Ok(opened(true, sentence)),
        });
    }
}
