//! What the page (or the CLI) and the engine say to each other. Every message is plain data:
//! in the browser it crosses from the page's thread to the worker and back, as postcard bytes
//! (which keep NaN and infinities, unlike JSON) plus the large arrays as separate buffers.

use serde::{Deserialize, Serialize};

use crate::backend::{AdapterSummary, BackendKind};
use crate::loss::Misuse;
use crate::model::ModelKind;
use crate::report::{Evaluation, GdlAnatomy, StepReport, ValidationReport};
use crate::view::BackendChoice;
use crate::volume::preprocess::Preparation;
use crate::volume::{LabelMapping, LoadedScan};

/// A message with its large arrays beside it (file contents, voxels, export bytes), which the
/// browser moves between threads without copying.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope<T> {
    pub message: T,
    pub buffers: Vec<Vec<u8>>,
}

impl<T> Envelope<T> {
    pub fn new(message: T) -> Self {
        Self {
            message,
            buffers: Vec::new(),
        }
    }

    pub fn with(message: T, buffers: Vec<Vec<u8>>) -> Self {
        Self { message, buffers }
    }
}

/// What the engine is asked to do. Commands run one at a time, in the order they were sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// The page's settings, as its URL hash (`PageState::to_hash`). Changed training settings
    /// end the session, as a reset does; a changed learning rate alone goes on with the run.
    Configure {
        settings: String,
    },
    /// Make the demo phantom of `size`³ voxels and use it.
    LoadDemo {
        size: usize,
    },
    /// Make the demo set: `cases` phantoms of `size`³ with four modalities each, the last held
    /// out, and use it.
    LoadDemoCases {
        size: usize,
        cases: usize,
    },
    /// Files dropped together, one buffer per name, in order: one case, or several (grouped by
    /// folder or name stem; the last by name held out). For a case with several images every
    /// one is an input channel, or (`channels`) those named, by file name.
    LoadFiles {
        names: Vec<String>,
        #[serde(default)]
        channels: Option<Vec<String>>,
    },
    /// The two pickers: the image's files, then the label map's (buffers in that order).
    LoadPair {
        image: Vec<String>,
        label: Vec<String>,
    },
    /// Start the next run from these weights (buffer: a `.safetensors` that gdl-lab wrote, or a
    /// net saved from PyTorch), named `name`; checked against the settings' net and the scan's
    /// channels and classes first. `None` goes back to a fresh initialisation.
    LoadWeights {
        name: Option<String>,
    },
    /// The whole run as one file (an `Export`): settings, weights, Adam's moments, the sampler's
    /// position, the history, the held-out scores and the scan's names and SHA-256; with the
    /// scan's files themselves when given (buffers: their bytes, named `scan_files`).
    SaveRun {
        scan_files: Vec<String>,
    },
    /// Open a run file (buffer: its bytes) as run `run`: with the scan it was trained on (the
    /// same bytes, or the files it carries) it goes on where it stopped; with another it opens
    /// for viewing.
    OpenRun {
        run: u64,
    },
    /// Apply the current net to another scan (buffers: its files, one per name: its images,
    /// and its label map if it has one, told apart by name: `seg`, `label`, …). The run and the
    /// training scan stay as they are.
    Apply {
        names: Vec<String>,
    },
    /// The prediction of the scan applied to last, as `.nii.gz` in its geometry and the training
    /// scan's label values.
    ExportApplied,
    /// The scan's channel `index` (a modality), for the slice views.
    ScanChannel {
        index: usize,
    },
    /// Hold out exactly these cases of the set (by name; the others train), from a fresh run.
    HoldOut {
        names: Vec<String>,
    },
    /// Drop the session and what it produced; events from now on carry `run`.
    Reset {
        run: u64,
    },
    /// Train step after step until paused, finished or failed.
    Play,
    Pause,
    /// One step.
    Step,
    /// Predict the whole volume now.
    Predict,
    /// Stop the long operation in progress (a prediction). Acted on at once, ahead of the queue.
    Cancel,
    /// Open the lab (measure the GDL of the current batch, with `cause` injected if any), or
    /// close it (`open: false`).
    Lab {
        open: bool,
        cause: Option<Misuse>,
    },
    /// The prediction as `.nii.gz` in the scan's geometry and label values.
    ExportPrediction,
    /// The step history as CSV.
    ExportHistory,
    /// The weights as `.safetensors`.
    ExportWeights,
    /// The weights under PyTorch's names and `gdl_lab_model.py` (two `Export` events).
    ExportPytorch,
    /// After a failure: go on from the kept step on this device (the CPU, or WebGPU again).
    Resume {
        backend: BackendChoice,
    },
    /// Continue a run from a checkpoint the page kept (after the worker crashed): the history up
    /// to it, and (buffers) its weights and Adam's moments, as the checkpoint came.
    Restore {
        run: u64,
        checkpoint: Checkpoint,
        history: Vec<StepReport>,
    },
    /// Kernel choices tuned on an earlier visit (the page's local storage, the CLI's cache
    /// folder): a GPU with one for the settings it trains at skips the tuning pass.
    KeptTunings {
        kept: Vec<KeptTuning>,
    },
    /// Test only: panic, as a bug inside burn would, to prove the page survives it.
    Crash,
}

/// What the page shows of a scan the net was applied to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedView {
    /// Its first image's file name.
    pub name: String,
    /// Its images, in the net's channel order.
    pub images: Vec<String>,
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub classes: usize,
    pub class_names: Vec<String>,
    pub mapping: LabelMapping,
    /// Hard Dice per class against its label map; empty when it brought none.
    pub dice: Vec<f32>,
    pub mean_foreground_dice: f32,
    pub windows: usize,
    pub millis: f64,
    /// How it was cropped and resampled for the net.
    pub preparation: String,
}

/// A run file, opened: its settings and history for the page, and whether it goes on here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenedRun {
    /// True when the run continues on this scan; false when it is open for viewing only.
    pub continued: bool,
    /// Its settings, as the page's URL hash.
    pub settings: String,
    pub history: Vec<StepReport>,
    pub validation: Vec<ValidationReport>,
    /// The scan it was trained on.
    pub scan_name: String,
    /// What happened, in a sentence.
    pub sentence: String,
}

/// Where a run stood when its weights were saved: enough to continue it elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub step: usize,
    pub model: ModelKind,
    pub sampler_position: usize,
}

/// What the engine tells its driver. `run` is the run the event belongs to: the page drops
/// events of a run it has reset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The devices this engine can train on.
    Devices(DeviceReport),
    /// The auto probe's measurements and choice.
    Probe(ProbeReport),
    /// Which kernels the GPU trains with: a tuning pass's result (with a choice to keep), a
    /// kept choice used, or why none was tuned.
    Tuning(TuningReport),
    /// A scan was loaded; buffers: the first channel's intensities (f32, little-endian) and
    /// the classes (u8).
    Scan(ScanView),
    /// One channel of the scan's intensities, as [`Command::ScanChannel`] asked; buffers: the
    /// intensities (f32, little-endian).
    ScanChannel {
        index: usize,
    },
    /// How the scan was cropped and resampled for the net (after each load, and when the
    /// crop or resample setting changes).
    Prepared(Preparation),
    /// A file could not be used; the scan already loaded stays.
    LoadFailed {
        message: String,
    },
    /// A long operation's progress; `done == total` when it ends.
    Progress {
        task: String,
        done: usize,
        total: usize,
    },
    /// A session was made (or changed net by widening).
    Session {
        run: u64,
        device: String,
        backend: BackendKind,
        net: String,
    },
    Step {
        run: u64,
        report: StepReport,
    },
    /// A whole-volume prediction; buffers: the classes (u8) and the probabilities (f32 planes).
    Evaluation {
        run: u64,
        evaluation: Evaluation,
    },
    /// The set's cases (after a load of several): names in order, which are held out.
    Cases {
        names: Vec<String>,
        held_out: Vec<bool>,
    },
    /// The held-out cases scored (every `val_every` steps, and at the end).
    Validation {
        run: u64,
        report: ValidationReport,
    },
    Lab {
        run: u64,
        reading: Box<LabReading>,
    },
    /// Training started or stopped.
    Playing {
        run: u64,
        playing: bool,
    },
    /// Training stopped; the session is kept as it was after its last good step.
    Failed {
        run: u64,
        failure: Failure,
    },
    /// The run's weights and Adam's moments (buffers: two `.safetensors`) after a pause, a single
    /// step or a prediction: the page keeps the latest, to continue from if the worker crashes.
    Checkpoint {
        run: u64,
        checkpoint: Checkpoint,
    },
    /// A file to save; buffers: its bytes.
    Export {
        name: String,
        mime: String,
    },
    /// An export could not be made.
    ExportFailed {
        message: String,
    },
    /// The net applied to another scan (or why not); buffers: the scan's first channel (f32),
    /// the predicted classes (u8) and, when it brought a label map, its classes (u8), all in
    /// its own grid.
    Applied {
        applied: Result<AppliedView, String>,
    },
    /// A run file was opened (or why not, nothing changed).
    RunOpened {
        run: u64,
        opened: Result<OpenedRun, String>,
    },
    /// Weights to start from were loaded (`Some`: a sentence saying what they are and what
    /// happens next) or let go (`None`); or refused (`refused`: why, and nothing changed).
    Weights {
        loaded: Option<String>,
        refused: Option<String>,
    },
}

/// The lab's reading on the current batch: the correct GDL and, if a cause is selected, the
/// GDL with it injected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabReading {
    pub correct: GdlAnatomy,
    pub misused: Option<(Misuse, GdlAnatomy)>,
}

/// Why the run stopped, as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub message: String,
    /// The GPU failed: offer to go on on the CPU or on a fresh GPU device.
    pub device_lost: bool,
}

/// The devices found when the engine started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// WebGPU (or native wgpu), when it initialised.
    pub gpu: Option<AdapterSummary>,
    /// Why there is no GPU device, when there is none.
    pub gpu_unavailable: Option<String>,
    pub cpu: AdapterSummary,
}

/// The auto probe: step times measured on each device and the one chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The settings the steps were timed at, e.g. "unet, 1 × 16³".
    pub probed_at: String,
    /// Median step time on the GPU, or why it was not timed.
    pub gpu_ms: Result<f64, String>,
    pub cpu_ms: f64,
    pub choice: BackendKind,
    /// "WebGPU: 722 ms/step (SwiftShader, software) · CPU: 33 ms/step → training on the CPU".
    pub sentence: String,
}

/// The GPU kernels chosen for a GPU and the settings it trains at, as the device panel says it
/// and as it is kept for the next visit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuningReport {
    /// "tuned in 6.2 s (7 candidates at unet, 2 × 32³): tiles 16×8, 1.3× faster than the
    /// default (31 against 40 ms/step)".
    pub sentence: String,
    /// A fresh pass's choice, to keep (replacing any kept for the same key).
    pub keep: Option<KeptTuning>,
    /// A kept choice that failed the agreement check: to forget.
    pub forget: Option<TuningKey>,
}

/// What a kernel choice is kept for: the same adapter (its name and driver), net, patch and
/// batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningKey {
    pub adapter: String,
    pub model: String,
    pub patch: usize,
    pub batch: usize,
}

/// A kernel choice kept from a tuning pass. `build` is the build that chose it: another build
/// (whose kernels may differ) tunes again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptTuning {
    pub key: TuningKey,
    pub build: String,
    /// The kernels, as `KernelChoice` writes them (`tiled:channels=16,…`, `gemm`).
    pub kernels: String,
    /// What the pass found, for the device panel on later visits.
    pub found: String,
}

impl KeptTuning {
    /// Whether this choice applies to `key` in this build.
    pub fn is_for(&self, key: &TuningKey) -> bool {
        self.key == *key && self.build == BUILD
    }
}

/// `kept` with `report`'s choice kept and its forgotten one dropped (what the page and the CLI
/// store after a [`TuningReport`]).
pub fn update_kept(mut kept: Vec<KeptTuning>, report: &TuningReport) -> Vec<KeptTuning> {
    let dropped = |entry: &KeptTuning| {
        report.forget.as_ref() == Some(&entry.key)
            || report.keep.as_ref().is_some_and(|new| new.key == entry.key)
            || entry.build != BUILD
    };
    kept.retain(|entry| !dropped(entry));
    kept.extend(report.keep.clone());
    kept
}

/// Which sources this build is, as messages and kept tunings carry it.
pub fn build() -> &'static str {
    BUILD
}

/// What the page shows of a loaded scan: its description, and (in the envelope's buffers) the
/// raw intensities and classes that the slice views draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanView {
    pub image_name: String,
    pub label_name: String,
    pub demo: bool,
    /// The case's images when it brought several (`image_name` is one of them).
    pub modalities: Vec<String>,
    /// Every image the case brought (the modalities one may choose from).
    pub images: Vec<String>,
    /// Input channels; the image buffer holds this many planes.
    pub channels: usize,
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub classes: usize,
    pub class_names: Vec<String>,
    pub mapping: LabelMapping,
    pub warnings: Vec<String>,
    /// The first channel's intensities (from the buffers; the others on request).
    #[serde(skip)]
    pub image: Vec<f32>,
    #[serde(skip)]
    pub labels: Vec<u8>,
}

impl ScanView {
    /// The scan's description with its voxels in the buffers: the first channel's intensities
    /// and the classes. The other channels come when the page shows them
    /// ([`Command::ScanChannel`]): four full-size modalities are 143 MB as f32, and the page
    /// draws one at a time.
    pub fn envelope(scan: &LoadedScan, first_channel: &[f32]) -> Envelope<Event> {
        let buffers = vec![f32_bytes(first_channel), scan.volume.labels.clone()];
        Envelope::with(Event::Scan(Self::describe(scan)), buffers)
    }

    /// The description alone (no voxels).
    fn describe(scan: &LoadedScan) -> Self {
        Self {
            image_name: scan.image_name.clone(),
            label_name: scan.label_name.clone(),
            demo: scan.demo,
            modalities: scan.modalities.clone(),
            images: scan.images.clone(),
            channels: scan.volume.channels,
            dims: scan.volume.dims,
            spacing: scan.image.spacing,
            classes: scan.volume.classes,
            class_names: scan.class_names.clone(),
            mapping: scan.mapping.clone(),
            warnings: scan.warnings.clone(),
            image: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Puts the buffers back; a sentence when they do not fit the description.
    pub fn with_buffers(mut self, buffers: Vec<Vec<u8>>) -> Result<Self, String> {
        let voxels: usize = self.dims.iter().product();
        let Ok([image, labels]) = <[Vec<u8>; 2]>::try_from(buffers) else {
            return Err("the scan arrived without its voxels".into());
        };
        self.image = f32_values(&image);
        drop(image);
        self.labels = labels;
        if self.image.len() != voxels || self.labels.len() != voxels {
            return Err("the scan's voxels do not match its size".into());
        }
        Ok(self)
    }
}

/// An evaluation's message and its buffers (classes, probabilities).
pub fn evaluation_envelope(run: u64, evaluation: &Evaluation) -> Envelope<Event> {
    Envelope::with(
        Event::Evaluation {
            run,
            evaluation: evaluation.clone(),
        },
        vec![
            evaluation.labels.clone(),
            f32_bytes(&evaluation.probabilities),
        ],
    )
}

/// [`evaluation_envelope`]'s buffers back into the evaluation.
pub fn evaluation_with_buffers(
    mut evaluation: Evaluation,
    buffers: &[Vec<u8>],
) -> Result<Evaluation, String> {
    let [labels, probabilities] = buffers else {
        return Err("the prediction arrived without its voxels".into());
    };
    evaluation.labels = labels.clone();
    evaluation.probabilities = f32_values(probabilities);
    Ok(evaluation)
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect()
}

/// Which sources this build is (build.rs). postcard's messages carry no field names, so each
/// starts with it: a page and a worker from different versions (an old worker's wasm in the
/// browser's cache beside a new page) get a sentence rather than misread each other.
const BUILD: &str = env!("GDL_LAB_SOURCE_HASH");

/// What a message from another build of gdl-lab gets.
pub const OTHER_BUILD: &str = "a message from another version of gdl-lab: the page and its \
    training worker were loaded from different builds. Reload the page";

/// A message as bytes: the build, then the message in postcard (which keeps NaN and
/// infinities, unlike JSON).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    encode_as(BUILD, message)
}

fn encode_as<T: Serialize>(build: &str, message: &T) -> Vec<u8> {
    let mut bytes = build.as_bytes().to_vec();
    bytes.extend(postcard::to_allocvec(message).expect("protocol messages serialise"));
    bytes
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let message = bytes
        .strip_prefix(BUILD.as_bytes())
        .ok_or_else(|| OTHER_BUILD.to_string())?;
    postcard::from_bytes(message).map_err(|error| format!("an unreadable message: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_trip_with_nan_and_infinity() {
        let event = Event::Progress {
            task: "predicting".into(),
            done: 3,
            total: 27,
        };
        assert_eq!(decode::<Event>(&encode(&event)).unwrap(), event);
        let values = [f32::NAN, f32::INFINITY, -0.5, 1e-30];
        let back = f32_values(&f32_bytes(&values));
        assert!(back[0].is_nan());
        assert_eq!(&back[1..], &values[1..]);
        let command = Command::Lab {
            open: true,
            cause: Some(Misuse::NegativeWeight),
        };
        assert_eq!(decode::<Command>(&encode(&command)).unwrap(), command);
        // A step whose loss blew up: NaN and infinity inside a message.
        let report = crate::report::StepReport {
            total: f32::NAN,
            gdl: f32::INFINITY,
            warmup: -0.25,
            ..Default::default()
        };
        let step = Event::Step { run: 7, report };
        let Ok(Event::Step {
            run: 7,
            report: back,
        }) = decode::<Event>(&encode(&step))
        else {
            panic!("the step did not come back");
        };
        assert!(back.total.is_nan());
        assert_eq!((back.gdl, back.warmup), (f32::INFINITY, -0.25));
    }

    #[test]
    fn a_message_from_another_build_gets_a_sentence() {
        let event = Event::Playing {
            run: 1,
            playing: true,
        };
        let other = encode_as("0123456789abcdef", &event);
        assert_eq!(decode::<Event>(&other), Err(OTHER_BUILD.to_string()));
        assert_eq!(decode::<Event>(&encode(&event)), Ok(event));
    }
}
