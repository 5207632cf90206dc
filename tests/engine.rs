//! The engine the page's worker and the CLI drive: commands in odd orders, the auto probe,
//! cancelling, and a failed step that leaves no trace.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::Device;
use gdl_lab::backend::{BackendKind, ComputeDevice};
use gdl_lab::engine::protocol::ScanView;
use gdl_lab::engine::protocol::{decode, encode};
use gdl_lab::engine::{Command, Devices, Engine, Envelope, Event};
use gdl_lab::train::session::shard::{
    BatchHelpers, ShardFuture, ShardRequest, ShardResult, ShardWorker,
};
use gdl_lab::train::{TrainError, TrainingConfig, TrainingSession};
use gdl_lab::view::{BackendChoice, PageState};
use gdl_lab::volume::nifti::{Voxels, write_nifti_gz};
use gdl_lab::volume::phantom::phantom_of_dims;
use gdl_lab::volume::preprocess::Preparation;
use gdl_lab::volume::{Limits, PhantomConfig, Volume, phantom, read_nifti, write_label_map};

type Events = Rc<RefCell<Vec<Envelope<Event>>>>;

/// An engine on the CPU whose events collect in the returned list.
fn engine() -> (Engine, Events) {
    let events: Events = Rc::default();
    let sink = events.clone();
    let engine = Engine::new(
        Devices::cpu_only("no GPU in this test"),
        Box::new(move |event| sink.borrow_mut().push(event)),
    );
    (engine, events)
}

/// The scenarios' small settings (the Simple net, one 16³ patch a step, the 32³ demo: the
/// quickest run) with `change` applied.
fn small(change: impl FnOnce(&mut PageState)) -> String {
    let mut state = PageState::default().small();
    state.config.model = gdl_lab::model::ModelKind::Simple;
    state.config.batch = 1;
    state.page.backend = BackendChoice::Cpu;
    change(&mut state);
    state.to_hash()
}

fn send(engine: &mut Engine, command: Command) {
    pollster::block_on(engine.handle(Envelope::new(command)));
}

fn take(events: &Events) -> Vec<Event> {
    events.borrow_mut().drain(..).map(|e| e.message).collect()
}

fn steps(events: &[Event]) -> Vec<(u64, usize)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Step { run, report } => Some((*run, report.step)),
            _ => None,
        })
        .collect()
}

fn failures(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Failed { failure, .. } => Some(failure.message.clone()),
            _ => None,
        })
        .collect()
}

/// Files dropped together on the page.
fn drop_files(engine: &mut Engine, names: Vec<String>, buffers: Vec<Vec<u8>>) {
    pollster::block_on(engine.handle(Envelope::with(
        Command::LoadFiles {
            names,
            channels: None,
        },
        buffers,
    )));
}

fn ready(settings: String) -> (Engine, Events) {
    let (mut engine, events) = engine();
    send(&mut engine, Command::Configure { settings });
    send(&mut engine, Command::LoadDemo { size: 32 });
    (engine, events)
}

#[test]
fn commands_without_a_scan_say_so_and_a_scan_arrives_with_its_voxels() {
    let (mut engine, events) = engine();
    let started = take(&events);
    assert!(matches!(&started[0], Event::Devices(report)
        if report.gpu.is_none() && report.gpu_unavailable.as_deref() == Some("no GPU in this test")));
    for command in [Command::Play, Command::Step, Command::Predict] {
        send(&mut engine, command);
        let said = failures(&take(&events));
        assert_eq!(said, ["Load a scan first (or press “Demo scan”)."]);
    }
    assert!(!engine.playing());
    send(&mut engine, Command::LoadDemo { size: 32 });
    let envelope = events
        .borrow_mut()
        .drain(..)
        .find(|e| matches!(e.message, Event::Scan(_)));
    let envelope = envelope.expect("a scan event");
    let Event::Scan(view) = envelope.message else {
        unreachable!()
    };
    let view: ScanView = view.with_buffers(envelope.buffers).expect("voxels fit");
    assert_eq!(view.dims, [32, 32, 32]);
    assert_eq!(view.image, engine.scan().unwrap().volume.image);
    assert_eq!(view.labels, engine.scan().unwrap().volume.labels);
}

#[test]
fn a_bad_file_keeps_the_scan_already_loaded() {
    let (mut engine, events) = ready(small(|_| {}));
    take(&events);
    pollster::block_on(engine.handle(Envelope::with(
        Command::LoadFiles {
            names: vec!["a.nii".into(), "b.nii".into()],
            channels: None,
        },
        vec![vec![0; 10], vec![1; 400]],
    )));
    let said = take(&events);
    assert!(
        said.iter()
            .any(|e| matches!(e, Event::LoadFailed { message } if message.starts_with("a.nii"))),
        "{said:?}"
    );
    assert!(engine.scan().unwrap().demo, "the demo scan stays");
}

#[test]
fn reset_during_play_stops_it_and_later_events_carry_the_new_run() {
    let (mut engine, events) = ready(small(|_| {}));
    send(&mut engine, Command::Play);
    assert!(engine.playing());
    pollster::block_on(engine.tick());
    pollster::block_on(engine.tick());
    // The page resets while the step is running: the command waits in the queue, then runs.
    send(&mut engine, Command::Reset { run: 7 });
    assert!(!engine.playing(), "reset stops play");
    assert!(engine.history().is_empty());
    pollster::block_on(engine.tick()); // what the driver would do: nothing happens
    send(&mut engine, Command::Step);
    let said = take(&events);
    assert_eq!(steps(&said), [(0, 1), (0, 2), (7, 1)]);
    assert!(
        said.iter()
            .any(|e| matches!(e, Event::Playing { playing: false, .. }))
    );
}

#[test]
fn step_during_play_adds_nothing_and_predict_during_play_answers_between_steps() {
    let (mut engine, events) = ready(small(|s| s.page.eval_every = 0));
    send(&mut engine, Command::Play);
    pollster::block_on(engine.tick());
    send(&mut engine, Command::Step); // ignored: play is stepping anyway
    send(&mut engine, Command::Predict);
    pollster::block_on(engine.tick());
    let said = take(&events);
    assert_eq!(steps(&said), [(0, 1), (0, 2)]);
    let evaluation = said
        .iter()
        .position(|e| matches!(e, Event::Evaluation { .. }))
        .expect("the prediction");
    let second_step = said
        .iter()
        .position(|e| matches!(e, Event::Step { report, .. } if report.step == 2))
        .unwrap();
    assert!(evaluation < second_step, "commands run in order");
    assert!(engine.playing());
}

#[test]
fn a_failure_stops_play_and_step_goes_on_from_the_kept_state() {
    // A learning rate so large that the first update breaks the weights.
    let (mut engine, events) = ready(small(|s| s.config.lr = 1e30));
    send(&mut engine, Command::Play);
    pollster::block_on(engine.tick());
    let said = take(&events);
    assert!(!engine.playing());
    let message = failures(&said).pop().expect("a failure");
    assert!(
        message.starts_with("Training stopped at step 1: the norm of the updated weights is"),
        "{message}"
    );
    assert!(steps(&said).is_empty());
    assert_eq!(engine.session().unwrap().steps_done(), 0);
    // Lowering the learning rate goes on with the same run, from the kept state.
    send(
        &mut engine,
        Command::Configure {
            settings: small(|_| {}),
        },
    );
    send(&mut engine, Command::Step);
    let said = take(&events);
    assert!(failures(&said).is_empty(), "{said:?}");
    assert_eq!(steps(&said), [(0, 1)]);
}

#[test]
fn a_changed_setting_other_than_the_learning_rate_ends_the_session() {
    let (mut engine, events) = ready(small(|_| {}));
    send(&mut engine, Command::Step);
    send(
        &mut engine,
        Command::Configure {
            settings: small(|s| s.config.lr = 2e-3),
        },
    );
    assert_eq!(engine.history().len(), 1, "lr alone keeps the run");
    assert_eq!(engine.session().unwrap().config().lr, 2e-3);
    send(
        &mut engine,
        Command::Configure {
            settings: small(|s| s.config.seed = 5),
        },
    );
    assert!(engine.session().is_none() && engine.history().is_empty());
    take(&events);
}

#[test]
fn auto_without_a_gpu_measures_the_cpu_and_says_why_not_the_gpu() {
    let (mut engine, events) = ready(small(|s| s.page.backend = BackendChoice::Auto));
    send(&mut engine, Command::Step);
    let said = take(&events);
    let probe = said
        .iter()
        .find_map(|e| match e {
            Event::Probe(report) => Some(report.clone()),
            _ => None,
        })
        .expect("a probe before the first step");
    assert_eq!(probe.choice, BackendKind::Flex);
    assert!(probe.cpu_ms > 0.0);
    assert_eq!(probe.gpu_ms, Err("no GPU in this test".into()));
    assert_eq!(probe.probed_at, "simple, 1 × 16³");
    assert!(
        said.iter().any(|e| matches!(
            e,
            Event::Session {
                backend: BackendKind::Flex,
                ..
            }
        )),
        "{said:?}"
    );
    // Measured once per setting: the next session does not probe again.
    send(&mut engine, Command::Reset { run: 1 });
    send(&mut engine, Command::Step);
    assert!(!take(&events).iter().any(|e| matches!(e, Event::Probe(_))));
}

/// The probe's GPU starts from the CPU's weights and its first step must agree with the CPU's:
/// here the "GPU" is flex too, so it agrees, and is timed.
#[test]
fn auto_checks_the_gpus_first_step_against_the_cpus() {
    let events: Events = Rc::default();
    let sink = events.clone();
    let mut engine = Engine::new(
        Devices {
            gpu: Ok(ComputeDevice::flex(None)),
            cpu: ComputeDevice::flex(None),
        },
        Box::new(move |event| sink.borrow_mut().push(event)),
    );
    send(
        &mut engine,
        Command::Configure {
            settings: small(|s| s.page.backend = BackendChoice::Auto),
        },
    );
    send(&mut engine, Command::LoadDemo { size: 32 });
    send(&mut engine, Command::Step);
    let probe = take(&events)
        .iter()
        .find_map(|e| match e {
            Event::Probe(report) => Some(report.clone()),
            _ => None,
        })
        .expect("a probe before the first step");
    assert!(
        probe.gpu_ms.as_ref().is_ok_and(|ms| *ms > 0.0),
        "the same numbers on both devices, so the GPU is timed: {probe:?}"
    );
}

#[test]
fn cancel_stops_a_prediction_and_keeps_the_last_one() {
    let events: Events = Rc::default();
    let cancel_slot: Rc<RefCell<Option<Arc<AtomicBool>>>> = Rc::default();
    let (sink, slot) = (events.clone(), cancel_slot.clone());
    let mut engine = Engine::new(
        Devices::cpu_only("no GPU in this test"),
        Box::new(move |event| {
            // A person pressing Cancel as soon as the prediction shows progress.
            if let Event::Progress { task, done: 1, .. } = &event.message
                && task.starts_with("predicting")
                && let Some(flag) = &*slot.borrow()
            {
                flag.store(true, Ordering::SeqCst);
            }
            sink.borrow_mut().push(event);
        }),
    );
    send(
        &mut engine,
        Command::Configure {
            settings: small(|s| s.page.eval_every = 0),
        },
    );
    send(&mut engine, Command::LoadDemo { size: 32 });
    send(&mut engine, Command::Step);
    send(&mut engine, Command::Predict);
    let first = engine.evaluation().cloned().expect("a prediction");
    take(&events);

    *cancel_slot.borrow_mut() = Some(engine.cancel_flag());
    send(&mut engine, Command::Step);
    send(&mut engine, Command::Predict);
    let said = take(&events);
    assert!(!said.iter().any(|e| matches!(e, Event::Evaluation { .. })));
    assert!(said.iter().any(|e| matches!(e, Event::Progress { task, .. }
        if task == "predicting the whole volume (cancelled)")));
    assert!(failures(&said).is_empty());
    assert_eq!(
        engine.evaluation(),
        Some(&first),
        "the last prediction stays"
    );
}

#[test]
fn exports_are_named_after_the_scan_and_hold_the_run() {
    let (mut engine, events) = ready(small(|s| s.page.eval_every = 0));
    send(&mut engine, Command::ExportPrediction);
    assert!(
        take(&events)
            .iter()
            .any(|e| matches!(e, Event::ExportFailed { message }
        if message == "Predict the volume first (“Predict now”)."))
    );
    send(&mut engine, Command::Step);
    send(&mut engine, Command::Predict);
    take(&events);
    for (command, name) in [
        (Command::ExportPrediction, "phantom_prediction.nii.gz"),
        (Command::ExportHistory, "gdl-lab-history.csv"),
        (Command::ExportWeights, "gdl-lab-simple-step1.safetensors"),
    ] {
        send(&mut engine, command);
        let envelope = events.borrow_mut().pop().unwrap();
        match envelope.message {
            Event::Export { name: got, .. } => assert_eq!(got, name),
            other => panic!("{other:?}"),
        }
        assert!(!envelope.buffers[0].is_empty());
    }
}

/// The satisfied promise of a NaN stop: the session is exactly as it was after the last good
/// step — weights, Adam's moments and the sampler — so the next step equals the step a twin
/// session makes from that state.
#[test]
fn a_failed_step_leaves_weights_optimiser_and_sampler_as_they_were() {
    let volume = phantom(PhantomConfig {
        size: 32,
        ..Default::default()
    });
    let config = TrainingConfig {
        patch: 16,
        ..TrainingConfig::quick(16)
    };
    let cpu = ComputeDevice::flex(None);
    let mut failing = TrainingSession::on(config.clone(), &volume, &cpu).unwrap();
    let mut twin = TrainingSession::on(config.clone(), &volume, &cpu).unwrap();
    // burn initialises parameters lazily, from the device's one random stream: copy them.
    pollster::block_on(twin.adopt_weights(failing.net())).unwrap();
    for _ in 0..3 {
        let a = pollster::block_on(failing.step()).unwrap();
        let b = pollster::block_on(twin.step()).unwrap();
        assert_eq!(a.total, b.total);
    }
    failing.set_learning_rate(1e30).unwrap();
    let error = pollster::block_on(failing.step()).unwrap_err();
    assert!(
        matches!(error, TrainError::NonFinite { step: 4, .. }),
        "{error}"
    );
    assert_eq!(failing.steps_done(), 3);
    failing.set_learning_rate(config.lr).unwrap();
    for _ in 0..2 {
        let a = pollster::block_on(failing.step()).unwrap();
        let b = pollster::block_on(twin.step()).unwrap();
        assert_eq!(
            (a.step, a.total, a.grad_norm),
            (b.step, b.total, b.grad_norm)
        );
    }
}

/// What the page does when its worker crashed: a fresh engine gets the scan, the settings and
/// the last checkpoint, and the run goes on from that step with the same history.
#[test]
fn a_fresh_engine_continues_from_a_checkpoint() {
    let settings = small(|s| s.page.eval_every = 0);
    let (mut first, events) = ready(settings.clone());
    // Without asking, an engine sends none (the CLI does not read its weights back each step).
    send(&mut first, Command::Step);
    assert!(
        !events
            .borrow()
            .iter()
            .any(|e| matches!(e.message, Event::Checkpoint { .. }))
    );
    send(&mut first, Command::Reset { run: 0 });
    let mut first = first.keep_checkpoints();
    for _ in 0..3 {
        send(&mut first, Command::Step);
    }
    let kept = events
        .borrow()
        .iter()
        .rev()
        .find(|e| matches!(e.message, Event::Checkpoint { .. }))
        .cloned()
        .expect("a checkpoint after each step");
    let Event::Checkpoint { checkpoint, .. } = kept.message else {
        unreachable!()
    };
    assert_eq!(checkpoint.step, 3);
    let history = first.history().to_vec();
    send(&mut first, Command::Step);
    send(&mut first, Command::Step);
    let (fourth, fifth) = (first.history()[3].clone(), first.history()[4].clone());

    let (mut second, events) = ready(settings);
    pollster::block_on(second.handle(Envelope::with(
        Command::Restore {
            run: 2,
            checkpoint,
            history,
        },
        kept.buffers,
    )));
    assert!(failures(&take(&events)).is_empty());
    assert_eq!(second.history().len(), 3);
    send(&mut second, Command::Step);
    let said = take(&events);
    assert_eq!(steps(&said), [(2, 4)]);
    // The same weights and patches, so the loss of step 4 (measured before its update) is the
    // first run's; and the same Adam moments, so step 4's update is too, and with it the loss
    // of step 5 (with Adam afresh, which moves every weight by about the learning rate, the
    // two were 0.009 apart).
    assert_eq!(second.history()[3].total, fourth.total);
    send(&mut second, Command::Step);
    let resumed = second.history()[4].total;
    assert!(
        (resumed - fifth.total).abs() <= 1e-6 * fifth.total.abs(),
        "step 5: {resumed} after the checkpoint, {} without a crash",
        fifth.total
    );
}

/// A BraTS-like case (odd dims, BraTS's flipped affine, labels 0/1/2/4) dropped as two files.
fn brats_like_files(dims: [usize; 3]) -> (Vec<String>, Vec<Vec<u8>>, Volume) {
    let volume = phantom_of_dims(dims, 5);
    let affine = [
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, dims[1] as f64 - 1.0],
        [0.0, 0.0, 1.5, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let geometry = Volume::from_data(dims, 1.0, Vec::new()).with_affine(affine);
    let labels: Vec<u16> = volume
        .labels
        .iter()
        .map(|&l| if l == 3 { 4 } else { l as u16 })
        .collect();
    let image = write_nifti_gz(Voxels::Float32(&volume.image), &geometry).unwrap();
    let seg = write_label_map(&labels, &geometry).unwrap();
    (
        vec!["case_t1.nii.gz".into(), "case_seg.nii.gz".into()],
        vec![image, seg],
        geometry,
    )
}

fn preparations(events: &[Event]) -> Vec<Preparation> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Prepared(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Crop → train → predict → un-crop: the prediction comes back in the scan's grid (its dims
/// and affine in the exported file), the crop is told in a sentence and undone by a setting.
#[test]
fn a_cropped_scan_is_predicted_and_exported_in_its_own_grid() {
    let dims = [61, 53, 35];
    let (names, buffers, geometry) = brats_like_files(dims);
    let (mut engine, events) = engine();
    send(
        &mut engine,
        Command::Configure {
            settings: small(|s| s.page.eval_every = 0),
        },
    );
    drop_files(&mut engine, names, buffers);
    let loaded = take(&events);
    let prepared = preparations(&loaded);
    assert_eq!(prepared.len(), 1, "{loaded:?}");
    let done = &prepared[0];
    assert!(done.cropped(), "{done:?}");
    assert!(
        done.summary().starts_with("Cropped 61×53×35 → "),
        "{}",
        done.summary()
    );
    let scan = loaded.iter().find_map(|e| match e {
        Event::Scan(view) => Some(view.clone()),
        _ => None,
    });
    let scan = scan.expect("a scan event");
    assert_eq!(scan.dims, dims);
    assert!(
        scan.warnings.iter().any(|w| w.contains("BraTS 2021")),
        "{:?}",
        scan.warnings
    );
    assert_eq!(scan.class_names[3], "enhancing tumour (label 4)");

    send(&mut engine, Command::Step);
    send(&mut engine, Command::Predict);
    let evaluation = engine.evaluation().expect("predicted").clone();
    assert_eq!(evaluation.labels.len(), dims.iter().product::<usize>());
    // The probabilities stay on the working grid; read in the scan's grid, outside the crop
    // box, they are certain background.
    assert_eq!(evaluation.probabilities.len(), 4 * done.working_voxels());
    assert_eq!(evaluation.labels[0], 0);
    assert_eq!(done.probability_at(&evaluation.probabilities, 0, 0), 1.0);
    take(&events);
    send(&mut engine, Command::ExportPrediction);
    let exported = events.borrow_mut().pop().unwrap();
    let written = read_nifti(&exported.buffers[0], &Limits::default()).unwrap();
    assert_eq!(written.dims, dims);
    assert_eq!(written.affine, geometry.affine);
    // File label values, not classes.
    assert!(
        written
            .data
            .iter()
            .all(|&v| [0.0, 1.0, 2.0, 4.0].contains(&v))
    );

    // crop=false undoes the crop: the working grid is the scan's grid again.
    send(
        &mut engine,
        Command::Configure {
            settings: small(|s| {
                s.page.eval_every = 0;
                s.config.crop = false;
            }),
        },
    );
    let prepared = preparations(&take(&events));
    assert_eq!(prepared.len(), 1);
    assert!(!prepared[0].cropped() && !prepared[0].resampled());
    assert_eq!(prepared[0].working_dims, dims);
}

#[test]
fn absurd_links_give_sentences_not_panics() {
    let refusal = PageState::from_hash("epochs=200000000").unwrap_err();
    assert!(
        refusal.contains("lower epochs or steps_per_epoch"),
        "{refusal}"
    );
    let refusal = PageState::from_hash("overlap=33").unwrap_err();
    assert!(refusal.contains("0, 25 or 50"), "{refusal}");
    // A valid link whose session cannot fit in memory: refused when it would start.
    let (mut engine, events) = ready(small(|s| {
        s.config.patch = 256;
        s.config.batch = 64;
    }));
    send(&mut engine, Command::Step);
    let failed = failures(&take(&events));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("lower patch or batch"), "{}", failed[0]);
}

#[test]
fn a_file_name_whose_lower_case_changes_length_does_not_panic() {
    let (mut engine, events) = engine();
    let names = vec!["ẞẞ.hdr".to_string(), "İİ.img".to_string()];
    let buffers = vec![vec![0u8; 10], vec![0u8; 10]];
    drop_files(&mut engine, names, buffers);
    assert!(
        take(&events)
            .iter()
            .any(|e| matches!(e, Event::LoadFailed { .. })),
    );
}

/// The file an `Export` event carries, from the events since the last take.
fn exported(events: &Events) -> Vec<u8> {
    let mut events = events.borrow_mut();
    let at = events
        .iter()
        .rposition(|e| matches!(e.message, Event::Export { .. }))
        .expect("an export");
    let file = events[at].buffers[0].clone();
    events.clear();
    file
}

/// What opening a run said.
fn opened(events: &Events) -> Result<gdl_lab::engine::protocol::OpenedRun, String> {
    take(events)
        .into_iter()
        .find_map(|event| match event {
            Event::RunOpened { opened, .. } => Some(opened),
            _ => None,
        })
        .expect("a RunOpened event")
}

#[test]
fn a_saved_run_reopened_goes_on_bit_for_bit_and_a_bad_file_changes_nothing() {
    let settings = small(|s| s.page.eval_every = 0);
    // Uninterrupted: 12 steps.
    let (mut whole, _) = ready(settings.clone());
    for _ in 0..12 {
        send(&mut whole, Command::Step);
    }
    let uninterrupted = whole.history().to_vec();

    // Saved after 8 steps, opened in a fresh engine on the same scan, 4 more steps.
    let (mut first, events) = ready(settings.clone());
    for _ in 0..8 {
        send(&mut first, Command::Step);
    }
    take(&events);
    send(
        &mut first,
        Command::SaveRun {
            scan_files: Vec::new(),
        },
    );
    let file = exported(&events);
    let (mut second, events) = ready(settings.clone());
    pollster::block_on(second.handle(Envelope::with(
        Command::OpenRun { run: 5 },
        vec![file.clone()],
    )));
    let run = opened(&events).expect("opened");
    assert!(run.continued, "{}", run.sentence);
    assert_eq!(run.history.len(), 8);
    assert_eq!(second.history().len(), 8);
    for _ in 0..4 {
        send(&mut second, Command::Step);
    }
    assert_eq!(steps(&take(&events)), [(5, 9), (5, 10), (5, 11), (5, 12)]);
    // Every number of every step, bit for bit (the time a step took aside).
    let without_time = |history: &[gdl_lab::report::StepReport]| {
        history
            .iter()
            .map(|r| gdl_lab::report::StepReport {
                millis: 0.0,
                ..r.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_time(second.history()), without_time(&uninterrupted));

    // On another scan it opens for viewing, and the engine's run stays as it was.
    let (mut other, events) = ready(settings.clone());
    send(&mut other, Command::LoadDemo { size: 48 });
    send(&mut other, Command::Step);
    take(&events);
    pollster::block_on(other.handle(Envelope::with(
        Command::OpenRun { run: 1 },
        vec![file.clone()],
    )));
    let viewed = opened(&events).expect("opened for viewing");
    assert!(
        !viewed.continued && viewed.history.len() == 8,
        "{}",
        viewed.sentence
    );
    assert!(
        viewed.sentence.contains("opens for viewing"),
        "{}",
        viewed.sentence
    );
    assert_eq!(other.history().len(), 1);

    // A damaged file, another file, a newer version: a sentence each, and nothing changes.
    let mut damaged = file.clone();
    damaged.truncate(file.len() / 2);
    let weights = {
        send(&mut other, Command::ExportWeights);
        exported(&events)
    };
    // The version in the header's metadata: `"version":"1"`.
    let newer = {
        let needle = br#""version":"1"#;
        let at = file
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the version in the header");
        let mut newer = file.clone();
        newer[at + needle.len() - 1] = b'9';
        newer
    };
    for (bytes, expected) in [
        (damaged, "damaged"),
        (weights, "not a gdl-lab run file"),
        (b"hello".to_vec(), "not a gdl-lab run file"),
        (newer, "newer than this gdl-lab reads"),
    ] {
        pollster::block_on(other.handle(Envelope::with(Command::OpenRun { run: 1 }, vec![bytes])));
        let refused = opened(&events).expect_err("refused");
        assert!(refused.contains(expected), "{refused}");
        assert_eq!(other.history().len(), 1);
    }
}

#[test]
fn the_net_applies_to_another_scan_in_its_own_grid_and_the_run_stays() {
    let (names, buffers, _) = brats_like_files([61, 53, 35]);
    let (mut engine, events) = engine();
    // Without a scan: a sentence.
    pollster::block_on(engine.handle(Envelope::with(
        Command::Apply {
            names: names.clone(),
        },
        buffers.clone(),
    )));
    let refused = take(&events).into_iter().find_map(|event| match event {
        Event::Applied { applied } => Some(applied),
        _ => None,
    });
    assert!(
        matches!(refused, Some(Err(ref m)) if m.contains("Load a scan")),
        "{refused:?}"
    );

    send(
        &mut engine,
        Command::Configure {
            settings: small(|s| s.page.eval_every = 0),
        },
    );
    drop_files(&mut engine, names.clone(), buffers.clone());
    for _ in 0..2 {
        send(&mut engine, Command::Step);
    }
    let history = engine.history().to_vec();
    events.borrow_mut().clear();
    // Another case (a phantom of other dims and seed), labelled: predicted in its own grid,
    // scored there, exported with the training scan's label values.
    let (other_names, other_buffers, other_geometry) = brats_like_files([44, 40, 30]);
    let other_names: Vec<String> = other_names.iter().map(|n| format!("other_{n}")).collect();
    pollster::block_on(engine.handle(Envelope::with(
        Command::Apply {
            names: other_names.clone(),
        },
        other_buffers.clone(),
    )));
    let applied = events
        .borrow_mut()
        .drain(..)
        .find(|e| matches!(e.message, Event::Applied { .. }))
        .expect("an Applied event");
    let Event::Applied { applied: Ok(view) } = &applied.message else {
        panic!("{:?}", applied.message)
    };
    let voxels = 44 * 40 * 30;
    assert_eq!(view.dims, [44, 40, 30]);
    assert_eq!(view.dice.len(), 4);
    assert!(view.dice.iter().all(|d| (0.0..=1.0).contains(d)));
    let sizes: Vec<usize> = applied.buffers.iter().map(Vec::len).collect();
    assert_eq!(sizes, [voxels * 4, voxels, voxels]);
    assert_eq!(engine.history(), &history[..], "applying changed the run");
    assert_eq!(engine.scan().unwrap().volume.dims, [61, 53, 35]);
    send(&mut engine, Command::ExportApplied);
    let export = events
        .borrow_mut()
        .drain(..)
        .find(|e| matches!(e.message, Event::Export { .. }))
        .expect("an export");
    let Event::Export { name, .. } = &export.message else {
        unreachable!()
    };
    assert_eq!(name, "other_case_t1_prediction.nii.gz");
    let written = read_nifti(&export.buffers[0], &Limits::default()).unwrap();
    assert_eq!(written.dims, other_geometry.dims);
    assert_eq!(written.affine, other_geometry.affine);
    assert!(
        written
            .data
            .iter()
            .all(|v| [0.0, 1.0, 2.0, 4.0].contains(v))
    );
    // Without its label map: a prediction, no Dice.
    pollster::block_on(engine.handle(Envelope::with(
        Command::Apply {
            names: other_names[..1].to_vec(),
        },
        other_buffers[..1].to_vec(),
    )));
    let unlabelled = take(&events).into_iter().find_map(|event| match event {
        Event::Applied { applied } => Some(applied),
        _ => None,
    });
    assert!(
        matches!(unlabelled, Some(Ok(ref v)) if v.dice.is_empty()),
        "{unlabelled:?}"
    );
}

#[test]
fn a_run_saved_with_its_scan_opens_anywhere_and_goes_on() {
    let (names, buffers, _) = brats_like_files([40, 36, 28]);
    let settings = small(|s| s.page.eval_every = 0);
    let (mut first, events) = engine();
    send(
        &mut first,
        Command::Configure {
            settings: settings.clone(),
        },
    );
    drop_files(&mut first, names.clone(), buffers.clone());
    for _ in 0..3 {
        send(&mut first, Command::Step);
    }
    take(&events);
    pollster::block_on(first.handle(Envelope::with(
        Command::SaveRun {
            scan_files: names.clone(),
        },
        buffers,
    )));
    let file = exported(&events);
    // A fresh engine showing the demo: the run brings its scan and goes on.
    let (mut second, events) = ready(settings);
    pollster::block_on(second.handle(Envelope::with(Command::OpenRun { run: 3 }, vec![file])));
    let run = opened(&events).expect("opened");
    assert!(run.continued, "{}", run.sentence);
    assert_eq!(second.scan().unwrap().image_name, "case_t1.nii.gz");
    assert_eq!(second.history(), first.history());
    send(&mut second, Command::Step);
    send(&mut first, Command::Step);
    assert_eq!(second.history()[3].total, first.history()[3].total);
}

/// How the in-process helpers answer.
#[derive(Clone, Copy, PartialEq)]
enum Answers {
    /// Each share computed, as the page's helpers do.
    Computed,
    /// A failure each, as a helper that crashed.
    Failure,
    /// Each share's gradients one value short, as a helper of another net would send.
    ShortGradients,
    /// None at all.
    Nothing,
}

/// Other workers in this process, as the page's helper workers answer: each request carried
/// as the message is (postcard, both ways) and computed by a [`ShardWorker`] of its own, or
/// answered as `answers` says.
struct InProcessHelpers {
    count: usize,
    answers: Answers,
}

impl BatchHelpers for InProcessHelpers {
    fn count(&self) -> usize {
        self.count
    }

    fn compute(&self, requests: Vec<ShardRequest>) -> ShardFuture {
        let answers = requests
            .into_iter()
            .filter(|_| self.answers != Answers::Nothing)
            .map(|request| {
                if self.answers == Answers::Failure {
                    return Err("a planted failure".to_string());
                }
                let carried: ShardRequest = decode(&encode(&request)).unwrap();
                let mut result =
                    pollster::block_on(ShardWorker::new(Device::flex()).compute(carried))
                        .map_err(|error| error.to_string())?;
                if self.answers == Answers::ShortGradients {
                    result.gradients.pop();
                }
                Ok(decode::<ShardResult>(&encode(&result)).unwrap())
            })
            .collect();
        Box::pin(std::future::ready(answers))
    }
}

/// Every float of a net's weights, in its file's order.
fn weights_of(session: &TrainingSession) -> Vec<f32> {
    let bytes = pollster::block_on(gdl_lab::model::weights::to_safetensors(session.net(), &[]));
    let bytes = bytes.unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    names
        .into_iter()
        .flat_map(|name| gdl_lab::model::weights::f32_values(&file.tensor(name).unwrap()).unwrap())
        .collect()
}

/// A batch split among the session and other workers (the page's CPU path on every core) steps
/// as the whole batch does: the same losses, GDL anatomy, gradient norm and, after four steps
/// with the ramp between CE and the GDL under way, the same weights (up to the order of the
/// sums), and the same split again gives the same bits. For classes with the U-Net (shares of 2
/// and 1 patches) and BraTS's regions with the Simple net (three shares of one).
#[test]
fn a_batch_split_among_workers_steps_as_the_whole_batch_does() {
    let volume = phantom(PhantomConfig {
        size: 32,
        ..Default::default()
    });
    let cpu = ComputeDevice::flex(None);
    let classes = TrainingConfig {
        model: gdl_lab::model::ModelKind::Unet,
        patch: 16,
        batch: 3,
        steps_per_epoch: 2,
        warmup_epochs: 0.5,
        ramp_epochs: 2.0,
        ..TrainingConfig::default()
    };
    let regions = TrainingConfig {
        targets: gdl_lab::volume::Targets::Regions,
        ..TrainingConfig::quick(16)
    };
    for (config, helpers) in [
        (classes, 1),
        (
            TrainingConfig {
                batch: 3,
                ..regions
            },
            2,
        ),
    ] {
        let mut whole = TrainingSession::on(config.clone(), &volume, &cpu).unwrap();
        let mut split = TrainingSession::on(config.clone(), &volume, &cpu).unwrap();
        let mut again = TrainingSession::on(config.clone(), &volume, &cpu).unwrap();
        pollster::block_on(split.adopt_weights(whole.net())).unwrap();
        pollster::block_on(again.adopt_weights(whole.net())).unwrap();
        let helpers = InProcessHelpers {
            count: helpers,
            answers: Answers::Computed,
        };
        assert_eq!(split.workers_for(helpers.count), helpers.count + 1);
        for _ in 0..4 {
            let a = pollster::block_on(whole.step()).unwrap();
            let b = pollster::block_on(split.step_with(Some(&helpers))).unwrap();
            // The same split from the same start repeats bit for bit.
            let c = pollster::block_on(again.step_with(Some(&helpers))).unwrap();
            assert_eq!(
                (b.total.to_bits(), b.grad_norm.to_bits()),
                (c.total.to_bits(), c.grad_norm.to_bits())
            );
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * x.abs().max(1.0);
            let all_close = |x: &[f32], y: &[f32]| {
                x.len() == y.len() && x.iter().zip(y).all(|(&x, &y)| close(x, y))
            };
            let (m, n) = (a.anatomy.monitor, b.anatomy.monitor);
            for (name, x, y) in [
                ("total", a.total, b.total),
                ("warm-up", a.warmup, b.warmup),
                ("GDL", a.gdl, b.gdl),
                ("gradient norm", a.grad_norm, b.grad_norm),
                ("clipped norm", a.grad_norm_clipped, b.grad_norm_clipped),
                ("p max", m.p_max, n.p_max),
                ("p min", m.p_min, n.p_min),
                ("w min", m.w_min, n.w_min),
                ("weighted miss", m.weighted_miss, n.weighted_miss),
            ] {
                assert!(close(x, y), "step {}: {name} {x} whole, {y} split", a.step);
            }
            for (name, x, y) in [
                ("Dice", &a.anatomy.dice, &b.anatomy.dice),
                ("I", &a.anatomy.intersection, &b.anatomy.intersection),
                ("G", &a.anatomy.target, &b.anatomy.target),
                ("w", &a.anatomy.weight, &b.anatomy.weight),
            ] {
                assert!(
                    all_close(x, y),
                    "step {}: {name} {x:?} whole, {y:?} split",
                    a.step
                );
            }
        }
        let (a, b) = (weights_of(&whole), weights_of(&split));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            a.len() == b.len() && worst <= 1e-4,
            "weights differ by {worst}"
        );
        assert_eq!(b, weights_of(&again), "a split step that does not repeat");
        assert_eq!(split.take_helper_failure(), None);
    }
}

/// A helper that fails costs nothing: its share is computed by the session, the step is the
/// whole batch's, and the session says why once. A run with the GDL's sums pooled over the
/// batch (`batch_dice`) is never split, since a share's gradient is not a part of its gradient.
#[test]
fn a_failed_helpers_share_is_computed_at_home_and_a_pooled_gdl_is_not_split() {
    let volume = phantom(PhantomConfig {
        size: 32,
        ..Default::default()
    });
    let cpu = ComputeDevice::flex(None);
    let config = TrainingConfig {
        batch: 2,
        ..TrainingConfig::quick(16)
    };
    for (answers, failure) in [
        (Answers::Failure, "a planted failure"),
        (
            Answers::ShortGradients,
            "it sent 3763 gradient values for a net of 3764",
        ),
        (Answers::Nothing, "it gave no answer"),
    ] {
        let mut whole = TrainingSession::on(config.clone(), &volume, &cpu).unwrap();
        let mut split = TrainingSession::on(config.clone(), &volume, &cpu).unwrap();
        pollster::block_on(split.adopt_weights(whole.net())).unwrap();
        let failing = InProcessHelpers { count: 1, answers };
        for _ in 0..2 {
            let a = pollster::block_on(whole.step()).unwrap();
            let b = pollster::block_on(split.step_with(Some(&failing))).unwrap();
            assert!((a.total - b.total).abs() <= 1e-5, "{} {}", a.total, b.total);
        }
        assert_eq!(split.take_helper_failure().as_deref(), Some(failure));
        assert_eq!(split.take_helper_failure(), None);
    }

    let pooled = TrainingConfig {
        batch_dice: true,
        ..config
    };
    let session = TrainingSession::on(pooled, &volume, &cpu).unwrap();
    assert_eq!(session.workers_for(1), 1);
    let two_patches = TrainingSession::on(config, &volume, &cpu).unwrap();
    assert_eq!(
        two_patches.workers_for(7),
        2,
        "never more workers than patches"
    );
}

/// The "Training on" line of each session the engine announced.
fn device_lines(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Session { device, .. } => Some(device.clone()),
            _ => None,
        })
        .collect()
}

/// The engine splits a CPU step among its helper workers and says so on the device line, trains
/// alone with `cpu_workers=1`, and after a helper fails goes on alone, saying why.
#[test]
fn the_engine_says_how_many_workers_split_the_batch_and_goes_on_alone_after_a_failure() {
    let settings = |workers: usize| {
        small(|state| {
            state.config.batch = 2;
            state.page.cpu_workers = workers;
        })
    };
    for (answers, workers, expected) in [
        (
            Answers::Computed,
            0,
            "; each batch of 2 patches split across 2 workers, one core each",
        ),
        (Answers::Computed, 1, "; one worker (cpu_workers=1)"),
        (
            Answers::Failure,
            0,
            "; one worker: a helper worker failed (a planted failure), so this one trains alone",
        ),
    ] {
        let events: Events = Rc::default();
        let sink = events.clone();
        let mut engine = Engine::new(
            Devices::cpu_only("no GPU in this test"),
            Box::new(move |event| sink.borrow_mut().push(event)),
        )
        .with_batch_helpers(Box::new(InProcessHelpers { count: 3, answers }));
        send(
            &mut engine,
            Command::Configure {
                settings: settings(workers),
            },
        );
        send(&mut engine, Command::LoadDemo { size: 32 });
        send(&mut engine, Command::Step);
        send(&mut engine, Command::Step);
        let seen = take(&events);
        assert_eq!(steps(&seen).len(), 2, "{:?}", failures(&seen));
        let lines = device_lines(&seen);
        assert!(
            lines.last().is_some_and(|line| line.ends_with(expected)),
            "{lines:?}"
        );
    }
}
