//! Several cases with several modalities: the Decathlon's 4D images split into channels, a set's
//! shared modalities and label convention, held-out cases that never feed a training patch and
//! are scored while training, and the CLI's `--cases`.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use gdl_lab::engine::{Command, Devices, Engine, Envelope, Event};
use gdl_lab::view::{BackendChoice, PageState};
use gdl_lab::volume::cases::{decathlon_task, load_cases};
use gdl_lab::volume::nifti::{Voxels, read_nifti_channels, write_nifti_gz};
use gdl_lab::volume::{Dataset, Limits, NamedFile, Volume, write_label_map};

mod common;

/// A float32 NIfTI file of `data` on a `dims` grid of 1 mm voxels.
fn nifti(dims: [usize; 3], data: &[f32]) -> Vec<u8> {
    write_nifti_gz(
        Voxels::Float32(data),
        &Volume::from_data(dims, 1.0, Vec::new()),
    )
    .unwrap()
}

fn labels_file(dims: [usize; 3], labels: &[u16]) -> Vec<u8> {
    write_label_map(labels, &Volume::from_data(dims, 1.0, Vec::new())).unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A 4D NIfTI-1 file (uncompressed) whose volumes are `channels`, as the Decathlon stores a
/// case's modalities: a 3D file's header with dim[0] = 4 and dim[4] = the channel count, and
/// the volumes one after the other.
fn four_d(dims: [usize; 3], channels: &[Vec<f32>]) -> Vec<u8> {
    let mut bytes = gunzip(&nifti(dims, &channels[0]));
    let offset = f32::from_le_bytes(bytes[108..112].try_into().unwrap()) as usize;
    bytes[40..42].copy_from_slice(&4i16.to_le_bytes());
    bytes[48..50].copy_from_slice(&(channels.len() as i16).to_le_bytes());
    bytes.truncate(offset);
    for channel in channels {
        bytes.extend(channel.iter().flat_map(|v| v.to_le_bytes()));
    }
    bytes
}

/// A task folder's files: `image` for every path under imagesTr/, `label` for the others.
fn reader<'a>(
    image: &'a [u8],
    label: &'a [u8],
) -> impl FnMut(&str) -> Result<Vec<u8>, String> + 'a {
    move |path| {
        Ok(if path.contains("imagesTr") {
            image.to_vec()
        } else {
            label.to_vec()
        })
    }
}

const DIMS: [usize; 3] = [6, 5, 4];

/// Channel `c` of a case: every voxel different, and different per channel.
fn channel(c: usize) -> Vec<f32> {
    (0..120)
        .map(|i| 1.0 + i as f32 + 1000.0 * c as f32)
        .collect()
}

/// Labels with every value of `values` somewhere.
fn labels(values: &[u16]) -> Vec<u16> {
    (0..120).map(|i| values[i % values.len()]).collect()
}

#[test]
fn a_decathlon_4d_image_splits_into_its_channels_in_file_order() {
    let channels: Vec<Vec<f32>> = (0..4).map(channel).collect();
    let file = four_d(DIMS, &channels);
    let volumes = read_nifti_channels(&file, &Limits::default()).unwrap();
    assert_eq!(volumes.len(), 4);
    for (volume, expected) in volumes.iter().zip(&channels) {
        assert_eq!(volume.dims, DIMS);
        assert_eq!(&volume.data, expected);
    }

    // The task folder: dataset.json names the modalities (in the 4th axis' order) and labels.
    let index = r#"{
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor",
                   "3": "enhancing tumour"},
        "training": [
            {"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"},
            {"image": "./imagesTr/BRATS_002.nii.gz", "label": "./labelsTr/BRATS_002.nii.gz"}
        ]
    }"#;
    let label = labels_file(DIMS, &labels(&[0, 1, 2, 3]));
    let dataset = decathlon_task(index, &mut reader(&file, &label), &Limits::default()).unwrap();
    assert_eq!(dataset.names(), ["BRATS_001", "BRATS_002"]);
    // The built-in demo set keeps the phantom's tissue names.
    let demo = gdl_lab::volume::files::demo_cases(32, 2).unwrap();
    assert_eq!(demo.cases()[1].scan.class_names[1], "necrotic core");
    let scan = &dataset.cases()[0].scan;
    assert_eq!(scan.volume.channels, 4);
    assert_eq!(
        scan.modalities,
        [
            "BRATS_001_0000_FLAIR.nii.gz",
            "BRATS_001_0001_T1w.nii.gz",
            "BRATS_001_0002_t1gd.nii.gz",
            "BRATS_001_0003_T2w.nii.gz"
        ]
    );
    // Each case let go of its intensities once read (a set of full-size cases would otherwise
    // hold every channel of every case); its 4D file gives them again, in order, all at once
    // or one channel at a time.
    for case in dataset.cases() {
        assert!(
            !case.scan.has_image(),
            "{} still holds its intensities",
            case.name
        );
        let again = case.scan.full_volume().unwrap();
        for (c, expected) in channels.iter().enumerate() {
            assert_eq!(again.channel(c), &expected[..], "channel {c}, read again");
            let alone = case.scan.channel_intensities(c).unwrap();
            assert_eq!(&alone[..], &expected[..], "channel {c} alone");
        }
    }
    assert_eq!(
        scan.class_names,
        [
            "background",
            "edema",
            "non-enhancing tumor",
            "enhancing tumour"
        ]
    );
    // The last case by name is held out by default.
    assert!(!dataset.is_held_out(0) && dataset.is_held_out(1));

    // An image with fewer volumes than dataset.json names modalities gets a sentence.
    let three = four_d(DIMS, &channels[..3]);
    let refusal =
        decathlon_task(index, &mut reader(&three, &label), &Limits::default()).unwrap_err();
    assert!(
        refusal.contains("BRATS_001") && refusal.contains("holds 3 volumes"),
        "{refusal}"
    );
}

/// A case's files: its modalities (`suffix`, channel) and its label map.
fn case(
    name: &str,
    modalities: &[(&str, usize)],
    label_values: &[u16],
) -> (String, Vec<NamedFile>) {
    let mut files: Vec<NamedFile> = modalities
        .iter()
        .map(|(suffix, c)| NamedFile {
            name: format!("{name}_{suffix}.nii.gz"),
            bytes: nifti(DIMS, &channel(*c)),
        })
        .collect();
    files.push(NamedFile {
        name: format!("{name}_seg.nii.gz"),
        bytes: labels_file(DIMS, &labels(label_values)),
    });
    (name.to_string(), files)
}

/// A case of BraTS's four modalities (files given FLAIR first) and BraTS 2021 labels.
fn brats_case(name: &str) -> (String, Vec<NamedFile>) {
    case(
        name,
        &[("flair", 3), ("t2", 2), ("t1", 0), ("t1ce", 1)],
        &[0, 1, 2, 4],
    )
}

fn set(cases: Vec<(String, Vec<NamedFile>)>) -> Result<Dataset, String> {
    Dataset::new(load_cases(cases, &Limits::default())?, None)
}

#[test]
fn a_cases_modalities_become_channels_in_bratss_order() {
    let dataset = set(vec![
        brats_case("a"),
        case(
            "b",
            &[("t1ce", 1), ("t1", 0), ("flair", 3), ("t2", 2)],
            &[0, 1, 2, 4],
        ),
    ])
    .unwrap();
    // No case keeps its intensities once read; each reads them again from its files (in the
    // channel order of their names, not of their files).
    let kept: Vec<bool> = dataset.cases().iter().map(|c| c.scan.has_image()).collect();
    assert_eq!(kept, [false, false]);
    for case in dataset.cases() {
        let volume = case.scan.full_volume().unwrap();
        assert_eq!(volume.channels, 4);
        for c in 0..4 {
            // T1, T1ce, T2, FLAIR: channel c is the file made from channel(c).
            assert_eq!(
                volume.channel(c),
                &channel(c)[..],
                "{} channel {c}",
                case.name
            );
        }
    }
}

#[test]
fn the_page_gets_the_first_channel_with_the_scan_and_any_other_when_it_asks() {
    let dataset = set(vec![brats_case("a"), brats_case("b")]).unwrap();
    let (mut engine, events) = engine_on(dataset, &PageState::default());
    let planes = |events: &Events| -> Vec<(Option<usize>, Vec<f32>)> {
        events
            .borrow()
            .iter()
            .filter_map(|event| {
                let index = match &event.message {
                    Event::Scan(_) => None,
                    Event::ScanChannel { index } => Some(*index),
                    _ => return None,
                };
                let bytes = &event.buffers[0];
                let plane = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Some((index, plane))
            })
            .collect()
    };
    // With the scan: its first channel (T1) alone, not all four.
    let sent = planes(&events);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0], (None, channel(0)));
    events.borrow_mut().clear();
    // FLAIR when the page shows it, read again from its file.
    pollster::block_on(engine.handle(Envelope::new(Command::ScanChannel { index: 3 })));
    assert_eq!(planes(&events), [(Some(3), channel(3))]);
    // A channel that is not there: a sentence.
    pollster::block_on(engine.handle(Envelope::new(Command::ScanChannel { index: 4 })));
    let said = events
        .borrow()
        .iter()
        .find_map(|event| match &event.message {
            Event::LoadFailed { message } => Some(message.clone()),
            _ => None,
        });
    assert!(said.is_some_and(|m| m.contains("no channel 5")));
}

#[test]
fn every_case_must_bring_the_same_modalities_and_label_convention() {
    let missing = set(vec![
        case("a", &[("t1", 0), ("flair", 1)], &[0, 1, 2, 4]),
        case("b", &[("t1", 0)], &[0, 1, 2, 4]),
    ])
    .unwrap_err();
    assert!(missing.contains("Case b has no flair image"), "{missing}");
    let extra = set(vec![
        case("a", &[("t1", 0)], &[0, 1, 2, 4]),
        case("b", &[("t1", 0), ("t2", 1)], &[0, 1, 2, 4]),
    ])
    .unwrap_err();
    assert!(extra.contains("Case b brings a t2 image"), "{extra}");

    // BraTS 2021's 4 beside BraTS 2023's 3 (named BraTS, so recognised as 2023).
    let mixed = set(vec![
        case("BraTS2021_00001", &[("t1", 0)], &[0, 1, 2, 4]),
        case("BraTS2023_00002", &[("t1", 0)], &[0, 1, 2, 3]),
    ])
    .unwrap_err();
    assert!(
        mixed.contains("Case BraTS2023_00002 has label 3") && mixed.contains("BraTS 2021"),
        "{mixed}"
    );
}

#[test]
fn a_case_without_a_label_keeps_the_sets_classes() {
    // Case b has no necrotic core (1): its 4 must still be class 3, as in case a.
    let dataset = set(vec![
        case("a", &[("t1", 0)], &[0, 1, 2, 4]),
        case("b", &[("t1", 0)], &[0, 2, 4]),
    ])
    .unwrap();
    for case in dataset.cases() {
        let scan = &case.scan;
        assert_eq!(scan.volume.classes, 4, "{}", case.name);
        assert_eq!(scan.mapping.values, [0, 1, 2, 4]);
        assert!(scan.class_names[3].starts_with("enhancing tumour"));
    }
    let b = &dataset.cases()[1].scan.volume.labels;
    // labels(&[0, 2, 4]): voxel 2 holds 4, voxel 1 holds 2.
    assert_eq!((b[1], b[2]), (2, 3));
}

#[test]
fn cases_prepared_as_they_are_read_equal_cases_read_again() {
    // Case b has no necrotic core: prepared while read, in its own classes, its copy must be
    // renumbered to the set's as the case itself is.
    let cases = || {
        vec![
            case("a", &[("t1", 0), ("flair", 3)], &[0, 1, 2, 4]),
            case("b", &[("t1", 1), ("flair", 2)], &[0, 2, 4]),
            case("c", &[("t1", 2), ("flair", 0)], &[0, 1, 2, 4]),
        ]
    };
    let trained = |engine: &mut Engine| {
        pollster::block_on(engine.handle(Envelope::new(Command::Step)));
        engine.session().expect("a session").cases().to_vec()
    };
    // Dropped on the page: prepared as read.
    let (names, buffers): (Vec<String>, Vec<Vec<u8>>) = cases()
        .into_iter()
        .flat_map(|(case, files)| {
            files
                .into_iter()
                .map(move |f| (format!("{case}/{}", f.name), f.bytes))
        })
        .unzip();
    let (mut dropped, _) = engine_on(
        set(vec![case("z", &[("t1", 0)], &[0, 1])]).unwrap(),
        &settings(),
    );
    pollster::block_on(dropped.handle(Envelope::with(
        Command::LoadFiles {
            names,
            channels: None,
        },
        buffers,
    )));
    assert_eq!(dropped.training_case_names(), ["a", "b"]);
    // Given as a set: every case read again when prepared.
    let (mut given, _) = engine_on(set(cases()).unwrap(), &settings());
    let (dropped, given) = (trained(&mut dropped), trained(&mut given));
    assert_eq!(dropped.len(), 2);
    for (a, b) in dropped.iter().zip(&given) {
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.image, b.image);
        assert_eq!(a.classes, 4);
    }
    // b's enhancing tumour (its label 4, its own class 2) is the set's class 3.
    assert!(dropped[1].labels.contains(&3) && !dropped[1].labels.contains(&1));
}

#[test]
fn holding_out_names_cases_and_keeps_one_to_train_on() {
    let mut dataset = set(vec![
        case("a", &[("t1", 0)], &[0, 1]),
        case("b", &[("t1", 0)], &[0, 1]),
        case("c", &[("t1", 0)], &[0, 1]),
    ])
    .unwrap();
    let held: Vec<String> = dataset.validation().map(|c| c.name.clone()).collect();
    assert_eq!(held, ["c"]);
    dataset.hold_out(&["a".into()]).unwrap();
    let training: Vec<String> = dataset.training().map(|c| c.name.clone()).collect();
    assert_eq!(training, ["b", "c"]);
    let unknown = dataset.hold_out(&["z".into()]).unwrap_err();
    assert!(
        unknown.contains("no case z") && unknown.contains("a, b, c"),
        "{unknown}"
    );
    let all = dataset
        .hold_out(&["a".into(), "b".into(), "c".into()])
        .unwrap_err();
    assert!(all.contains("leave at least one"), "{all}");
}

/// A 24³ case: intensities with some structure, and a label map that is either one 3³ blob of
/// class 1 (`held_out: false`) or class 1 everywhere but one voxel (`true`), so that any patch
/// with more than 27 voxels of class 1 came from the held-out case.
fn blob_case(name: &str, held_out: bool) -> (String, Vec<NamedFile>) {
    const N: usize = 24;
    let dims = [N; 3];
    let image: Vec<f32> = (0..N * N * N)
        .map(|i| 1.0 + ((i % N) as f32 * 0.37).sin().abs() + (i / (N * N)) as f32 * 0.01)
        .collect();
    let labels: Vec<u16> = (0..N * N * N)
        .map(|i| {
            let [x, y, z] = [i % N, (i / N) % N, i / (N * N)];
            let in_blob = (10..13).contains(&x) && (10..13).contains(&y) && (10..13).contains(&z);
            u16::from(if held_out { i != 0 } else { in_blob })
        })
        .collect();
    let files = vec![
        NamedFile {
            name: format!("{name}_t1.nii.gz"),
            bytes: nifti(dims, &image),
        },
        NamedFile {
            name: format!("{name}_seg.nii.gz"),
            bytes: labels_file(dims, &labels),
        },
    ];
    (name.to_string(), files)
}

type Events = Rc<RefCell<Vec<Envelope<Event>>>>;

fn engine_on(dataset: Dataset, settings: &PageState) -> (Engine, Events) {
    let events: Events = Rc::default();
    let sink = events.clone();
    let mut engine = Engine::new(
        Devices::cpu_only("no GPU in this test"),
        Box::new(move |event| sink.borrow_mut().push(event)),
    );
    pollster::block_on(engine.handle(Envelope::new(Command::Configure {
        settings: settings.to_hash(),
    })));
    engine.use_dataset(dataset);
    (engine, events)
}

fn settings() -> PageState {
    let mut state = PageState::default().small();
    state.page.backend = BackendChoice::Cpu;
    state.page.eval_every = 0;
    state.page.val_every = 4;
    state.config.patch = 8;
    state.config.batch = 2;
    state.config.steps_per_epoch = 4;
    state.config.crop = false;
    state
}

#[test]
fn a_held_out_case_never_feeds_a_training_patch_and_is_scored_while_training() {
    // Case "z_val" sorts last: held out by default.
    let dataset = set(vec![
        blob_case("a", false),
        blob_case("b", false),
        blob_case("z_val", true),
    ])
    .unwrap();
    assert!(dataset.is_held_out(2));
    let (mut engine, events) = engine_on(dataset, &settings());
    // Once prepared, even the case shown lets go of its full-size intensities (the page keeps
    // its own copy; a new preparation reads them again from the files).
    assert!(!engine.scan().unwrap().has_image());
    let mut largest = 0.0f32;
    for _ in 0..12 {
        pollster::block_on(engine.handle(Envelope::new(Command::Step)));
        let batch = engine
            .session()
            .expect("a session")
            .last_batch()
            .expect("a step was made")
            .target
            .clone();
        // Voxels of class 1 in each patch of the batch.
        let counts: Vec<f32> = batch
            .narrow(1, 1, 1)
            .sum_dim(4)
            .sum_dim(3)
            .sum_dim(2)
            .into_data()
            .try_to_vec()
            .unwrap();
        largest = counts.into_iter().fold(largest, f32::max);
    }
    assert!(
        largest <= 27.0,
        "a training patch held {largest} voxels of class 1: it came from the held-out case"
    );
    assert_eq!(engine.training_case_names(), ["a", "b"]);

    // Scored every 4 steps, by name, with a Dice per class.
    let reports: Vec<_> = events
        .borrow()
        .iter()
        .filter_map(|event| match &event.message {
            Event::Validation { report, .. } => Some(report.clone()),
            _ => None,
        })
        .collect();
    let at: Vec<usize> = reports.iter().map(|r| r.step).collect();
    assert_eq!(at, [4, 8, 12]);
    for report in &reports {
        assert_eq!(report.cases.len(), 1);
        assert_eq!(report.cases[0].0, "z_val");
        assert_eq!(report.dice.len(), 2);
        assert!(report.dice.iter().all(|d| (0.0..=1.0).contains(d)));
    }
    assert_eq!(engine.validation(), &reports[..]);
    let best = engine.best_validation().expect("a best step");
    assert!(
        reports
            .iter()
            .all(|r| r.mean_foreground_dice <= best.mean_foreground_dice)
    );
}

#[test]
fn the_held_out_cases_can_be_chosen_again_and_one_always_trains() {
    let dataset = set(vec![
        blob_case("a", false),
        blob_case("b", false),
        blob_case("c", false),
    ])
    .unwrap();
    let (mut engine, events) = engine_on(dataset, &settings());
    assert_eq!(engine.training_case_names(), ["a", "b"]);
    let hold_out = |engine: &mut Engine, names: &[&str]| {
        let names = names.iter().map(|n| n.to_string()).collect();
        pollster::block_on(engine.handle(Envelope::new(Command::HoldOut { names })));
    };
    // The scan shown was "a": holding it out makes "b" the scan, its intensities read again
    // from its files for the page.
    hold_out(&mut engine, &["a"]);
    assert_eq!(engine.training_case_names(), ["b", "c"]);
    let shown = events
        .borrow()
        .iter()
        .rev()
        .find_map(|event| match &event.message {
            Event::Scan(view) => Some(view.clone().with_buffers(event.buffers.clone())),
            _ => None,
        });
    let shown = shown.expect("a scan event").expect("voxels that fit");
    let first = engine.scan().unwrap().channel_intensities(0).unwrap();
    assert_eq!(shown.image, &first[..]);
    let split = events
        .borrow()
        .iter()
        .rev()
        .find_map(|event| match &event.message {
            Event::Cases { names, held_out } => Some((names.clone(), held_out.clone())),
            _ => None,
        });
    assert_eq!(
        split,
        Some((
            vec!["a".into(), "b".into(), "c".into()],
            vec![true, false, false]
        ))
    );
    for _ in 0..4 {
        pollster::block_on(engine.handle(Envelope::new(Command::Step)));
    }
    assert_eq!(
        engine.validation().last().map(|r| r.cases[0].0.clone()),
        Some("a".into())
    );
    // Every case held out, or an unknown one: a sentence, and the split stays.
    for names in [&["a", "b", "c"][..], &["z"]] {
        hold_out(&mut engine, names);
        assert_eq!(engine.training_case_names(), ["b", "c"], "{names:?}");
    }
    let said: Vec<String> = events
        .borrow()
        .iter()
        .filter_map(|event| match &event.message {
            Event::Failed { failure, .. } => Some(failure.message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        said.iter().any(|m| m.contains("leave at least one")),
        "{said:?}"
    );
    assert!(said.iter().any(|m| m.contains("no case z")), "{said:?}");
    // None held out: all three train.
    hold_out(&mut engine, &[]);
    assert_eq!(engine.training_case_names(), ["a", "b", "c"]);
}

#[test]
fn the_cli_trains_on_case_folders_and_reports_train_and_validation_dice() {
    let dir = std::env::temp_dir().join(format!("gdl-lab-cases-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = common::gdl_lab;
    let out = dir.to_string_lossy().to_string();
    let (ok, _, stderr) = run(&[
        "phantom",
        "--modalities",
        "4",
        "--cases",
        "3",
        "--dims",
        "24x24x20",
        "--brats",
        "--out",
        &out,
    ]);
    assert!(ok, "{stderr}");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--cases",
            &out,
            "--model",
            "simple",
            "--patch",
            "16",
            "--batch",
            "1",
            "--steps",
            "4",
            "--steps-per-epoch",
            "2",
            "--crop",
            "false",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (ok, stdout, stderr) = train(&[]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
    assert_eq!(
        summary["channels"],
        serde_json::json!(["t1", "t1ce", "t2", "flair"])
    );
    assert_eq!(
        summary["cases"]["train"],
        serde_json::json!(["case_000", "case_001"])
    );
    assert_eq!(summary["cases"]["val"], serde_json::json!(["case_002"]));
    for key in ["train_dice", "val_dice", "best_val_dice"] {
        let dice = summary[key]
            .as_object()
            .unwrap_or_else(|| panic!("{key}: {summary}"));
        // BraTS 2021's labels.
        let labels: Vec<&str> = dice.keys().map(String::as_str).collect();
        assert_eq!(labels, ["1", "2", "4"], "{key}");
    }
    // Once per epoch (2 steps) and at the end.
    let history = summary["val_history"].as_array().unwrap();
    let steps: Vec<u64> = history.iter().map(|h| h[0].as_u64().unwrap()).collect();
    assert_eq!(steps, [2, 4]);

    // Fewer steps than an epoch: the held-out case is scored at the last step all the same.
    let (ok, stdout, stderr) = run(&[
        "train", "--cases", &out, "--model", "simple", "--patch", "16", "--batch", "1", "--steps",
        "1", "--crop", "false",
    ]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(summary["val_dice"].is_object(), "{summary}");
    assert_eq!(summary["cases"]["val"], serde_json::json!(["case_002"]));

    // --val names the held-out case; a missing modality gets its sentence.
    let (ok, stdout, stderr) = train(&["--val", "case_000"]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["cases"]["val"], serde_json::json!(["case_000"]));
    std::fs::remove_file(dir.join("case_001").join("case_001_flair.nii.gz")).unwrap();
    let (ok, _, stderr) = train(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("Case case_001 has no flair image"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_decathlon_nets_channels_are_matched_by_their_place_in_a_4d_file() {
    use gdl_lab::volume::files::match_channels;
    // Trained on a Decathlon task (channels named with dataset.json), given one 4D file later:
    // its volumes are named by their place alone.
    let wanted: Vec<String> = ["0000_flair", "0001_t1w", "0002_t1gd", "0003_t2w"]
        .map(String::from)
        .to_vec();
    let four_d: Vec<String> = (0..4)
        .rev()
        .map(|at| format!("BRATS_009_{at:04}.nii.gz"))
        .collect();
    assert_eq!(match_channels(&four_d, &wanted, 4).unwrap(), [3, 2, 1, 0]);
    // BraTS names still match by modality; a missing place is named.
    let named: Vec<String> = ["c_t2w.nii.gz", "c_flair.nii.gz"]
        .map(String::from)
        .to_vec();
    let wanted_named: Vec<String> = ["flair", "t2"].map(String::from).to_vec();
    assert_eq!(match_channels(&named, &wanted_named, 2).unwrap(), [1, 0]);
    let refused = match_channels(&four_d[..3], &wanted, 4).unwrap_err();
    assert!(refused.contains("0000_flair"), "{refused}");
}
