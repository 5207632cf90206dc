//! The page's hold on a training session: play, pause, one step, reset, predict, the lab's
//! probes. Thin: every number comes from `TrainingSession`; this only schedules the calls and
//! stores what they return in signals.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::backend::ComputeDevice;
use crate::loss::Misuse;
use crate::report::{Evaluation, GdlAnatomy, StepReport};
use crate::train::{TrainError, TrainingSession};
use crate::view::{BackendChoice, PageState};
use crate::volume::LoadedScan;

/// Why the run stopped, as the page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub message: String,
    /// The GPU went away: offer to re-initialise.
    pub device_lost: bool,
}

/// The lab's reading on the current batch: the correct GDL and, if a cause is selected, the
/// GDL with it injected.
#[derive(Clone, Debug, PartialEq)]
pub struct LabReading {
    pub correct: GdlAnatomy,
    pub misused: Option<(Misuse, GdlAnatomy)>,
}

#[derive(Clone, Copy)]
pub struct Trainer {
    pub history: RwSignal<Vec<StepReport>>,
    pub evaluation: RwSignal<Option<Arc<Evaluation>>>,
    /// How many predictions were made, so that a newer one can be told from an older one.
    pub evaluations: RwSignal<usize>,
    pub running: RwSignal<bool>,
    /// A step, prediction, probe or export is using the session.
    pub busy: RwSignal<bool>,
    pub failure: RwSignal<Option<Failure>>,
    /// The device the current (or next) session trains on.
    pub device_label: RwSignal<String>,
    /// The net being trained and its parameter count (it changes when Simple is widened).
    pub net_label: RwSignal<String>,
    /// `Some(None)`: the lab is open with no cause selected.
    pub lab_selection: RwSignal<Option<Option<Misuse>>>,
    pub lab: RwSignal<Option<LabReading>>,
    state: RwSignal<PageState>,
    scan: RwSignal<Option<Arc<LoadedScan>>>,
    gpu: RwSignal<Option<ComputeDevice>>,
    session: StoredValue<Option<TrainingSession>, LocalStorage>,
    /// Bumped by every reset, so that work started before it is dropped when it returns.
    generation: StoredValue<u64>,
}

impl Trainer {
    pub fn new(
        state: RwSignal<PageState>,
        scan: RwSignal<Option<Arc<LoadedScan>>>,
        gpu: RwSignal<Option<ComputeDevice>>,
    ) -> Self {
        Self {
            history: RwSignal::new(Vec::new()),
            evaluation: RwSignal::new(None),
            evaluations: RwSignal::new(0),
            running: RwSignal::new(false),
            busy: RwSignal::new(false),
            failure: RwSignal::new(None),
            device_label: RwSignal::new(String::new()),
            net_label: RwSignal::new(String::new()),
            lab_selection: RwSignal::new(None),
            lab: RwSignal::new(None),
            state,
            scan,
            gpu,
            session: StoredValue::new_local(None),
            generation: StoredValue::new(0),
        }
    }

    /// The device the page's settings ask for: the CPU when chosen, else the GPU (which is
    /// itself the CPU when WebGPU failed).
    pub fn compute(&self) -> Option<ComputeDevice> {
        match self.state.with_untracked(|s| s.page.backend) {
            BackendChoice::Cpu => Some(ComputeDevice::flex(None)),
            BackendChoice::Gpu => self.gpu.get_untracked(),
        }
    }

    /// Drops the session and everything it produced; the next step starts a fresh one with
    /// the current settings and scan.
    pub fn reset(&self) {
        self.generation.update_value(|g| *g += 1);
        self.session.set_value(None);
        self.running.set(false);
        self.busy.set(false);
        self.history.set(Vec::new());
        self.evaluation.set(None);
        self.failure.set(None);
        self.lab.set(None);
    }

    pub fn play(&self) {
        if self.running.get_untracked() {
            return;
        }
        self.failure.set(None);
        self.running.set(true);
        let trainer = *self;
        spawn_local(async move {
            while trainer.running.get_untracked() {
                // A prediction, probe or export started before Play finishes first.
                if trainer.busy.get_untracked() {
                    gloo_timers::future::TimeoutFuture::new(20).await;
                    continue;
                }
                if !trainer.advance().await {
                    break;
                }
                crate::backend::yield_now().await;
            }
            trainer.running.set(false);
        });
    }

    pub fn pause(&self) {
        self.running.set(false);
    }

    /// One step, when nothing else is running.
    pub fn step_once(&self) {
        if self.running.get_untracked() || self.busy.get_untracked() {
            return;
        }
        self.failure.set(None);
        let trainer = *self;
        spawn_local(async move {
            trainer.advance().await;
        });
    }

    /// Predicts the whole volume now.
    pub fn predict(&self) {
        self.with_session(|trainer, session, generation| async move {
            trainer.run_evaluation(&session, generation).await;
            session
        });
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
        if !self.running.get_untracked() {
            self.with_session(|trainer, mut session, generation| async move {
                trainer.run_probe(&mut session, generation).await;
                session
            });
        }
    }

    /// Runs `work` on the session (created if needed) as soon as nothing else uses it.
    fn with_session<F, Fut>(&self, work: F)
    where
        F: FnOnce(Trainer, TrainingSession, u64) -> Fut + 'static,
        Fut: std::future::Future<Output = TrainingSession> + 'static,
    {
        let trainer = *self;
        spawn_local(async move {
            while trainer.busy.get_untracked() {
                gloo_timers::future::TimeoutFuture::new(20).await;
            }
            let Some(session) = trainer.take_session() else {
                return;
            };
            let generation = trainer.generation.get_value();
            let session = work(trainer, session, generation).await;
            trainer.give_back(session, generation);
        });
    }

    /// Takes the session out (creating it from the settings and scan if there is none) and
    /// marks the trainer busy; `None` with a failure shown if it cannot be made.
    fn take_session(&self) -> Option<TrainingSession> {
        if let Some(session) = self.session.try_update_value(|s| s.take()).flatten() {
            self.busy.set(true);
            return Some(session);
        }
        let fail = |message: String| {
            self.failure.set(Some(Failure {
                message,
                device_lost: false,
            }));
            None
        };
        let Some(scan) = self.scan.get_untracked() else {
            return fail("Load a scan first (or press “Demo scan”).".into());
        };
        let Some(compute) = self.compute() else {
            return fail("The device is still starting; try again in a moment.".into());
        };
        let config = self.state.with_untracked(|s| s.config.clone());
        match TrainingSession::on(config, &scan.volume, &compute) {
            Ok(session) => {
                self.device_label.set(compute.describe());
                self.net_label.set(net_label(&session));
                self.busy.set(true);
                Some(session)
            }
            Err(error) => fail(error.to_string()),
        }
    }

    /// Puts the session back unless a reset happened meanwhile.
    fn give_back(&self, session: TrainingSession, generation: u64) {
        if self.generation.get_value() == generation {
            self.net_label.set(net_label(&session));
            self.session.set_value(Some(session));
            self.busy.set(false);
        }
    }

    fn stale(&self, generation: u64) -> bool {
        self.generation.get_value() != generation
    }

    fn fail(&self, error: TrainError) {
        self.failure.set(Some(Failure {
            device_lost: matches!(error, TrainError::Device(_)),
            message: error.to_string(),
        }));
        self.running.set(false);
    }

    /// One step, then a prediction and a lab reading when due. False when training should stop
    /// (finished, failed, or reset).
    async fn advance(&self) -> bool {
        if self.busy.get_untracked() {
            return false;
        }
        let Some(mut session) = self.take_session() else {
            self.running.set(false);
            return false;
        };
        let generation = self.generation.get_value();
        if session.finished() {
            self.give_back(session, generation);
            self.running.set(false);
            return false;
        }
        let result = session.step().await;
        if self.stale(generation) {
            return false;
        }
        let step = match result {
            Ok(report) => {
                let step = report.step;
                self.history.update(|history| history.push(report));
                step
            }
            Err(error) => {
                self.give_back(session, generation);
                self.fail(error);
                return false;
            }
        };
        let every = self.state.with_untracked(|s| s.page.eval_every);
        let finished = session.finished();
        if (every > 0 && step % every == 0) || finished {
            self.run_evaluation(&session, generation).await;
        }
        if self.lab_selection.get_untracked().is_some() && !self.stale(generation) {
            self.run_probe(&mut session, generation).await;
        }
        let keep_going =
            !finished && !self.stale(generation) && self.failure.get_untracked().is_none();
        self.give_back(session, generation);
        keep_going
    }

    async fn run_evaluation(&self, session: &TrainingSession, generation: u64) {
        match session.evaluate().await {
            Ok(evaluation) if !self.stale(generation) => {
                self.evaluation.set(Some(Arc::new(evaluation)));
                self.evaluations.update(|count| *count += 1);
            }
            Ok(_) => {}
            Err(error) => self.fail(error),
        }
    }

    async fn run_probe(&self, session: &mut TrainingSession, generation: u64) {
        let Some(selection) = self.lab_selection.get_untracked() else {
            return;
        };
        let correct = session.probe_gdl(None).await;
        let misused = match selection {
            Some(misuse) => Some(session.probe_gdl(Some(misuse)).await.map(|a| (misuse, a))),
            None => None,
        };
        if self.stale(generation) {
            return;
        }
        match (correct, misused.transpose()) {
            (Ok(correct), Ok(misused)) => self.lab.set(Some(LabReading { correct, misused })),
            (Err(error), _) | (_, Err(error)) => self.fail(error),
        }
    }

    /// The trained weights as `.safetensors`, when the session is free.
    pub fn export_weights(&self, done: impl FnOnce(Result<(String, Vec<u8>), String>) + 'static) {
        let state = self.state.get_untracked();
        self.with_session(move |_, session, _| async move {
            let net = session.net();
            let metadata = [
                ("format", "gdl-lab".to_string()),
                ("model", net.kind().name().to_string()),
                ("classes", session.volume().classes.to_string()),
                ("steps", session.steps_done().to_string()),
                ("settings", state.to_hash()),
            ];
            let name = format!(
                "gdl-lab-{}-step{}.safetensors",
                net.kind().name(),
                session.steps_done()
            );
            done(
                crate::model::weights::to_safetensors(net, &metadata)
                    .await
                    .map(|bytes| (name, bytes)),
            );
            session
        });
    }
}

/// "simple, 3764 parameters", as `gdl-lab models` names them.
fn net_label(session: &TrainingSession) -> String {
    let net = session.net();
    let count = burn::module::Module::num_params(net);
    format!("{}, {count} parameters", net.kind().name())
}
