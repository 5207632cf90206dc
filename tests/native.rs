//! Native tests on burn's flex CPU backend: the session, its settings and the CLI.
#![cfg(not(target_arch = "wasm32"))]

use gdl_lab::backend::ComputeDevice;
use gdl_lab::loss::{Misuse, Schedule, WarmupLoss};
use gdl_lab::model::ModelKind;
use gdl_lab::report::StepReport;
use gdl_lab::train::{TrainError, TrainingConfig, TrainingSession};
use gdl_lab::volume::{LabelledVolume, SyntheticConfig, synthetic_volume};

fn flex() -> burn::prelude::Device {
    ComputeDevice::flex(None).device
}

fn volume(size: usize) -> LabelledVolume {
    synthetic_volume(SyntheticConfig {
        size,
        ..SyntheticConfig::default()
    })
}

fn run(config: TrainingConfig, volume: &LabelledVolume, steps: usize) -> Vec<StepReport> {
    let mut session = TrainingSession::new(config, volume, &flex()).expect("valid settings");
    (0..steps)
        .map(|_| pollster::block_on(session.step()).expect("step failed"))
        .collect()
}

fn totals(reports: &[StepReport]) -> Vec<f32> {
    reports.iter().map(|report| report.total).collect()
}

#[test]
fn a_few_steps_reduce_the_loss() {
    let losses = totals(&run(TrainingConfig::quick(16), &volume(16), 10));
    assert!(losses.iter().all(|loss| loss.is_finite()), "{losses:?}");
    assert!(
        losses.windows(2).take(3).all(|pair| pair[1] < pair[0]),
        "the first steps did not each lower the loss: {losses:?}"
    );
    assert!(
        losses[9] < 0.8 * losses[0],
        "ten steps lowered the loss by less than 20 %: {losses:?}"
    );
}

#[test]
fn training_on_flex_is_deterministic_for_a_seed() {
    // Patches smaller than the volume, so the sampler's seed matters too.
    let config = TrainingConfig {
        patch: 8,
        batch: 2,
        ..TrainingConfig::quick(8)
    };
    let data = volume(16);
    let first = totals(&run(config.clone(), &data, 5));
    assert_eq!(first, totals(&run(config.clone(), &data, 5)));
    // flex splits convolutions and matmuls over rayon's threads by output block, never a sum
    // across threads below 4 Mi elements, so the thread count does not change a bit either.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    assert_eq!(
        first,
        one_thread.install(|| totals(&run(config.clone(), &data, 5)))
    );
    let other = TrainingConfig {
        seed: 1,
        ..config.clone()
    };
    assert_ne!(
        totals(&run(config, &data, 5)),
        totals(&run(other, &data, 5))
    );
}

/// Steps `config` on `data` until a step fails (at most `steps`), and checks that it stopped on a
/// value that is not finite in `component`, named in the sentence.
fn assert_stops_on_nan_in(
    config: TrainingConfig,
    data: &LabelledVolume,
    steps: usize,
    component: &str,
) {
    let mut session = TrainingSession::new(config, data, &flex()).unwrap();
    let failure = (0..steps)
        .find_map(|_| pollster::block_on(session.step()).err())
        .unwrap_or_else(|| panic!("no step failed in {steps}"));
    let TrainError::NonFinite {
        component: named,
        value,
        ..
    } = &failure
    else {
        panic!("{failure:?}")
    };
    assert_eq!(*named, component, "{failure:?}");
    assert!(!value.is_finite(), "{failure:?}");
    let sentence = failure.to_string();
    assert!(
        sentence.contains("Training stopped at step")
            && sentence.contains(&format!("the {component} is {value}")),
        "{sentence}"
    );
}

/// The update that breaks the weights is caught in its own step (before any loss is NaN), so
/// the kept weights are the last finite ones.
#[test]
fn an_exploding_learning_rate_stops_at_the_update_that_breaks_the_weights() {
    let config = TrainingConfig {
        lr: 1e30,
        ..TrainingConfig::quick(8)
    };
    assert_stops_on_nan_in(config, &volume(8), 20, "norm of the updated weights");
}

/// Without smoothing, a patch holding no foreground gives the GDL (background excluded) 0/0,
/// while the BCE term stays finite: the sentence names the GDL, not the first component listed.
#[test]
fn a_nan_gdl_alone_is_named_as_the_gdl() {
    let config = TrainingConfig {
        include_background: false,
        smooth_nr: 0.0,
        smooth_dr: 0.0,
        patch: 4,
        ..TrainingConfig::quick(4)
    };
    assert_stops_on_nan_in(config, &volume(16), 50, "GDL term");
}

#[test]
fn one_report_carries_every_component_and_the_gdl_anatomy() {
    let config = TrainingConfig {
        warmup_epochs: 0.0,
        schedule: Schedule::Linear,
        ramp_epochs: 1.0,
        steps_per_epoch: 4,
        warmup: WarmupLoss::Ce,
        clip: 0.01,
        ..TrainingConfig::quick(16)
    };
    let reports = run(config.clone(), &volume(16), 3);
    let report = &reports[2];
    assert_eq!(report.step, 3);
    assert!(
        (report.lambda - 0.5).abs() < 1e-12,
        "λ after 2 of 4 steps: {}",
        report.lambda
    );
    let expected =
        (1.0 - report.lambda) as f32 * 0.5 * report.warmup + report.lambda as f32 * report.gdl;
    assert!((report.total - expected).abs() < 1e-5, "{report:?}");
    assert_eq!(report.anatomy.channels, ["0", "1", "2", "3"]);
    for row in [
        &report.anatomy.dice,
        &report.anatomy.weight,
        &report.anatomy.intersection,
        &report.anatomy.prediction,
        &report.anatomy.target,
        &report.anatomy.contribution,
    ] {
        assert_eq!(row.len(), 4);
    }
    // G counts the voxels of each class in the patch; P sums probabilities (one per voxel).
    assert_eq!(
        report.anatomy.target.iter().sum::<f32>(),
        16.0 * 16.0 * 16.0
    );
    assert!((report.anatomy.prediction.iter().sum::<f32>() - 4096.0).abs() < 0.5);
    assert!((0.0..=1.0).contains(&report.gdl));
    assert!(report.anatomy.explanation.is_none());
    // The clipped norm is measured from the clipped gradients: max_norm when the raw norm
    // exceeds it (it does here), the raw norm otherwise.
    let max_norm = config.clip as f32;
    assert!(report.grad_norm > max_norm, "{report:?}");
    assert!(
        (report.grad_norm_clipped - max_norm).abs() <= 1e-4,
        "clipped norm {} for a raw norm {} and max_norm {max_norm}",
        report.grad_norm_clipped,
        report.grad_norm
    );
    let unclipped = &run(
        TrainingConfig {
            clip: 0.0,
            ..config.clone()
        },
        &volume(16),
        1,
    )[0];
    assert_eq!(unclipped.grad_norm_clipped, unclipped.grad_norm);
}

#[test]
fn pretraining_simple_then_widening_continues_with_the_target_net() {
    let config = TrainingConfig {
        model: ModelKind::Target,
        pretrain_epochs: 1,
        steps_per_epoch: 3,
        ..TrainingConfig::quick(8)
    };
    let reports = run(config, &volume(8), 5);
    let models: Vec<ModelKind> = reports.iter().map(|report| report.model).collect();
    assert_eq!(
        models,
        [
            ModelKind::Simple,
            ModelKind::Simple,
            ModelKind::Simple,
            ModelKind::Target,
            ModelKind::Target
        ]
    );
    // Widening keeps the function, so the loss does not jump when the net changes.
    let [before, after] = [reports[2].total, reports[3].total];
    assert!(
        (after - before).abs() < 0.1 * before,
        "loss {before} → {after} across widening"
    );
}

#[test]
fn settings_round_trip_through_the_compact_string() {
    let config = TrainingConfig {
        model: ModelKind::Target,
        pretrain_epochs: 2,
        schedule: Schedule::Cosine,
        ramp_epochs: 3.0,
        misuse: Some(Misuse::LabelMapAsTarget),
        lr: 0.0125,
        clip: 1.0,
        include_background: false,
        seed: 7,
        ..TrainingConfig::default()
    };
    let query = config.to_query();
    assert!(query.contains("model=target"), "{query}");
    assert!(query.contains("misuse=label_map_as_target"), "{query}");
    assert!(!query.contains("patch="), "defaults are left out: {query}");
    assert_eq!(TrainingConfig::from_query(&query), Ok(config));
    assert_eq!(
        TrainingConfig::from_query(""),
        Ok(TrainingConfig::default())
    );
    assert_eq!(TrainingConfig::default().to_query(), "");
}

#[test]
fn bad_settings_get_a_sentence() {
    let unknown = TrainingConfig::from_query("modle=unet").unwrap_err();
    assert!(unknown.contains("modle"), "{unknown}");
    let odd_patch = TrainingConfig::from_query("model=unet&patch=30").unwrap_err();
    assert!(odd_patch.contains("multiple of 4"), "{odd_patch}");
    let bad_lr = TrainingConfig::from_query("lr=-1").unwrap_err();
    assert!(bad_lr.contains("learning rate"), "{bad_lr}");
    let bad_value = TrainingConfig::from_query("model=resnet").unwrap_err();
    assert!(bad_value.contains("resnet"), "{bad_value}");
    let widen_unet = TrainingConfig::from_query("model=unet&pretrain_epochs=2").unwrap_err();
    assert!(widen_unet.contains("target"), "{widen_unet}");
}

#[test]
fn evaluation_predicts_every_voxel_and_scores_it() {
    let data = volume(16);
    let config = TrainingConfig {
        patch: 8,
        ..TrainingConfig::quick(8)
    };
    let session = TrainingSession::new(config, &data, &flex()).unwrap();
    let evaluation = pollster::block_on(session.evaluate()).unwrap();
    assert_eq!(evaluation.labels.len(), data.voxel_count());
    assert_eq!(evaluation.dice.len(), 4);
    assert_eq!(evaluation.probabilities.len(), 4 * data.voxel_count());
    // Blended probabilities still sum to 1 in every voxel.
    let voxels = data.voxel_count();
    for voxel in (0..voxels).step_by(97) {
        let sum: f32 = (0..4)
            .map(|c| evaluation.probabilities[c * voxels + voxel])
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "voxel {voxel}: {sum}");
    }
}

#[test]
fn cli_doctor_finds_the_cpu_backend() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
        .arg("doctor")
        .output()
        .expect("the gdl-lab binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "doctor failed:\n{stdout}");
    assert!(
        stdout.lines().any(|line| line.starts_with("ok    flex")),
        "{stdout}"
    );
}

#[test]
fn cli_models_lists_each_net_with_its_parameter_count() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
        .arg("models")
        .output()
        .expect("the gdl-lab binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    // Simple3DModel with 4 classes: (8·27+8) + (16·8·27+16) + (4·16+4).
    assert!(stdout.contains("simple       3764 parameters"), "{stdout}");
    for name in ["target", "unet"] {
        assert!(
            stdout.lines().any(|line| line.starts_with(name)),
            "{stdout}"
        );
    }
}

#[test]
fn cli_bench_times_the_steps_it_was_asked_for_and_ends_with_json() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
        .args([
            "bench",
            "--model",
            "unet",
            "--size",
            "8",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
        ])
        .output()
        .expect("the gdl-lab binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
    assert_eq!(summary["steps"], 3);
    assert_eq!(summary["model"], "unet");
    assert_eq!(summary["backend"], "Flex");
    // `--threads` pins flex's pool (bench/compare.py gives both sides the same count), and the
    // device line says so: the pool must be pinned before the device is described.
    assert_eq!(summary["threads"], 1, "{stderr}");
    assert!(stderr.contains("CPU backend, 1 thread"), "{stderr}");
    let median = summary["median_step_s"].as_f64().unwrap();
    assert!(median > 0.0 && summary["first_step_s"].as_f64().unwrap() > 0.0);
    assert_eq!(stderr.matches("timed").count(), 3, "{stderr}");
    // A size the U-Net cannot take is refused with a sentence.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
        .args(["bench", "--model", "unet", "--size", "10"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("multiple of 4"));
}

#[test]
fn cli_bench_predict_times_one_sliding_window_pass_over_the_dims_it_was_given() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
        .args([
            "bench",
            "--model",
            "simple",
            "--size",
            "8",
            "--predict",
            "12x16x8",
        ])
        .output()
        .expect("the gdl-lab binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
    assert_eq!(summary["dims"], serde_json::json!([12, 16, 8]));
    // 8-voxel windows at 50 % overlap: x starts 0,4; y 0,4,8; z 0.
    assert_eq!(summary["windows"], 6);
    assert!(summary["predict_s"].as_f64().unwrap() > 0.0);
    if cfg!(target_os = "linux") {
        assert!(summary["peak_rss_mib"].as_f64().unwrap() > 1.0, "{summary}");
    }
    // Dims that are not three edges are refused with a sentence, before any work.
    for bad in ["12x16", "12x16x2", "axbxc"] {
        let refused = std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
            .args(["bench", "--predict", bad])
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("240x240x155") || stderr.contains("4 to 1024"),
            "{stderr}"
        );
    }
}

#[test]
fn a_session_whose_widest_layer_outgrows_the_devices_largest_buffer_is_refused_with_a_sentence() {
    use gdl_lab::train::buffers::{check_largest_buffer, largest_buffer_bytes};
    const GIB: u64 = 1 << 30;
    let target = |patch: usize, batch: usize| TrainingConfig {
        model: ModelKind::Target,
        patch,
        batch,
        ..TrainingConfig::default()
    };
    // Target's widest layer has 64 channels: 256³ × 64 × 4 bytes = 4 GiB.
    assert_eq!(largest_buffer_bytes(&target(256, 1), 4), Some(4 * GIB));
    assert_eq!(largest_buffer_bytes(&target(256, 2), 4), Some(8 * GIB));
    // No limit known (the CPU), or the buffer fits: accepted.
    assert_eq!(check_largest_buffer(&target(256, 64), 4, None), Ok(()));
    assert_eq!(
        check_largest_buffer(&target(256, 1), 4, Some(4 * GIB)),
        Ok(())
    );
    // WebGPU's default binding limit (128 MiB, what Chrome grants) holds the defaults' layers.
    const MIB: u64 = 1 << 20;
    assert_eq!(
        check_largest_buffer(&target(32, 2), 4, Some(128 * MIB)),
        Ok(())
    );
    // One patch too many: refused, naming the largest patch that fits.
    let message = check_largest_buffer(&target(256, 2), 4, Some(4 * GIB)).unwrap_err();
    assert!(
        message.contains("256³") && message.contains("8 GiB") && message.contains("4 GiB"),
        "{message}"
    );
    assert!(message.contains("at most 203 voxels"), "{message}");
    // A U-Net's patch must stay a multiple of 4, and its widest layer has 16 channels.
    let unet = TrainingConfig {
        model: ModelKind::Unet,
        patch: 128,
        batch: 64,
        ..TrainingConfig::default()
    };
    let message = check_largest_buffer(&unet, 4, Some(GIB)).unwrap_err();
    assert!(message.contains("at most 64 voxels"), "{message}");
    // The constructor the page and the CLI use checks it before building anything.
    let mut small = ComputeDevice::flex(None);
    small.adapter.max_buffer_size = Some(1 << 20);
    let volume = synthetic_volume(SyntheticConfig::default());
    match TrainingSession::on(target(64, 1), &volume, &small) {
        Err(TrainError::Config(message)) => assert!(message.contains("64³"), "{message}"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a session larger than the device's largest buffer was built"),
    }
    // Many classes widen the output beyond the net's own channels.
    assert_eq!(
        largest_buffer_bytes(&target(128, 1), 200),
        Some(128u64.pow(3) * 200 * 4)
    );
}

/// A session can start from another's weights (the same kind of net, any device), which is how
/// the browser test trains WebGPU and flex from one start; another kind of net is refused.
#[test]
fn a_session_adopts_another_sessions_weights_and_refuses_another_kind() {
    let data = volume(8);
    let first = TrainingSession::new(TrainingConfig::quick(8), &data, &flex()).unwrap();
    let other_seed = TrainingConfig {
        seed: 9,
        ..TrainingConfig::quick(8)
    };
    let mut second = TrainingSession::new(other_seed, &data, &flex()).unwrap();
    let input = burn::prelude::Tensor::<5>::random(
        [1, 1, 8, 8, 8],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &flex().autodiff(),
    );
    let logits = |session: &TrainingSession| -> Vec<f32> {
        session
            .net()
            .forward(input.clone())
            .into_data()
            .try_to_vec()
            .unwrap()
    };
    assert_ne!(logits(&first), logits(&second));
    pollster::block_on(second.adopt_weights(first.net())).unwrap();
    assert_eq!(logits(&first), logits(&second));
    // Training goes on from there.
    pollster::block_on(second.step()).unwrap();
    assert_ne!(logits(&first), logits(&second));

    let target = TrainingConfig {
        model: ModelKind::Target,
        ..TrainingConfig::quick(8)
    };
    let mut wider = TrainingSession::new(target, &data, &flex()).unwrap();
    let refusal = pollster::block_on(wider.adopt_weights(first.net())).unwrap_err();
    assert!(refusal.to_string().contains("does not match"), "{refusal}");
}

/// `gdl-lab phantom --dims … --brats` writes a BraTS-shaped case; `train` crops it, says so,
/// predicts it back into its own grid, and refuses absurd flags with sentences.
#[test]
fn cli_trains_a_brats_shaped_case_and_refuses_absurd_flags() {
    use gdl_lab::volume::{Limits, nifti::read_path};
    let dir = std::env::temp_dir().join(format!("gdl-lab-brats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (image, label, prediction) = (
        dir.join("case_t1.nii.gz"),
        dir.join("case_seg.nii.gz"),
        dir.join("prediction.nii.gz"),
    );
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
            .args(args)
            .output()
            .expect("the gdl-lab binary runs")
    };
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let made = cli(&[
        "phantom",
        "--dims",
        "44x40x24",
        "--brats",
        "--image",
        &path(&image),
        "--label",
        &path(&label),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let written = read_path(&image, &Limits::default()).unwrap();
    assert_eq!(written.dims, [44, 40, 24]);
    assert_eq!(written.header.datatype.name(), "int16");
    assert_eq!(written.affine[0][0], -1.0);
    assert_eq!(written.affine[1][3], 39.0);
    let labels = read_path(&label, &Limits::default()).unwrap();
    let mut values: Vec<i64> = labels.data.iter().map(|&v| v as i64).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values, [0, 1, 2, 4]);

    let trained = cli(&[
        "train",
        "--image",
        &path(&image),
        "--label",
        &path(&label),
        "--model",
        "simple",
        "--patch",
        "16",
        "--batch",
        "1",
        "--steps",
        "2",
        "--predict",
        &path(&prediction),
    ]);
    let stderr = String::from_utf8_lossy(&trained.stderr);
    assert!(trained.status.success(), "{stderr}");
    assert!(stderr.contains("Cropped 44×40×24 → "), "{stderr}");
    let predicted = read_path(&prediction, &Limits::default()).unwrap();
    assert_eq!(predicted.dims, written.dims);
    assert_eq!(predicted.affine, written.affine);

    // BraTS's regions: three sigmoid outputs, scored per region, written back as BraTS labels.
    let regions = cli(&[
        "train",
        "--image",
        &path(&image),
        "--label",
        &path(&label),
        "--model",
        "simple",
        "--targets",
        "regions",
        "--warmup",
        "bce",
        "--patch",
        "16",
        "--batch",
        "1",
        "--steps",
        "150",
        "--predict",
        &path(&prediction),
    ]);
    let stderr = String::from_utf8_lossy(&regions.stderr);
    assert!(regions.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&regions.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    for region in ["WT", "TC", "ET"] {
        assert!(summary["region_dice"][region].is_number(), "{summary}");
        assert!(summary["train_dice"][region].is_number(), "{summary}");
    }
    let predicted = read_path(&prediction, &Limits::default()).unwrap();
    assert_eq!(predicted.dims, written.dims);
    // The file holds BraTS's labels: its regions, read as BraTS reads them (WT = 1, 2, 4;
    // TC = 1, 4; ET = 4) against the label map's, score what the run reported. 150 steps learn
    // the whole tumour (0.86 in our runs), so that the comparison has voxels to compare.
    assert!(
        summary["region_dice"]["WT"].as_f64().unwrap() > 0.5,
        "{summary}"
    );
    let regions: [(&str, &[f32]); 3] = [
        ("WT", &[1.0, 2.0, 4.0]),
        ("TC", &[1.0, 4.0]),
        ("ET", &[4.0]),
    ];
    for (region, members) in regions {
        let (mut both, mut sizes) = (0usize, 0usize);
        for (p, t) in predicted.data.iter().zip(&labels.data) {
            let (p, t) = (members.contains(p), members.contains(t));
            both += usize::from(p && t);
            sizes += usize::from(p) + usize::from(t);
        }
        let from_file = if sizes == 0 {
            1.0
        } else {
            2.0 * both as f64 / sizes as f64
        };
        let reported = summary["region_dice"][region].as_f64().unwrap();
        assert!(
            (from_file - reported).abs() < 1e-4,
            "{region}: the written prediction scores {from_file}, the run reported {reported}"
        );
    }

    for (flags, sentence) in [
        (
            &["--epochs", "200000000"][..],
            "lower epochs or steps_per_epoch",
        ),
        (
            &["--patch", "256", "--batch", "64"][..],
            "lower patch or batch",
        ),
        (&["--overlap", "33"][..], "0, 25 or 50"),
        (&["--targets", "regions"][..], "warmup=bce"),
        (&["--targets", "lesions"][..], "targets=lesions"),
    ] {
        let mut args = vec!["train", "--image", &image.to_str().unwrap(), "--label"];
        args.push(label.to_str().unwrap());
        args.extend_from_slice(flags);
        let refused = cli(&args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(sentence), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Moving a session to another device (flex to flex here, as the engine does after a lost GPU)
/// carries the weights, the sampler and Adam's moments: it takes the steps the session would
/// have taken.
#[test]
fn a_moved_session_takes_the_steps_it_would_have_taken() {
    let data = volume(8);
    let mut session = TrainingSession::new(TrainingConfig::quick(8), &data, &flex()).unwrap();
    for _ in 0..3 {
        pollster::block_on(session.step()).unwrap();
    }
    let mut moved = pollster::block_on(session.move_to(&ComputeDevice::flex(None))).unwrap();
    for step in 4..=5 {
        let kept = pollster::block_on(session.step()).unwrap().total;
        let there = pollster::block_on(moved.step()).unwrap().total;
        assert!(
            (kept - there).abs() <= 1e-6 * kept.abs(),
            "step {step}: {kept} where it was, {there} after the move"
        );
    }
}

/// Region targets need BraTS's four classes: another label map gets a sentence, not a panic.
#[test]
fn region_targets_on_a_label_map_without_brats_classes_get_a_sentence() {
    let data = synthetic_volume(SyntheticConfig {
        size: 8,
        classes: 3,
        ..SyntheticConfig::default()
    });
    let config = TrainingConfig {
        targets: gdl_lab::volume::Targets::Regions,
        warmup: gdl_lab::loss::WarmupLoss::Bce,
        ..TrainingConfig::quick(8)
    };
    match TrainingSession::new(config, &data, &flex()) {
        Err(error) => assert!(
            error.to_string().contains("need BraTS's four classes"),
            "{error}"
        ),
        Ok(_) => panic!("a {}-class label map trained regions", data.classes),
    }
}
