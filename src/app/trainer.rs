//! The page's hold on the engine, which runs in a Web Worker: every button sends a command,
//! and every event lands in a signal that a panel draws. Nothing heavy happens on this thread.
//!
//! The page keeps what a crash of the worker must not lose: the scan's source (the dropped
//! files' bytes, or the demo's size), the history, and the latest checkpoint. "Resume" starts
//! a new worker and hands it all three.

use std::sync::Arc;

use leptos::prelude::*;

use super::browser;
use super::engine_download::EngineDownload;
use super::worker_link::WorkerLink;
use crate::engine::protocol::{
    Checkpoint, DeviceReport, Failure, LabReading, ProbeReport, ScanView, evaluation_with_buffers,
    f32_values, update_kept,
};
use crate::engine::{Command, Envelope, Event};
use crate::loss::Misuse;
use crate::report::{Evaluation, StepReport, ValidationReport};
use crate::view::runs::{KeptRun, keep};
use crate::view::{BackendChoice, PageState};
use crate::volume::preprocess::Preparation;

/// Where the scan came from, to give it to a new worker.
#[derive(Clone)]
enum ScanSource {
    Demo(usize),
    /// The demo set: its edge and case count.
    DemoCases(usize, usize),
    Files(Envelope<Command>),
}

/// A long operation in the worker: what, and how far.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub task: String,
    pub done: usize,
    pub total: usize,
}

/// A file the worker made, for the page to save.
#[derive(Clone, Debug, PartialEq)]
pub struct Download {
    pub name: String,
    pub mime: String,
    pub bytes: Arc<Vec<u8>>,
}

#[derive(Clone, Copy)]
pub struct Trainer {
    pub scan: RwSignal<Option<Arc<ScanView>>>,
    /// How the scan was cropped and resampled for the net.
    pub preparation: RwSignal<Option<Preparation>>,
    pub load_error: RwSignal<Option<String>>,
    pub history: RwSignal<Vec<StepReport>>,
    pub evaluation: RwSignal<Option<Arc<Evaluation>>>,
    /// How many predictions were made, so that a newer one can be told from an older one.
    pub evaluations: RwSignal<usize>,
    pub running: RwSignal<bool>,
    pub failure: RwSignal<Option<Failure>>,
    /// The worker died (a panic inside it): what it said.
    pub crashed: RwSignal<Option<String>>,
    /// How far the engine's download is, while it lasts.
    pub engine_download: RwSignal<Option<EngineDownload>>,
    pub devices: RwSignal<Option<DeviceReport>>,
    pub probe: RwSignal<Option<ProbeReport>>,
    /// Which kernels the GPU trains with (a tuning pass's result or a kept choice).
    pub tuning: RwSignal<Option<String>>,
    /// The device the current session trains on.
    pub device_label: RwSignal<String>,
    /// The net being trained and its parameter count (it changes when Simple is widened).
    pub net_label: RwSignal<String>,
    pub progress: RwSignal<Option<Progress>>,
    /// `Some(None)`: the lab is open with no cause selected.
    pub lab_selection: RwSignal<Option<Option<Misuse>>>,
    pub lab: RwSignal<Option<LabReading>>,
    pub download: RwSignal<Option<Download>>,
    pub export_error: RwSignal<Option<String>>,
    /// The set's cases and whether each is held out (empty for a single scan).
    pub cases: RwSignal<Vec<(String, bool)>>,
    /// The held-out cases' scores this run.
    pub validation: RwSignal<Vec<ValidationReport>>,
    /// Ended runs, newest first, for comparison on the charts (kept across visits).
    pub kept: RwSignal<Vec<KeptRun>>,
    /// A channel of the scan other than the first, as the worker sent it for the slice views
    /// (the first arrives with the scan; one other is held at a time).
    pub channel_plane: RwSignal<Option<(usize, Arc<Vec<f32>>)>>,
    /// The weights runs start from, in a sentence (`None`: freshly initialised nets).
    pub weights: RwSignal<Option<String>>,
    /// Why the weights file given last was refused (the ones before stay).
    pub weights_refused: RwSignal<Option<String>>,
    /// What opening a run file did (`Ok`), or why it did nothing (`Err`).
    pub run_note: RwSignal<Option<Result<String, String>>>,
    /// The scan the net was applied to last, with its prediction, for the slice views.
    pub applied: RwSignal<Option<AppliedShown>>,
    /// The slice views show the applied scan rather than the training scan.
    pub showing_applied: RwSignal<bool>,
    /// What applying the net said (`Ok`: its Dice and how it was prepared), or why not.
    pub apply_note: RwSignal<Option<Result<String, String>>>,
    /// The settings the current run started with (its label once it is kept).
    run_settings: StoredValue<String>,
    state: RwSignal<PageState>,
    link: StoredValue<Option<WorkerLink>, LocalStorage>,
    source: StoredValue<Option<ScanSource>, LocalStorage>,
    /// Files sent to the worker and not yet answered: they become the source once they load.
    pending_files: StoredValue<Option<Envelope<Command>>, LocalStorage>,
    checkpoint: StoredValue<Option<KeptCheckpoint>, LocalStorage>,
    /// The weights file runs start from, to give a new worker after a crash; and one sent to
    /// the worker and not yet answered.
    loaded_weights: StoredValue<Option<Envelope<Command>>, LocalStorage>,
    pending_weights: StoredValue<Option<Envelope<Command>>, LocalStorage>,
    /// The held-out cases the person chose, if they changed the default.
    held_out: StoredValue<Option<Vec<String>>>,
    /// The run the page shows; events of older runs are dropped.
    run: StoredValue<u64>,
}

/// A scan the net was applied to, as the slice views draw it: its first channel and its label
/// map (or none) as a scan, the net's prediction as an evaluation in its own grid.
#[derive(Clone)]
pub struct AppliedShown {
    pub scan: Arc<ScanView>,
    pub evaluation: Arc<Evaluation>,
}

/// The latest checkpoint and its buffers (the weights, then Adam's moments).
type KeptCheckpoint = (Checkpoint, Vec<Vec<u8>>);

impl Trainer {
    pub fn new(state: RwSignal<PageState>) -> Self {
        let trainer = Self {
            scan: RwSignal::new(None),
            preparation: RwSignal::new(None),
            load_error: RwSignal::new(None),
            history: RwSignal::new(Vec::new()),
            evaluation: RwSignal::new(None),
            evaluations: RwSignal::new(0),
            running: RwSignal::new(false),
            failure: RwSignal::new(None),
            crashed: RwSignal::new(None),
            engine_download: RwSignal::new(None),
            devices: RwSignal::new(None),
            probe: RwSignal::new(None),
            tuning: RwSignal::new(None),
            device_label: RwSignal::new(String::new()),
            net_label: RwSignal::new(String::new()),
            progress: RwSignal::new(None),
            lab_selection: RwSignal::new(None),
            lab: RwSignal::new(None),
            download: RwSignal::new(None),
            export_error: RwSignal::new(None),
            cases: RwSignal::new(Vec::new()),
            validation: RwSignal::new(Vec::new()),
            kept: RwSignal::new(browser::load_kept_runs()),
            channel_plane: RwSignal::new(None),
            weights: RwSignal::new(None),
            weights_refused: RwSignal::new(None),
            run_note: RwSignal::new(None),
            applied: RwSignal::new(None),
            showing_applied: RwSignal::new(false),
            apply_note: RwSignal::new(None),
            run_settings: StoredValue::new(String::new()),
            state,
            link: StoredValue::new_local(None),
            source: StoredValue::new_local(None),
            pending_files: StoredValue::new_local(None),
            checkpoint: StoredValue::new_local(None),
            loaded_weights: StoredValue::new_local(None),
            pending_weights: StoredValue::new_local(None),
            held_out: StoredValue::new(None),
            run: StoredValue::new(0),
        };
        trainer.start_worker();
        // Every change of the kept runs is stored for the next visit.
        Effect::new(move |_| {
            let saved = trainer.kept.with(|runs| browser::save_kept_runs(runs));
            if let Err(message) = saved {
                trainer.export_error.set(Some(format!(
                    "The kept runs could not be stored: {message}"
                )));
            }
        });
        // Leaving or reloading the page ends the current run: it is stored as the newest kept
        // run, so its history is on the charts of the next visit (the weights are not kept).
        let _ = window_event_listener(leptos::ev::pagehide, move |_| {
            let mut runs = trainer.kept.get_untracked();
            keep(&mut runs, trainer.current_run());
            let _ = browser::save_kept_runs(&runs);
        });
        trainer
    }

    /// The page's settings (the kept runs are labelled by how they differ from them).
    pub fn state(&self) -> RwSignal<PageState> {
        self.state
    }

    /// Shows or hides a kept run on the charts.
    pub fn toggle_kept(&self, index: usize) {
        self.kept.update(|runs| {
            if let Some(run) = runs.get_mut(index) {
                run.visible = !run.visible;
            }
        });
    }

    /// Forgets every kept run.
    pub fn forget_kept(&self) {
        self.kept.set(Vec::new());
    }

    /// Starts a worker and tells it the settings; a sentence on the page when it cannot start.
    fn start_worker(&self) {
        let trainer = *self;
        let started = WorkerLink::start(
            move |envelope| trainer.receive(envelope),
            move |message| trainer.worker_died(message),
            move |download| trainer.engine_download.set(download),
        );
        match started {
            Ok(link) => {
                self.link.set_value(Some(link));
                // Before the settings: a GPU tuned on an earlier visit skips the pass.
                self.send(Command::KeptTunings {
                    kept: browser::load_kept_tunings(),
                });
                self.configure();
            }
            Err(reason) => self.crashed.set(Some(format!(
                "This browser could not start the training worker ({reason}). gdl-lab needs \
                 module Web Workers: a current Chrome, Edge, Firefox or Safari."
            ))),
        }
    }

    fn send(&self, command: Command) {
        self.send_envelope(&Envelope::new(command));
    }

    fn send_envelope(&self, envelope: &Envelope<Command>) {
        self.link.with_value(|link| {
            if let Some(link) = link {
                link.send(envelope);
            }
        });
    }

    /// Sends the page's current settings (after every change of the state).
    pub fn configure(&self) {
        let settings = self.state.with_untracked(PageState::to_hash);
        self.send(Command::Configure { settings });
    }

    /// The demo size asked for last, while the demo (not files) is the scan asked for: two
    /// quick changes of the size must end on the second, even while the first is being made.
    pub fn requested_demo(&self) -> Option<usize> {
        self.source.with_value(|source| match source {
            Some(ScanSource::Demo(size)) => Some(*size),
            _ => None,
        })
    }

    pub fn load_demo(&self, size: usize) {
        self.load_error.set(None);
        self.held_out.set_value(None);
        self.source.set_value(Some(ScanSource::Demo(size)));
        self.send(Command::LoadDemo { size });
    }

    /// The demo set: `cases` phantoms with four modalities, the last held out.
    pub fn load_demo_cases(&self, size: usize, cases: usize) {
        self.load_error.set(None);
        self.held_out.set_value(None);
        self.source
            .set_value(Some(ScanSource::DemoCases(size, cases)));
        self.send(Command::LoadDemoCases { size, cases });
    }

    /// Files for the worker: a copy stays here (the scan's source, should the worker crash).
    pub fn load_files(&self, envelope: Envelope<Command>) {
        self.load_error.set(None);
        self.held_out.set_value(None);
        self.send_envelope(&envelope);
        self.pending_files.set_value(Some(envelope));
    }

    /// Holds out exactly the cases named (the set's others train), from a fresh run; kept to
    /// give a new worker after a crash.
    pub fn hold_out(&self, names: Vec<String>) {
        self.held_out.set_value(Some(names.clone()));
        // Another split is another run: the charts start again (the current run is kept).
        self.reset();
        self.send(Command::HoldOut { names });
    }

    /// Trains on other images of the case loaded last (its files are kept here): the same
    /// files sent again, naming the images to use as channels.
    pub fn pick_channels(&self, names: Vec<String>) {
        let Some(ScanSource::Files(envelope)) = self.source.get_value() else {
            return;
        };
        let Command::LoadFiles { names: files, .. } = envelope.message else {
            return;
        };
        let command = Command::LoadFiles {
            names: files,
            channels: Some(names),
        };
        self.load_files(Envelope::with(command, envelope.buffers));
    }

    /// Asks the worker for the scan's channel `index` for the slice views, unless it is here.
    pub fn show_channel(&self, index: usize) {
        let held = self
            .channel_plane
            .with_untracked(|plane| plane.as_ref().is_some_and(|(i, _)| *i == index));
        if index > 0 && !held {
            self.send(Command::ScanChannel { index });
        }
    }

    /// Runs start from these weights (`.safetensors`, gdl-lab's or saved from PyTorch) once the
    /// worker finds they fit; kept to give a new worker after a crash.
    pub fn load_weights(&self, name: String, bytes: Vec<u8>) {
        self.weights_refused.set(None);
        let envelope = Envelope::with(Command::LoadWeights { name: Some(name) }, vec![bytes]);
        self.send_envelope(&envelope);
        self.pending_weights.set_value(Some(envelope));
    }

    /// Runs start from freshly initialised nets again.
    pub fn forget_weights(&self) {
        self.loaded_weights.set_value(None);
        self.send(Command::LoadWeights { name: None });
    }

    /// The run as one file to download; with the scan's files in it when `with_scan` (and the
    /// scan came from files).
    pub fn save_run(&self, with_scan: bool) {
        self.export_error.set(None);
        let (scan_files, buffers) = match self.source.get_value() {
            Some(ScanSource::Files(envelope)) if with_scan => match envelope.message {
                Command::LoadFiles { names, .. } => (names, envelope.buffers),
                Command::LoadPair { image, label } => ([image, label].concat(), envelope.buffers),
                _ => (Vec::new(), Vec::new()),
            },
            _ => (Vec::new(), Vec::new()),
        };
        self.send_envelope(&Envelope::with(Command::SaveRun { scan_files }, buffers));
    }

    /// Opens a run file: it goes on where it stopped if the scan is the one it was trained on
    /// (or it carries its scan), else it opens for viewing beside the other kept runs.
    pub fn open_run(&self, bytes: Vec<u8>) {
        self.run_note.set(None);
        self.reset();
        let run = self.run.get_value();
        self.send_envelope(&Envelope::with(Command::OpenRun { run }, vec![bytes]));
    }

    /// Applies the current net to another scan's files (its images, and its label map if any).
    pub fn apply(&self, files: Vec<crate::volume::NamedFile>) {
        self.apply_note.set(None);
        let (names, buffers): (Vec<String>, Vec<Vec<u8>>) =
            files.into_iter().map(|f| (f.name, f.bytes)).unzip();
        self.send_envelope(&Envelope::with(Command::Apply { names }, buffers));
    }

    /// The scan the slice views draw: the applied one while it is shown, else the training scan.
    pub fn shown_scan(&self) -> Option<Arc<ScanView>> {
        match (self.showing_applied.get(), self.applied.get()) {
            (true, Some(applied)) => Some(applied.scan),
            _ => self.scan.get(),
        }
    }

    /// The prediction the slice views draw, of the scan they show.
    pub fn shown_evaluation(&self) -> Option<Arc<Evaluation>> {
        match (self.showing_applied.get(), self.applied.get()) {
            (true, Some(applied)) => Some(applied.evaluation),
            _ => self.evaluation.get(),
        }
    }

    /// Drops the run and everything it produced, here at once and in the worker in turn.
    pub fn reset(&self) {
        self.run.update_value(|run| *run += 1);
        self.clear_run();
        self.send(Command::Reset {
            run: self.run.get_value(),
        });
    }

    /// The current run as a kept one: its settings, scan and history so far.
    fn current_run(&self) -> KeptRun {
        KeptRun {
            settings: self.run_settings.get_value(),
            scan: self
                .scan
                .with_untracked(|s| s.as_ref().map(|s| s.image_name.clone()))
                .unwrap_or_default(),
            history: self.history.get_untracked(),
            visible: true,
        }
    }

    fn clear_run(&self) {
        self.running.set(false);
        let run = self.current_run();
        self.kept.update(|runs| keep(runs, run));
        self.history.set(Vec::new());
        self.evaluation.set(None);
        self.validation.set(Vec::new());
        self.failure.set(None);
        self.lab.set(None);
        self.progress.set(None);
        self.checkpoint.set_value(None);
    }

    pub fn play(&self) {
        self.failure.set(None);
        self.running.set(true);
        self.send(Command::Play);
    }

    pub fn pause(&self) {
        self.send(Command::Pause);
    }

    pub fn step_once(&self) {
        self.failure.set(None);
        self.send(Command::Step);
    }

    pub fn predict(&self) {
        self.send(Command::Predict);
    }

    pub fn cancel(&self) {
        self.send(Command::Cancel);
    }

    /// Selects a lab cause (or none) and measures it on the current batch.
    pub fn select_lab(&self, selection: Option<Misuse>) {
        self.lab_selection.set(Some(selection));
        // The old reading's cause goes at once, so nothing shows a value for the wrong cause.
        self.lab.update(|reading| {
            if let Some(reading) = reading {
                reading.misused = None;
            }
        });
        self.send(Command::Lab {
            open: true,
            cause: selection,
        });
    }

    pub fn export(&self, command: Command) {
        self.export_error.set(None);
        self.send(command);
    }

    /// After a failure on the GPU: go on on the CPU in this worker.
    pub fn resume_on_cpu(&self) {
        self.failure.set(None);
        self.state.update(|s| s.page.backend = BackendChoice::Cpu);
        self.send(Command::Resume {
            backend: BackendChoice::Cpu,
        });
        self.configure();
        self.play();
    }

    /// After a crash, or to get a fresh GPU device: a new worker, given the scan, the settings
    /// and the last checkpoint; the history up to that checkpoint stays.
    pub fn restart_worker(&self, backend: Option<BackendChoice>) {
        if let Some(backend) = backend {
            self.state.update(|s| s.page.backend = backend);
        }
        self.crashed.set(None);
        self.failure.set(None);
        self.running.set(false);
        self.progress.set(None);
        self.link.set_value(None); // terminates the old worker
        self.start_worker();
        match self.source.get_value() {
            Some(ScanSource::Demo(size)) => self.send(Command::LoadDemo { size }),
            Some(ScanSource::DemoCases(size, cases)) => {
                self.send(Command::LoadDemoCases { size, cases })
            }
            Some(ScanSource::Files(envelope)) => self.send_envelope(&envelope),
            None => return,
        }
        if let Some(names) = self.held_out.get_value() {
            self.send(Command::HoldOut { names });
        }
        if let Some(envelope) = self.loaded_weights.get_value() {
            self.send_envelope(&envelope);
        }
        let run = self.run.get_value();
        match self.checkpoint.get_value() {
            Some((checkpoint, buffers)) => {
                self.history.update(|h| h.truncate(checkpoint.step));
                let history = self.history.get_untracked();
                self.send_envelope(&Envelope::with(
                    Command::Restore {
                        run,
                        checkpoint,
                        history,
                    },
                    buffers,
                ));
            }
            None => {
                self.history.set(Vec::new());
                self.send(Command::Reset { run });
            }
        }
        if let Some(selection) = self.lab_selection.get_untracked() {
            self.send(Command::Lab {
                open: true,
                cause: selection,
            });
        }
    }

    /// Test only: makes the worker panic, as a bug inside burn would.
    pub fn crash_worker(&self) {
        self.send(Command::Crash);
    }

    fn worker_died(&self, message: String) {
        self.running.set(false);
        self.progress.set(None);
        self.crashed.set(Some(message));
    }

    fn current(&self, run: u64) -> bool {
        run == self.run.get_value()
    }

    fn receive(&self, envelope: Envelope<Event>) {
        let Envelope { message, buffers } = envelope;
        match message {
            Event::Devices(report) => self.devices.set(Some(report)),
            Event::Probe(report) => self.probe.set(Some(report)),
            Event::Tuning(report) => {
                let kept = update_kept(browser::load_kept_tunings(), &report);
                let sentence = match browser::save_kept_tunings(&kept) {
                    Err(reason) if report.keep.is_some() => {
                        format!(
                            "{} (not kept for the next visit: {reason})",
                            report.sentence
                        )
                    }
                    _ => report.sentence,
                };
                self.tuning.set(Some(sentence));
            }
            Event::Scan(view) => match view.with_buffers(buffers) {
                Ok(view) => {
                    self.pending_files.update_value(|pending| {
                        if let Some(files) = pending.take() {
                            self.source.set_value(Some(ScanSource::Files(files)));
                        }
                    });
                    // A restarted worker reloads the same scan: the run stays.
                    let same = self.scan.with_untracked(|s| s.as_deref() == Some(&view));
                    if !same {
                        self.clear_run();
                        // A set's Cases event follows its Scan event; a single scan has none.
                        self.cases.set(Vec::new());
                        self.channel_plane.set(None);
                        self.scan.set(Some(Arc::new(view)));
                    }
                }
                Err(message) => self.load_error.set(Some(message)),
            },
            Event::ScanChannel { index } => {
                let voxels = self
                    .scan
                    .with_untracked(|s| s.as_ref().map(|s| s.image.len()));
                match buffers.first().map(|bytes| f32_values(bytes)) {
                    Some(plane) if Some(plane.len()) == voxels => {
                        self.channel_plane.set(Some((index, Arc::new(plane))));
                    }
                    _ => self.load_error.set(Some(
                        "A channel of the scan arrived without its voxels.".into(),
                    )),
                }
            }
            Event::Applied { applied } => {
                match applied.and_then(|view| applied_shown(view, buffers)) {
                    Ok((shown, sentence)) => {
                        self.applied.set(Some(shown));
                        self.showing_applied.set(true);
                        self.apply_note.set(Some(Ok(sentence)));
                    }
                    Err(message) => self.apply_note.set(Some(Err(message))),
                }
            }
            Event::RunOpened { run, opened } if self.current(run) => match opened {
                Ok(opened) if opened.continued => {
                    if let Ok(next) = PageState::from_hash(&opened.settings) {
                        self.state.set(next);
                    }
                    self.run_settings.set_value(opened.settings);
                    self.history.set(opened.history);
                    self.validation.set(opened.validation);
                    self.run_note.set(Some(Ok(opened.sentence)));
                }
                Ok(opened) => {
                    let viewed = KeptRun {
                        settings: opened.settings,
                        scan: opened.scan_name,
                        history: opened.history,
                        visible: true,
                    };
                    self.kept.update(|runs| keep(runs, viewed));
                    self.run_note.set(Some(Ok(opened.sentence)));
                }
                Err(message) => self.run_note.set(Some(Err(message))),
            },
            Event::Weights { loaded, refused } => {
                self.weights_refused.set(refused.clone());
                if refused.is_some() {
                    // Nothing changed in the worker.
                    self.pending_weights.set_value(None);
                    return;
                }
                if let Some(envelope) = self.pending_weights.get_value() {
                    self.pending_weights.set_value(None);
                    self.loaded_weights.set_value(Some(envelope));
                }
                // Another start is another run, and the charts start again; the same file
                // given again to a new worker (after a crash) keeps the run.
                if self.weights.with_untracked(|w| w != &loaded) {
                    self.reset();
                    self.weights.set(loaded);
                }
            }
            Event::Prepared(preparation) => self.preparation.set(Some(preparation)),
            Event::LoadFailed { message } => {
                self.pending_files.set_value(None);
                self.load_error.set(Some(message));
            }
            Event::Progress { task, done, total } => self
                .progress
                .set((done < total).then_some(Progress { task, done, total })),
            Event::Session {
                run, device, net, ..
            } if self.current(run) => {
                self.device_label.set(device);
                self.net_label.set(net);
            }
            Event::Step { run, report } if self.current(run) => {
                if self.history.with_untracked(Vec::is_empty) {
                    let settings = self.state.with_untracked(PageState::to_hash);
                    self.run_settings.set_value(settings);
                }
                self.history.update(|history| history.push(report));
            }
            Event::Evaluation { run, evaluation } if self.current(run) => {
                match evaluation_with_buffers(evaluation, &buffers) {
                    Ok(evaluation) => {
                        self.evaluation.set(Some(Arc::new(evaluation)));
                        self.evaluations.update(|count| *count += 1);
                    }
                    Err(message) => self.export_error.set(Some(message)),
                }
            }
            Event::Cases { names, held_out } => {
                self.cases.set(names.into_iter().zip(held_out).collect());
            }
            Event::Validation { run, report } if self.current(run) => {
                self.validation.update(|reports| reports.push(report));
            }
            Event::Lab { run, reading } if self.current(run) => self.lab.set(Some(*reading)),
            Event::Playing { run, playing } if self.current(run) => self.running.set(playing),
            Event::Failed { run, failure } if self.current(run) => {
                self.running.set(false);
                self.failure.set(Some(failure));
            }
            Event::Checkpoint { run, checkpoint } if self.current(run) => {
                if !buffers.is_empty() {
                    self.checkpoint.set_value(Some((checkpoint, buffers)));
                }
            }
            Event::Export { name, mime } => match buffers.into_iter().next() {
                Some(bytes) => self.download.set(Some(Download {
                    name,
                    mime,
                    bytes: Arc::new(bytes),
                })),
                None => self
                    .export_error
                    .set(Some("The export came without its file.".into())),
            },
            Event::ExportFailed { message } => self.export_error.set(Some(message)),
            // Events of a run the page has reset.
            Event::Session { .. }
            | Event::Step { .. }
            | Event::Evaluation { .. }
            | Event::Validation { .. }
            | Event::Lab { .. }
            | Event::Playing { .. }
            | Event::Failed { .. }
            | Event::Checkpoint { .. }
            | Event::RunOpened { .. } => {}
        }
    }
}

/// The applied scan as the slice views draw it, and a sentence of its Dice per class.
fn applied_shown(
    view: crate::engine::protocol::AppliedView,
    buffers: Vec<Vec<u8>>,
) -> Result<(AppliedShown, String), String> {
    let voxels: usize = view.dims.iter().product();
    let Ok([image, predicted, truth]) = <[Vec<u8>; 3]>::try_from(buffers) else {
        return Err("The applied scan came without its voxels.".into());
    };
    let image = f32_values(&image);
    if image.len() != voxels || predicted.len() != voxels {
        return Err("The applied scan's voxels do not match its size.".into());
    }
    let labelled = truth.len() == voxels;
    let dice = if labelled {
        let per_class: Vec<String> = view
            .dice
            .iter()
            .enumerate()
            .skip(1)
            .map(|(class, d)| {
                let name = view.class_names.get(class).cloned().unwrap_or_default();
                format!("{name} {d:.3}")
            })
            .collect();
        format!(
            "hard Dice {} (mean {:.3})",
            per_class.join(", "),
            view.mean_foreground_dice
        )
    } else {
        "no label map, so no Dice".to_string()
    };
    let sentence = format!(
        "{}: {dice}; {} windows, {:.1} s. {}",
        view.name,
        view.windows,
        view.millis / 1000.0,
        view.preparation
    );
    let scan = ScanView {
        image_name: view.name.clone(),
        label_name: if labelled {
            "its label map".into()
        } else {
            "(none)".into()
        },
        demo: false,
        modalities: vec![view.name.clone()],
        images: view.images.clone(),
        channels: 1,
        dims: view.dims,
        spacing: view.spacing,
        classes: view.classes,
        class_names: view.class_names.clone(),
        mapping: view.mapping.clone(),
        warnings: Vec::new(),
        image,
        labels: if labelled { truth } else { vec![0; voxels] },
    };
    let evaluation = Evaluation {
        dice: view.dice,
        mean_foreground_dice: view.mean_foreground_dice,
        region_dice: Vec::new(),
        labels: predicted,
        probabilities: Vec::new(),
        windows: view.windows,
        millis: view.millis,
    };
    Ok((
        AppliedShown {
            scan: Arc::new(scan),
            evaluation: Arc::new(evaluation),
        },
        sentence,
    ))
}
