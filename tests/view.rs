//! The page's pure parts, natively: URL state, slice pixels, chart geometry, the lab's probes,
//! the exports.
#![cfg(not(target_arch = "wasm32"))]

use burn::tensor::Device;
use gdl_lab::loss::{Misuse, WeightType};
use gdl_lab::model::ModelKind;
use gdl_lab::report::history_csv;
use gdl_lab::train::{TrainingConfig, TrainingSession};
use gdl_lab::view::chart::{Scale, Series, nice_ticks, path, thin, values_at};
use gdl_lab::view::slice::{Overlay, PALETTE, Plane, SliceInput, Window, render};
use gdl_lab::view::{BackendChoice, PageState};
use gdl_lab::volume::demo_scan;

// ---------------------------------------------------------------------------------------------
// State behind the URL hash.

#[test]
fn the_default_state_is_an_empty_hash_and_changes_round_trip() {
    assert_eq!(PageState::default().to_hash(), "");
    assert_eq!(PageState::from_hash("").unwrap(), PageState::default());

    let mut state = PageState::default();
    state.config.model = ModelKind::Target;
    state.config.pretrain_epochs = 2;
    state.config.lr = 0.02;
    state.config.misuse = Some(Misuse::Mask255);
    state.page.backend = BackendChoice::Cpu;
    state.page.eval_every = 0;
    let hash = state.to_hash();
    for key in [
        "model=target",
        "lr=0.02",
        "misuse=mask255",
        "backend=cpu",
        "eval_every=0",
    ] {
        assert!(hash.contains(key), "{key} missing from {hash}");
    }
    assert_eq!(PageState::from_hash(&format!("#{hash}")).unwrap(), state);
    let small = PageState::default().small();
    assert_eq!(PageState::from_hash(&small.to_hash()).unwrap(), small);
    assert!(small.config.validate().is_ok() && small.page.validate().is_ok());
}

#[test]
fn a_bad_link_gets_a_sentence_naming_the_setting() {
    for (hash, expected) in [
        ("colour=red", "colour"),
        ("lr=fast", "lr"),
        ("demo_size=7", "demo scan"),
        ("backend=tpu", "tpu"),
        ("model=unet&patch=30", "multiple of 4"),
    ] {
        let error = PageState::from_hash(hash).unwrap_err();
        assert!(error.contains(expected), "{hash}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Slices.

#[test]
fn planes_put_the_second_axis_up() {
    let dims = [4, 3, 2];
    assert_eq!(Plane::Axial.size(dims), (4, 3));
    assert_eq!(Plane::Coronal.size(dims), (4, 2));
    assert_eq!(Plane::Sagittal.size(dims), (3, 2));
    // Top-left of the axial slice z = 1 is x = 0, y = ny − 1.
    assert_eq!(Plane::Axial.voxel(dims, 1, 0, 0), 2 * 4 + 4 * 3);
    // Bottom-right of the sagittal slice x = 3 is y = ny − 1, z = 0.
    assert_eq!(Plane::Sagittal.voxel(dims, 3, 2, 1), 3 + 4 * 2);
}

#[test]
fn a_scan_opens_on_the_slices_through_its_labels() {
    let dims = [4, 3, 10];
    let mut labels = vec![0u8; 4 * 3 * 10];
    assert_eq!(Plane::Axial.foreground_centre(dims, &labels), 5);
    for z in [6, 8] {
        labels[1 + 4 * (2 + 3 * z)] = 2; // x = 1, y = 2
    }
    assert_eq!(Plane::Axial.foreground_centre(dims, &labels), 7);
    assert_eq!(Plane::Coronal.foreground_centre(dims, &labels), 2);
    assert_eq!(Plane::Sagittal.foreground_centre(dims, &labels), 1);
}

#[test]
fn the_automatic_window_ignores_background_and_hot_voxels() {
    let mut image = vec![0.0f32; 1000];
    for (i, v) in image.iter_mut().enumerate().skip(500) {
        *v = 100.0 + (i % 100) as f32;
    }
    image[999] = 1e6;
    let window = Window::auto(&image);
    assert!(window.level > 120.0 && window.level < 180.0, "{window:?}");
    assert!(window.width < 120.0, "{window:?}");
    assert_eq!(window.grey(0.0), 0);
    assert_eq!(window.grey(1e6), 255);
}

fn slice_input<'a>(
    image: &'a [f32],
    truth: &'a [u8],
    prediction: Option<&'a [u8]>,
    overlay: Overlay,
) -> SliceInput<'a> {
    SliceInput {
        image,
        dims: [4, 4, 1],
        plane: Plane::Axial,
        slice: 0,
        window: Window {
            level: 0.5,
            width: 1.0,
        },
        overlay,
        truth,
        prediction,
        probabilities: None,
        preparation: None,
        class: 1,
    }
}

fn pixel(pixels: &[u8], width: usize, u: usize, v: usize) -> [u8; 3] {
    let at = 4 * (u + width * v);
    [pixels[at], pixels[at + 1], pixels[at + 2]]
}

#[test]
fn overlays_paint_classes_in_the_palette_and_leave_background_grey() {
    let image = vec![0.5f32; 16];
    // Class 1 in the 2×2 centre of the 4×4 slice.
    let mut truth = vec![0u8; 16];
    for index in [5, 6, 9, 10] {
        truth[index] = 1;
    }
    let (w, h, plain) = render(&slice_input(&image, &truth, None, Overlay::None));
    assert_eq!((w, h, plain.len()), (4, 4, 64));
    assert!(plain.chunks(4).all(|p| p == [128, 128, 128, 255]));

    let (_, _, filled) = render(&slice_input(&image, &truth, None, Overlay::Truth));
    let centre = pixel(&filled, 4, 1, 1);
    let corner = pixel(&filled, 4, 0, 0);
    assert_eq!(corner, [128, 128, 128]);
    // The fill leans towards the class colour (orange: more red than blue).
    assert!(centre[0] > 128 && centre[2] < 128, "{centre:?}");

    // No prediction yet: "both" shows only the truth's outline, in the full class colour.
    let (_, _, both) = render(&slice_input(&image, &truth, None, Overlay::Both));
    assert_eq!(pixel(&both, 4, 1, 1), PALETTE[0]);
    // With a prediction of class 2 everywhere, the fill is class 2's colour under the outline.
    let prediction = vec![2u8; 16];
    let (_, _, both) = render(&slice_input(
        &image,
        &truth,
        Some(&prediction),
        Overlay::Both,
    ));
    let outside = pixel(&both, 4, 0, 0);
    assert!(
        outside[2] > outside[0],
        "sky blue fill expected: {outside:?}"
    );
}

#[test]
fn the_probability_overlay_grows_with_the_probability() {
    let image = vec![0.0f32; 16];
    let truth = vec![0u8; 16];
    let mut probabilities = vec![0.0f32; 2 * 16];
    probabilities[16] = 1.0; // class 1 certain at voxel 0 (bottom-left in the picture)
    probabilities[17] = 0.3;
    let mut input = slice_input(&image, &truth, None, Overlay::Probability);
    input.probabilities = Some(&probabilities);
    let (_, _, pixels) = render(&input);
    let certain = pixel(&pixels, 4, 0, 3);
    let unsure = pixel(&pixels, 4, 1, 3);
    let none = pixel(&pixels, 4, 2, 3);
    assert_eq!(none, [0, 0, 0]);
    assert!(
        certain[0] > unsure[0] && unsure[0] > none[0],
        "{certain:?} {unsure:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Charts.

fn series(points: Vec<(f64, f64)>) -> Series {
    Series {
        name: "s".into(),
        colour: "#000".into(),
        dashed: false,
        points,
    }
}

#[test]
fn loss_charts_always_show_zero_and_negative_values_fall_below_it() {
    let scale = Scale::fit(&[series(vec![(1.0, 0.4), (2.0, 0.9)])], false, &[0.0]);
    assert!(scale.y_min < 0.0 && scale.y_max > 0.9);
    let negative = Scale::fit(&[series(vec![(1.0, 0.4), (2.0, -0.3)])], false, &[0.0]);
    let zero = negative.y(0.0).unwrap();
    assert!(
        negative.y(-0.3).unwrap() > zero,
        "below the zero line means larger SVG y"
    );
    assert!(nice_ticks(negative.y_min, negative.y_max, 4).contains(&0.0));
}

#[test]
fn a_log_axis_skips_values_it_cannot_draw() {
    let scale = Scale::fit(
        &[series(vec![(1.0, 1e-4), (2.0, 0.0), (3.0, 1.0)])],
        true,
        &[],
    );
    assert!(scale.y(0.0).is_none());
    assert!(scale.y(1e-4).unwrap() > scale.y(1.0).unwrap());
    let ticks = scale.y_ticks();
    assert!(ticks.contains(&1e-2) || ticks.contains(&1e-3), "{ticks:?}");
    // The unusable point breaks the line into two pieces.
    let d = path(
        &series(vec![(1.0, 1e-4), (2.0, 0.0), (3.0, 1.0)]).points,
        &scale,
    );
    assert_eq!(d.matches('M').count(), 2, "{d}");
}

#[test]
fn thinning_a_long_history_keeps_its_spikes() {
    let mut points: Vec<(f64, f64)> = (0..5000).map(|i| (i as f64, 0.5)).collect();
    points[3217].1 = -0.8; // one negative GDL
    points[4000].1 = f64::NAN;
    let thinned = thin(&points, 600);
    assert!(thinned.len() <= 601, "{}", thinned.len());
    assert!(thinned.iter().any(|p| p.1 == -0.8));
    assert_eq!(thinned.last(), points.last());
    assert_eq!(thin(&points[..10], 600).len(), 10);
}

#[test]
fn hover_reads_the_nearest_step() {
    let s = series(vec![(1.0, 0.1), (2.0, 0.2), (3.0, 0.3)]);
    let values = values_at(&[s], 2.4);
    assert_eq!(values[0].2, 2.0);
    assert_eq!(values[0].3, 0.2);
}

// ---------------------------------------------------------------------------------------------
// The lab and the exports, on a real session.

/// The scenarios' small settings: the Simple net on one 16³ patch a step.
fn simple_session() -> TrainingSession {
    let scan = demo_scan(32);
    let config = TrainingConfig {
        model: ModelKind::Simple,
        batch: 1,
        steps_per_epoch: 2,
        ..PageState::default().small().config
    };
    TrainingSession::new(config, &scan.volume, &Device::flex()).unwrap()
}

fn small_session() -> TrainingSession {
    let scan = demo_scan(32);
    let config = TrainingConfig {
        steps_per_epoch: 2,
        ..PageState::default().small().config
    };
    TrainingSession::new(config, &scan.volume, &Device::flex()).unwrap()
}

#[test]
fn the_lab_probes_every_cause_on_the_current_batch_and_names_it() {
    let mut session = small_session();
    // Before the first step the probe draws its own batch.
    let before = pollster::block_on(session.probe_gdl(None)).unwrap();
    assert!((0.0..=1.0).contains(&before.value), "{before:?}");
    assert!(before.violations.is_empty(), "{:?}", before.violations);
    pollster::block_on(session.step()).unwrap();
    let correct = pollster::block_on(session.probe_gdl(None)).unwrap();
    assert_eq!(correct.channels, ["0", "1", "2", "3"]);
    let batch_voxels = session.config().batch as f32 * 16f32.powi(3);
    assert_eq!(correct.target.iter().sum::<f32>(), batch_voxels);
    // The probe does not train: the same batch gives the same value.
    let again = pollster::block_on(session.probe_gdl(None)).unwrap();
    assert_eq!(again.value, correct.value);

    for misuse in Misuse::ALL {
        let probe = pollster::block_on(session.probe_gdl(Some(misuse))).unwrap();
        assert_eq!(probe.monitor.causes(), [misuse], "{misuse:?}: {probe:?}");
        if misuse == Misuse::NegatedDice {
            assert!((probe.value - (correct.value - 1.0)).abs() < 1e-5);
        }
    }
}

/// Every cause on an untrained net, with the page's settings and the small ones, 1/G and 1/G²
/// weights, is diagnosed as itself. The values are the README's step-0 table:
/// `cargo test --test view untrained -- --nocapture` prints them.
#[test]
fn on_an_untrained_net_every_cause_is_diagnosed_as_itself() {
    for (name, state) in [
        ("page", PageState::default()),
        ("small", PageState::default().small()),
    ] {
        let scan = demo_scan(state.page.demo_size);
        for w_type in [WeightType::Simple, WeightType::Square] {
            let config = TrainingConfig {
                w_type,
                ..state.config.clone()
            };
            let mut session = TrainingSession::new(config, &scan.volume, &Device::flex()).unwrap();
            let correct = pollster::block_on(session.probe_gdl(None)).unwrap().value;
            let mut line =
                format!("{name} settings, {w_type:?} weights, step 0: correct {correct:.3};");
            for misuse in Misuse::ALL {
                let reading = pollster::block_on(session.probe_gdl(Some(misuse))).unwrap();
                assert_eq!(
                    reading.monitor.causes(),
                    [misuse],
                    "{name} {w_type:?}: {reading:?}"
                );
                line += &format!(
                    " {misuse:?} {:.3} (weighted miss {:.2});",
                    reading.value, reading.monitor.weighted_miss
                );
            }
            println!("{line}");
        }
    }
}

/// The causes that need no training, on the demo's first batch (an untrained net): the 0/255 mask
/// (the batch's foreground is above the 0.6 % that takes it out) and −Dice must leave [0, 1],
/// each explained by its own sentence. The causes that need a trained net stay inside here, and
/// the monitor still names each one, with the reason in the numbers for the smoothing.
#[test]
fn at_step_0_the_causes_that_need_no_training_leave_the_range_and_the_others_are_named() {
    let mut session = small_session();
    let probe = |session: &mut TrainingSession, misuse| {
        pollster::block_on(session.probe_gdl(Some(misuse))).unwrap()
    };
    let mask = probe(&mut session, Misuse::Mask255);
    let foreground = mask.target[0] / 255.0 / (session.config().batch as f32 * 16f32.powi(3));
    assert!(foreground > 0.006, "foreground share {foreground}");
    for (misuse, name) in [(Misuse::Mask255, "0/255"), (Misuse::NegatedDice, "−Dice")] {
        let reading = probe(&mut session, misuse);
        let sentence = reading.explanation.clone().unwrap_or_default();
        assert!(reading.value < 0.0, "{misuse:?}: {reading:?}");
        assert!(sentence.contains(name), "{misuse:?}: {sentence}");
    }
    // The smoothing misuse leaves [0, 1] exactly when smooth_nr − smooth_dr exceeds the weighted
    // miss Σw·(P + G − 2·I), and its sentence says which. With the page's 1/G weights an
    // untrained net misses far more (inside); with 1/G² the sum is small unless a class is tiny.
    for w_type in [WeightType::Simple, WeightType::Square] {
        let config = TrainingConfig {
            w_type,
            ..session.config().clone()
        };
        let mut untrained =
            TrainingSession::new(config, &demo_scan(32).volume, &Device::flex()).unwrap();
        let smoothing = probe(&mut untrained, Misuse::SmoothNrAboveDr);
        let monitor = smoothing.monitor;
        let dominates = monitor.smooth_nr - monitor.smooth_dr > monitor.weighted_miss as f64;
        assert_eq!(!monitor.in_range(), dominates, "{w_type:?}: {smoothing:?}");
        let sentence = &smoothing.violations[0];
        assert!(
            sentence.contains(if dominates {
                "dominates"
            } else {
                "stays below 1"
            }),
            "{w_type:?}: {sentence}"
        );
        if w_type == WeightType::Simple {
            assert!(
                monitor.in_range() && monitor.weighted_miss > 1.0,
                "{smoothing:?}"
            );
        }
    }
    // The label map and BraTS labels need a confident net: inside at step 0, named all the same.
    for misuse in [Misuse::LabelMapAsTarget, Misuse::BratsLabels] {
        let reading = probe(&mut session, misuse);
        assert!(reading.monitor.in_range(), "{misuse:?}: {reading:?}");
        assert_eq!(reading.monitor.causes(), [misuse]);
    }
}

#[test]
fn the_weights_export_holds_every_parameter_by_name() {
    let session = simple_session();
    let bytes = pollster::block_on(gdl_lab::model::weights::to_safetensors(
        session.net(),
        &[("model", "simple".into())],
    ))
    .unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("model"))
            .map(String::as_str),
        Some("simple")
    );
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("Simple.")), "{names:?}");
    let elements: usize = tensors
        .tensors()
        .iter()
        .map(|(_, view)| view.shape().iter().product::<usize>())
        .sum();
    assert_eq!(elements, 3764);
}

#[test]
fn the_history_csv_has_a_row_per_step_and_a_column_per_class() {
    let mut session = small_session();
    let history: Vec<_> = (0..3)
        .map(|_| pollster::block_on(session.step()).unwrap())
        .collect();
    let csv = history_csv(&history);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].contains("dice_3") && lines[0].contains("grad_norm_clipped"));
    let columns = lines[0].split(',').count();
    assert!(lines[1..].iter().all(|l| l.split(',').count() == columns));
}

#[test]
fn per_class_lines_are_named_by_their_classes_kept_runs_included() {
    use gdl_lab::view::chart::charts::with_class_names;
    let named = |name: &str| Series {
        name: name.into(),
        colour: "#000".into(),
        dashed: false,
        points: vec![(1.0, 0.5)],
    };
    let classes = ["background", "necrotic core", "oedema"].map(String::from);
    let lines = with_class_names(
        vec![
            named("Dice 1"),
            named("Dice 2 [1: lr=0.02]"),
            named("Dice 7"),
            named("total"),
        ],
        "Dice",
        &classes,
    );
    let names: Vec<&str> = lines.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Dice necrotic core",
            "Dice oedema [1: lr=0.02]",
            "Dice 7",
            "total"
        ]
    );
}

/// The held-out chart of a region net names its lines WT, TC and ET, all three kept (a class
/// chart leaves the background out and names the classes).
#[test]
fn the_held_out_chart_names_regions_or_classes() {
    use gdl_lab::report::ValidationReport;
    use gdl_lab::view::chart::charts::validation;
    let names = ["background", "necrotic core", "oedema", "enhancing tumour"].map(String::from);
    let cases = vec![("case_005".to_string(), vec![0.9, 0.7, 0.5])];
    let regions = validation(&[ValidationReport::of_regions(10, cases.clone())], &names);
    let named: Vec<&str> = regions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(named, ["WT", "TC", "ET"]);
    assert_eq!(regions[2].points, [(10.0, 0.5)]);
    let report = ValidationReport::of_regions(10, cases.clone());
    assert!(
        (report.mean_foreground_dice - 0.7).abs() < 1e-6,
        "{report:?}"
    );
    let classes = validation(&[ValidationReport::of(10, cases)], &names);
    let named: Vec<&str> = classes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(named, ["necrotic core", "oedema"]);
}

/// The absent-class reading on real batches of the demo: within the first 40 steps some batch
/// lacks a class (a 16³ patch drawn away from the tumour), whose weight the GDL replaced by the
/// largest present weight (MONAI's rule), and whose soft Dice reads the smoothed value.
#[test]
fn an_absent_class_on_a_real_batch_gets_the_largest_present_weight() {
    use gdl_lab::view::absent::absent_classes;
    // 16³ patches of the 64³ demo: two in three are drawn anywhere, often beside the tumour.
    let scan = demo_scan(64);
    let config = TrainingConfig {
        steps_per_epoch: 2,
        ..PageState::default().small().config
    };
    let mut session = TrainingSession::new(config, &scan.volume, &Device::flex()).unwrap();
    for _ in 0..40 {
        pollster::block_on(session.step()).unwrap();
        let reading = pollster::block_on(session.probe_gdl(None)).unwrap();
        let absent = absent_classes(&reading, &scan.class_names);
        if let Some(class) = absent.first() {
            assert_eq!(class.weight, class.largest_present_weight, "{reading:?}");
            // Each sample's (0 + smooth_nr)/(P + smooth_dr), averaged: near 0 once anything is
            // predicted there.
            assert!(
                class.predicted < 0.01 || class.smoothed_dice < 1e-3,
                "{class:?}"
            );
            assert!(class.sentence().contains("G = 0"), "{}", class.sentence());
            return;
        }
    }
    panic!("no batch of 40 lacked a class: the reading was never exercised");
}
