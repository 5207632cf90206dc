//! The engine: one owner for the scan, the session and the run policy (prediction cadence, lab
//! probes, exports, the auto probe, what a failure keeps). It takes [`Command`]s one at a time
//! and tells its driver what happened through [`Event`]s; the page (through its worker), the
//! CLI and the tests drive it the same way. Here: commands, the session and its device, steps,
//! predictions and the lab; the scan it trains on is `scan.rs`, the checkpoints a page keeps
//! `checkpoints.rs`, the downloads `exports.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{BackendKind, ComputeDevice};
use crate::loss::Misuse;
use crate::model::SegmentationNet;
use crate::model::kernel_choice::KernelChoice;
use crate::report::{Evaluation, StepReport, ValidationReport, history_csv};
use crate::train::session::shard::BatchHelpers;
use crate::train::{TrainError, TrainingConfig, TrainingSession};
use crate::view::{BackendChoice, PageState};
use crate::volume::cases::load_dropped_cases_with;
use crate::volume::files::demo_cases;
use crate::volume::files::{load_pair, read_one_scan};
use crate::volume::preprocess::prepare;
use crate::volume::{Dataset, LabelledVolume, Limits, LoadedScan, RegionMap, demo_scan};

use super::probe::{
    PROBE_BUDGET_MS, PROBE_STEPS, Timed, decide, describe_settings, probe_config, scale_to_full,
    time_steps,
};
use super::protocol::{
    Command, DeviceReport, Envelope, Event, Failure, KeptTuning, LabReading, ProbeReport,
    evaluation_envelope,
};

mod apply;
mod checkpoints;
mod exports;
mod kernels;
mod loaded_weights;
mod saved_runs;
mod scan;
mod workers;

pub use saved_runs::ScanIdentity;
use scan::{EarlyCase, EarlyPrepared, OtherCase, Prepared, named_files};

/// The devices an engine may train on.
#[derive(Clone, Debug)]
pub struct Devices {
    /// WebGPU (native wgpu in the CLI), or why it is not available.
    pub gpu: Result<ComputeDevice, String>,
    pub cpu: ComputeDevice,
}

impl Devices {
    /// Only the CPU (the tests, `--backend flex`).
    pub fn cpu_only(reason: &str) -> Self {
        Self {
            gpu: Err(reason.to_string()),
            cpu: ComputeDevice::flex(None),
        }
    }

    fn report(&self) -> DeviceReport {
        DeviceReport {
            gpu: self.gpu.as_ref().ok().map(|g| g.adapter.clone()),
            gpu_unavailable: self.gpu.as_ref().err().cloned(),
            cpu: self.cpu.adapter.clone(),
        }
    }
}

pub type Sink = Box<dyn FnMut(Envelope<Event>)>;

pub struct Engine {
    devices: Devices,
    settings: PageState,
    /// The scan the page shows and predicts: the set's first training case.
    scan: Option<Arc<LoadedScan>>,
    /// The scan's name as a case of the set (its file name for a single scan).
    scan_case: String,
    /// The set's other cases, trained on or held out.
    others: Vec<OtherCase>,
    prepared: Option<Prepared>,
    /// A set's cases prepared as they were read, until the set is installed.
    early: Option<EarlyPrepared>,
    session: Option<TrainingSession>,
    /// The device the session trains on.
    device: Option<ComputeDevice>,
    /// The auto probe's result, for the settings it was measured at.
    probe: Option<(TrainingConfig, ProbeReport)>,
    /// Kernel choices from tuning passes, earlier visits' and this one's (`kernels.rs`).
    kept_tunings: Vec<KeptTuning>,
    run: u64,
    playing: bool,
    /// Set by a failure; cleared by Play, Step, Resume and Reset.
    failed: bool,
    history: Vec<StepReport>,
    evaluation: Option<Evaluation>,
    /// The held-out cases' scores so far, this run.
    validation: Vec<ValidationReport>,
    /// The net at the step with the best mean validation Dice so far (`weights=best` exports it).
    best: Option<(usize, SegmentationNet)>,
    /// The scan the net was applied to last ("Apply to a scan"), for its export.
    applied: Option<apply::AppliedCase>,
    /// Which scan the engine has (its files' SHA-256), so that a saved run knows it again.
    scan_identity: ScanIdentity,
    /// Weights every new session starts from (the page's "Load weights", `--init-weights`):
    /// the file's name and bytes.
    init_weights: Option<(String, Vec<u8>)>,
    /// `Some(cause)` while the lab is open.
    lab: Option<Option<Misuse>>,
    cancel: Arc<AtomicBool>,
    /// Send a checkpoint at every pause, single step and prediction (the page's worker, so
    /// that a new worker can go on after a crash); off for the CLI, which has no use for them.
    checkpoints: bool,
    /// Other workers that take shares of a CPU step's batch (the page's, one core each).
    helpers: Option<Box<dyn BatchHelpers>>,
    /// Why the helpers were let go, once one failed.
    helper_failure: Option<String>,
    sink: Sink,
}

impl Engine {
    /// An engine with no scan yet; tells the sink which devices it has.
    pub fn new(devices: Devices, mut sink: Sink) -> Self {
        sink(Envelope::new(Event::Devices(devices.report())));
        Self {
            devices,
            settings: PageState::default(),
            scan: None,
            scan_case: String::new(),
            others: Vec::new(),
            prepared: None,
            early: None,
            session: None,
            device: None,
            probe: None,
            kept_tunings: Vec::new(),
            run: 0,
            playing: false,
            failed: false,
            history: Vec::new(),
            evaluation: None,
            validation: Vec::new(),
            best: None,
            init_weights: None,
            scan_identity: ScanIdentity::default(),
            applied: None,
            lab: None,
            cancel: Arc::new(AtomicBool::new(false)),
            checkpoints: false,
            helpers: None,
            helper_failure: None,
            sink,
        }
    }

    /// Sends [`Event::Checkpoint`]s from now on (each reads the weights back from the device).
    pub fn keep_checkpoints(mut self) -> Self {
        self.checkpoints = true;
        self
    }

    /// Set from outside (the worker's message handler, ahead of the queue) to stop a prediction.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// True while Play is on: the driver calls [`Engine::tick`] between commands.
    pub fn playing(&self) -> bool {
        self.playing
    }

    pub fn history(&self) -> &[StepReport] {
        &self.history
    }

    pub fn evaluation(&self) -> Option<&Evaluation> {
        self.evaluation.as_ref()
    }

    /// The held-out cases' scores so far, in step order.
    pub fn validation(&self) -> &[ValidationReport] {
        &self.validation
    }

    /// The report of the step with the best mean validation Dice, if cases are held out.
    pub fn best_validation(&self) -> Option<&ValidationReport> {
        let (step, _) = self.best.as_ref()?;
        self.validation.iter().find(|report| report.step == *step)
    }

    /// The names of the set's cases that train, the scan first.
    pub fn training_case_names(&self) -> Vec<String> {
        let first = self.scan.as_ref().map(|_| self.scan_case.clone());
        first
            .into_iter()
            .chain(
                self.others
                    .iter()
                    .filter(|other| !other.held_out)
                    .map(|other| other.name.clone()),
            )
            .collect()
    }

    pub fn session(&self) -> Option<&TrainingSession> {
        self.session.as_ref()
    }

    /// The settings in use (the page's, or a resumed run's).
    pub fn settings(&self) -> &PageState {
        &self.settings
    }

    pub fn scan(&self) -> Option<&LoadedScan> {
        self.scan.as_deref()
    }

    fn emit(&mut self, event: Event) {
        (self.sink)(Envelope::new(event));
    }

    fn fail(&mut self, error: TrainError) {
        self.failed = true;
        let failure = Failure {
            device_lost: matches!(error, TrainError::Device(_)),
            message: error.to_string(),
        };
        let run = self.run;
        self.emit(Event::Failed { run, failure });
        self.set_playing(false);
    }

    /// Starts or stops play, telling the driver when that changes it. True when it changed.
    fn set_playing(&mut self, playing: bool) -> bool {
        let changed = self.playing != playing;
        self.playing = playing;
        if changed {
            let run = self.run;
            self.emit(Event::Playing { run, playing });
        }
        changed
    }

    /// Runs one command to its end.
    pub async fn handle(&mut self, envelope: Envelope<Command>) {
        let Envelope { message, buffers } = envelope;
        match message {
            Command::Configure { settings } => self.configure(&settings),
            Command::LoadDemo { size } => {
                self.progress("making the demo phantom", 0, 1);
                crate::backend::yield_now().await;
                let size = size.clamp(16, 256);
                let scan = demo_scan(size);
                self.progress("making the demo phantom", 1, 1);
                self.use_scan(scan);
                self.scan_identity = ScanIdentity::built_in(format!("demo phantom {size}"));
            }
            Command::LoadDemoCases { size, cases } => {
                self.progress("making the demo cases", 0, 1);
                crate::backend::yield_now().await;
                let result = demo_cases(size, cases);
                self.progress("making the demo cases", 1, 1);
                let identity = ScanIdentity::built_in(format!("demo set {size} {cases}"));
                self.loaded(result, identity);
            }
            Command::LoadFiles { names, channels } => {
                let files = named_files(names, buffers);
                let identity = ScanIdentity::of_files(&files);
                self.progress("reading the files", 0, 1);
                // A set's cases are prepared as they are read, each read once.
                let (key, options) = self.preparation_options();
                let mut early = EarlyPrepared {
                    key,
                    cases: Vec::new(),
                    first_channel: None,
                };
                let result = load_dropped_cases_with(
                    files,
                    &Limits::default(),
                    channels.as_deref(),
                    &mut |case| {
                        let scan = &case.scan;
                        let (volume, preparation) =
                            prepare(&scan.volume, scan.image.spacing, &options);
                        if early.first_channel.is_none() {
                            let plane = scan.volume.channel(0).to_vec();
                            early.first_channel = Some((case.name.clone(), plane));
                        }
                        early.cases.push(EarlyCase {
                            name: case.name.clone(),
                            values: scan.mapping.values.clone(),
                            volume,
                            preparation,
                        });
                    },
                );
                self.progress("reading the files", 1, 1);
                self.early = result.is_ok().then_some(early);
                self.loaded(result, identity);
            }
            Command::LoadPair { image, label } => {
                let mut files = named_files([image.clone(), label].concat(), buffers);
                let identity = ScanIdentity::of_files(&files);
                let label_files = files.split_off(image.len().min(files.len()));
                self.progress("reading the files", 0, 1);
                let result = (|| {
                    let image = read_one_scan(&files, "image", &Limits::default())?;
                    let label = read_one_scan(&label_files, "label map", &Limits::default())?;
                    load_pair(image.0, image.1, label.0, label.1, &[]).map(Dataset::single)
                })();
                self.progress("reading the files", 1, 1);
                self.loaded(result, identity);
            }
            Command::LoadWeights { name } => {
                let bytes = buffers.into_iter().next();
                match (name, bytes) {
                    (Some(name), Some(bytes)) => self.load_weights(name, bytes),
                    _ => self.forget_weights(),
                }
            }
            Command::ScanChannel { index } => self.send_channel(index),
            Command::Apply { names } => self.apply(named_files(names, buffers)).await,
            Command::ExportApplied => self.export_applied(),
            Command::SaveRun { scan_files } => self.save_run(scan_files, buffers).await,
            Command::OpenRun { run } => match buffers.into_iter().next() {
                Some(bytes) => self.open_run(run, bytes).await,
                None => self.emit(Event::RunOpened {
                    run,
                    opened: Err("The run file came without its bytes.".into()),
                }),
            },
            Command::HoldOut { names } => self.hold_out(&names),
            Command::Reset { run } => {
                self.run = run;
                self.drop_session();
            }
            Command::Play => {
                if !self.playing && self.ensure_session().await {
                    self.failed = false;
                    self.set_playing(true);
                }
            }
            Command::Pause => {
                if self.set_playing(false) {
                    self.checkpoint().await;
                }
            }
            // While playing, a step is coming anyway.
            Command::Step if self.playing => {}
            Command::Step => {
                self.failed = false;
                self.advance().await;
                self.checkpoint().await;
            }
            Command::Predict => {
                if self.ensure_session().await {
                    self.predict().await;
                }
            }
            // Acted on by the driver as it arrives; by now the prediction it meant has ended.
            Command::Cancel => self.cancel.store(false, Ordering::SeqCst),
            Command::Lab { open, cause } => {
                self.lab = open.then_some(cause);
                if open && !self.playing && self.ensure_session().await {
                    self.probe_lab().await;
                }
            }
            Command::ExportPrediction => self.export_prediction(),
            Command::ExportHistory => {
                let csv = history_csv(&self.history);
                self.export("gdl-lab-history.csv", "text/csv", csv.into_bytes());
            }
            Command::ExportWeights => self.export_weights(false).await,
            Command::ExportPytorch => self.export_weights(true).await,
            Command::Resume { backend } => self.resume(backend).await,
            Command::Restore {
                run,
                checkpoint,
                history,
            } => self.restore(run, checkpoint, history, buffers).await,
            Command::KeptTunings { kept } => self.kept_tunings = kept,
            Command::Crash => panic!("a test asked the engine to crash"),
        }
    }

    /// Steps on the CPU split their batch among `helpers` too (the page's other workers).
    pub fn with_batch_helpers(mut self, helpers: Box<dyn BatchHelpers>) -> Self {
        self.helpers = Some(helpers);
        self
    }

    /// One step while playing; the driver calls it until [`Engine::playing`] is false.
    pub async fn tick(&mut self) {
        if self.playing && !self.advance().await {
            self.set_playing(false);
            self.checkpoint().await;
        }
    }

    fn progress(&mut self, task: &str, done: usize, total: usize) {
        self.emit(Event::Progress {
            task: task.to_string(),
            done,
            total,
        });
    }

    fn configure(&mut self, settings: &str) {
        let next = match PageState::from_hash(settings) {
            Ok(next) => next,
            Err(message) => {
                self.fail(TrainError::Config(message));
                return;
            }
        };
        let before = std::mem::replace(&mut self.settings, next);
        if !before.same_run(&self.settings) {
            self.drop_session();
            if let Err(message) = self.prepare_scan() {
                self.fail(TrainError::Config(message));
            }
        } else if let Some(session) = &mut self.session {
            let config = &self.settings.config;
            let taken = session
                .set_learning_rate(config.lr)
                .and_then(|_| session.set_overlap(config.overlap));
            if let Err(error) = taken {
                self.fail(error);
            }
            // `cpu_workers` may have changed what the device line says.
            self.announce_session();
        }
    }

    fn drop_session(&mut self) {
        self.session = None;
        self.set_playing(false);
        self.failed = false;
        self.history.clear();
        self.evaluation = None;
        self.validation.clear();
        self.best = None;
    }

    /// The device the settings ask for; with `auto`, the probe's choice (probing first when
    /// these settings have not been measured). On a GPU, its kernels are set too: kept from an
    /// earlier tuning pass or tuned now; on the CPU, the defaults.
    async fn choose_device(&mut self) -> Result<ComputeDevice, TrainError> {
        let gpu = match self.settings.page.backend {
            BackendChoice::Cpu => None,
            BackendChoice::Gpu => self.devices.gpu.clone().ok(),
            BackendChoice::Auto => match self.auto_probe().await?.choice {
                BackendKind::Flex => None,
                _ => self.devices.gpu.clone().ok(),
            },
        };
        let Some(gpu) = gpu else {
            KernelChoice::leave_the_cpu_its_kernels();
            return Ok(match (&self.settings.page.backend, &self.devices.gpu) {
                (BackendChoice::Gpu, Err(reason)) => ComputeDevice::flex(Some(reason.clone())),
                _ => self.devices.cpu.clone(),
            });
        };
        // The probe (this one, or an earlier one for these settings) has tuned or checked the
        // kept choice already.
        if self.settings.page.backend == BackendChoice::Auto
            && let Some((_, choice)) = self.kept_kernels(&gpu)
        {
            choice.apply();
            return Ok(gpu);
        }
        let volume = self.working_volume()?;
        self.set_gpu_kernels(&gpu, &volume).await?;
        Ok(gpu)
    }

    /// The CPU's steps at the settings the probe and the tuning pass time: `config` when a
    /// step of it is affordable, else the small probe (one 16³ patch); each split among the
    /// helper workers as training would split it.
    async fn time_cpu(
        &mut self,
        config: &TrainingConfig,
        volume: &Arc<LabelledVolume>,
        task: &str,
    ) -> Result<(TrainingConfig, Timed), TrainError> {
        // Lent out while the progress is told (which borrows the whole engine).
        let helpers = self.helpers.take();
        let timed = self
            .time_cpu_with(config, volume, task, helpers.as_deref())
            .await;
        self.helpers = helpers;
        timed
    }

    async fn time_cpu_with(
        &mut self,
        config: &TrainingConfig,
        volume: &Arc<LabelledVolume>,
        task: &str,
        helpers: Option<&dyn BatchHelpers>,
    ) -> Result<(TrainingConfig, Timed), TrainError> {
        let key = probe_config(config, false);
        let cpu = self.devices.cpu.clone();
        let helpers = workers::step_helpers(helpers, Some(&cpu), &self.settings.page);
        let helpers = helpers.as_ref().map(|h| h as &dyn BatchHelpers);
        // First the small probe on the CPU, to see whether the full settings can be timed.
        self.progress(task, 0, 2);
        let small = probe_config(config, true);
        let cpu_small = time_steps(&small, volume, &cpu, None, helpers, PROBE_STEPS).await?;
        let full_is_affordable = cpu_small.median_ms * scale_to_full(config) <= PROBE_BUDGET_MS;
        let timed = if full_is_affordable && small != key {
            self.progress(task, 1, 2);
            (
                key.clone(),
                time_steps(&key, volume, &cpu, None, helpers, PROBE_STEPS).await?,
            )
        } else {
            (small, cpu_small)
        };
        self.progress(task, 2, 2);
        Ok(timed)
    }

    async fn auto_probe(&mut self) -> Result<ProbeReport, TrainError> {
        let config = self.settings.config.clone();
        let key = probe_config(&config, false);
        if let Some((measured, report)) = &self.probe
            && *measured == key
        {
            return Ok(report.clone());
        }
        let volume = &self.working_volume()?;
        let (probed, on_cpu) = self.time_cpu(&config, volume, "measuring the CPU").await?;
        // The GPU from the CPU's starting weights, so that the first steps must agree: the
        // kept kernels, or a tuning pass whose fastest agreeing choice is the GPU's time.
        let gpu = self.devices.gpu.clone();
        let gpu_ms = match &gpu {
            Ok(gpu) => {
                self.time_gpu_kernels(gpu, &probed, volume, &on_cpu, Some(on_cpu.median_ms))
                    .await
            }
            Err(reason) => Err(reason.clone()),
        };
        let report = decide(
            describe_settings(&probed),
            gpu.as_ref().ok(),
            gpu_ms,
            on_cpu.median_ms,
            // flex times its steps on the threads it will train on: rayon's pool natively, in
            // the browser a thread in each worker that takes a share of the batch.
            crate::backend::cpu_threads() * self.cpu_workers_for(&probed),
        );
        self.probe = Some((key, report.clone()));
        self.emit(Event::Probe(report.clone()));
        Ok(report)
    }

    /// Makes the session from the settings and the scan when there is none. False (with the
    /// failure told) when it cannot be made.
    async fn ensure_session(&mut self) -> bool {
        if self.session.is_some() {
            return true;
        }
        // Checked before the probe too: it trains a few steps at these settings.
        if let Err(error) = self.fitting_cases() {
            self.fail(error);
            return false;
        }
        let device = match self.choose_device().await {
            Ok(device) => device,
            Err(error) => {
                self.fail(error);
                return false;
            }
        };
        // The working grid follows the device chosen (a real GPU takes a finer one).
        self.device = Some(device.clone());
        let cases = match self.fitting_cases() {
            Ok(cases) => cases,
            Err(error) => {
                self.fail(error);
                return false;
            }
        };
        let made = TrainingSession::on_cases(self.settings.config.clone(), cases, &device)
            .and_then(|mut session| {
                if session.region_map().is_some()
                    && let Some(scan) = self.scan()
                {
                    let map = RegionMap::from_class_names(&scan.class_names)
                        .map_err(TrainError::Config)?;
                    session.use_region_map(map)?;
                }
                self.start_from_loaded_weights(&mut session)?;
                Ok(session)
            });
        match made {
            Ok(session) => {
                self.session = Some(session);
                self.device = Some(device);
                self.announce_session();
                true
            }
            Err(error) => {
                self.fail(error);
                false
            }
        }
    }

    fn announce_session(&mut self) {
        let (Some(session), Some(device)) = (&self.session, &self.device) else {
            return;
        };
        let helpers =
            workers::step_helpers(self.helpers.as_deref(), Some(device), &self.settings.page);
        let mut line = device.describe();
        if let Some(sentence) =
            workers::workers_sentence(session, helpers.as_ref(), self.helper_failure.as_deref())
                .filter(|_| !device.is_gpu_backend())
        {
            line.push_str(&format!("; {sentence}"));
        }
        let event = Event::Session {
            run: self.run,
            device: line,
            backend: device.adapter.backend,
            net: net_label(session),
        };
        self.emit(event);
    }

    /// One step, then a prediction and a lab reading when due. False when training should stop
    /// (finished or failed).
    async fn advance(&mut self) -> bool {
        if !self.ensure_session().await {
            return false;
        }
        let on_gpu = self.device.as_ref().is_some_and(|d| d.is_gpu_backend());
        if let Some(reason) = crate::backend::gpu_lost().filter(|_| on_gpu) {
            self.fail(TrainError::Device(reason));
            return false;
        }
        let session = self.session.as_mut().expect("just ensured");
        if session.finished() {
            return false;
        }
        let model_before = session.net().kind();
        let helpers = workers::step_helpers(
            self.helpers.as_deref(),
            self.device.as_ref(),
            &self.settings.page,
        );
        let result = session
            .step_with(helpers.as_ref().map(|h| h as &dyn BatchHelpers))
            .await;
        if let Some(failure) = session.take_helper_failure() {
            // Its share was computed here; the next steps train in this worker alone.
            self.helpers = None;
            self.helper_failure = Some(failure);
            self.announce_session();
        }
        let report = match result {
            Ok(report) => report,
            Err(error) => {
                self.fail(error);
                return false;
            }
        };
        let step = report.step;
        let run = self.run;
        self.history.push(report.clone());
        self.emit(Event::Step { run, report });
        let session = self.session.as_ref().expect("kept");
        let finished = session.finished();
        if session.net().kind() != model_before {
            self.announce_session();
        }
        let every = self.settings.page.eval_every;
        if (every > 0 && step.is_multiple_of(every)) || finished {
            self.predict().await;
            if self.playing {
                self.checkpoint().await;
            }
        }
        let val_every = match self.settings.page.val_every {
            0 => self.settings.config.steps_per_epoch.max(1),
            every => every,
        };
        if self.has_validation() && (step.is_multiple_of(val_every) || finished) && !self.failed {
            self.validate().await;
        }
        if self.lab.is_some() && !self.failed {
            self.probe_lab().await;
        }
        !finished && !self.failed
    }

    /// Scores the held-out cases now, and keeps the net when its mean Dice is the best yet.
    async fn validate(&mut self) {
        match self.score_cases(true).await {
            Ok(Some(report)) => {
                let best_so_far = self
                    .best_validation()
                    .is_none_or(|best| report.mean_foreground_dice > best.mean_foreground_dice);
                if best_so_far && let Some(session) = &self.session {
                    self.best = Some((report.step, session.net().clone()));
                }
                self.validation.push(report.clone());
                let run = self.run;
                self.emit(Event::Validation { run, report });
            }
            Ok(None) => {}
            Err(error) => self.fail(error),
        }
    }

    async fn predict(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        self.cancel.store(false, Ordering::SeqCst);
        let cancel = self.cancel.clone();
        let sink = &mut self.sink;
        let mut progress = |done: usize, total: usize| {
            sink(Envelope::new(Event::Progress {
                task: "predicting the whole volume".into(),
                done,
                total,
            }));
            !cancel.load(Ordering::SeqCst)
        };
        let result = session.evaluate_with_progress(&mut progress).await;
        match result {
            Ok(evaluation) => {
                let evaluation = self.in_scan_grid(evaluation);
                (self.sink)(evaluation_envelope(self.run, &evaluation));
                self.evaluation = Some(evaluation);
            }
            Err(TrainError::Cancelled) => {
                self.cancel.store(false, Ordering::SeqCst);
                self.progress("predicting the whole volume (cancelled)", 1, 1);
            }
            Err(error) => self.fail(error),
        }
    }

    async fn probe_lab(&mut self) {
        let (Some(selection), Some(session)) = (self.lab, self.session.as_mut()) else {
            return;
        };
        let correct = session.probe_gdl(None).await;
        let misused = match selection {
            Some(misuse) => Some(session.probe_gdl(Some(misuse)).await.map(|a| (misuse, a))),
            None => None,
        };
        match (correct, misused.transpose()) {
            (Ok(correct), Ok(misused)) => {
                let run = self.run;
                self.emit(Event::Lab {
                    run,
                    reading: Box::new(LabReading { correct, misused }),
                });
            }
            (Err(error), _) | (_, Err(error)) => self.fail(error),
        }
    }

    /// Goes on after a failure: on the same device the session is kept as it was after its last
    /// good step; on another device, its weights and Adam's moments move there.
    async fn resume(&mut self, backend: BackendChoice) {
        self.failed = false;
        self.settings.page.backend = backend;
        let Some(old) = self.session.take() else {
            return;
        };
        let device = match self.choose_device().await {
            Ok(device) => device,
            Err(error) => {
                self.fail(error);
                return;
            }
        };
        let same_device = self
            .device
            .as_ref()
            .is_some_and(|d| d.adapter == device.adapter);
        if same_device {
            self.session = Some(old);
            return;
        }
        match old.move_to(&device).await {
            Ok(session) => {
                self.session = Some(session);
                self.device = Some(device);
                self.announce_session();
            }
            Err(error) => {
                // The old device cannot give the weights back (it is lost).
                self.session = Some(old);
                self.fail(TrainError::Config(format!(
                    "{error} The weights on the failed device could not be read; press Reset \
                     to start again."
                )));
            }
        }
    }
}

/// "simple, 3764 parameters", as `gdl-lab models` names them.
pub fn net_label(session: &TrainingSession) -> String {
    let net = session.net();
    let count = burn::module::Module::num_params(net);
    format!("{}, {count} parameters", net.kind().name())
}
