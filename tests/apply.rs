//! A trained net outlives its run: `gdl-lab predict` applies it to a scan it never saw, from
//! gdl-lab's own weights or their PyTorch-named copy, and `train --init-weights` goes on from
//! them; a scan without one of the net's modalities gets a sentence naming it.
#![cfg(not(target_arch = "wasm32"))]

use gdl_lab::volume::{Limits, read_nifti};

mod common;

use common::gdl_lab as run;

fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON")
}

#[test]
fn a_trained_net_predicts_a_new_case_from_its_own_or_its_pytorch_weights_and_trains_on() {
    let dir = std::env::temp_dir().join(format!("gdl-lab-apply-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let at = |name: &str| dir.join(name).to_string_lossy().to_string();
    let (ok, _, stderr) = run(&[
        "phantom",
        "--modalities",
        "4",
        "--cases",
        "2",
        "--dims",
        "24x24x20",
        "--brats",
        "--out",
        &at("cases"),
    ]);
    assert!(ok, "{stderr}");
    let file = |case: &str, modality: &str| at(&format!("cases/{case}/{case}_{modality}.nii.gz"));
    let images = |case: &str| -> Vec<String> {
        ["t1", "t1ce", "t2", "flair"]
            .iter()
            .map(|m| file(case, m))
            .collect()
    };
    let weights = at("net.safetensors");
    let pytorch = at("pytorch");
    let mut train: Vec<String> = [
        "train", "--model", "simple", "--patch", "16", "--batch", "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for image in images("case_000") {
        train.extend(["--image".into(), image]);
    }
    train.extend(
        [
            "--label",
            &file("case_000", "seg"),
            "--crop",
            "false",
            "--steps-per-epoch",
            "10",
        ]
        .map(String::from),
    );
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = train.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let refs = |args: &[String]| -> Vec<String> { args.to_vec() };
    let trained = refs(&args(&[
        "--steps",
        "30",
        "--export-weights",
        &weights,
        "--export-pytorch",
        &pytorch,
    ]));
    let (ok, stdout, stderr) = run(&trained.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{stderr}");
    let trained_dice = summary(&stdout)["dice"].clone();

    // The other case, its images given in another order than the net's channels.
    let predict = |weights: &str, images: &[String], out: &str| {
        let mut args = vec!["predict", "--weights", weights, "--crop", "false"];
        for image in images {
            args.extend(["--image", image.as_str()]);
        }
        let label = file("case_001", "seg");
        args.extend(["--label", &label, "--out", out]);
        run(&args)
    };
    let mut shuffled = images("case_001");
    shuffled.reverse();
    let (ok, stdout, stderr) = predict(&weights, &shuffled, &at("own.nii.gz"));
    assert!(ok, "{stderr}");
    let own = summary(&stdout);
    assert_eq!(own["model"], "simple");
    assert_eq!(
        own["weights_channels"],
        serde_json::json!(["t1", "t1ce", "t2", "flair"])
    );
    assert_eq!(own["channels"], own["weights_channels"]);
    assert_eq!(own["label_values"], serde_json::json!([0, 1, 2, 4]));
    let dice = own["dice"].as_object().expect("a Dice per label");
    assert_eq!(dice.keys().collect::<Vec<_>>(), ["1", "2", "4"]);
    assert!(
        dice.values()
            .all(|d| (0.0..=1.0).contains(&d.as_f64().unwrap()))
    );
    // Written in the case's grid with the file's label values.
    let written = std::fs::read(at("own.nii.gz")).unwrap();
    let prediction = read_nifti(&written, &Limits::default()).unwrap();
    assert_eq!(prediction.dims, [24, 24, 20]);
    assert!(
        prediction
            .data
            .iter()
            .all(|v| [0.0, 1.0, 2.0, 4.0].contains(v))
    );

    // The PyTorch-named export (no gdl-lab metadata needed) gives the same prediction.
    let exported = std::fs::read_dir(&pytorch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .expect("the PyTorch weights");
    let (ok, stdout, stderr) = predict(
        &exported.to_string_lossy(),
        &shuffled,
        &at("pytorch.nii.gz"),
    );
    assert!(ok, "{stderr}");
    assert_eq!(summary(&stdout)["dice"], own["dice"]);
    assert_eq!(std::fs::read(at("pytorch.nii.gz")).unwrap(), written);

    // A scan without FLAIR: a sentence naming it, and nothing written.
    let (ok, _, stderr) = predict(&weights, &shuffled[1..], &at("three.nii.gz"));
    assert!(!ok);
    assert!(stderr.contains("flair"), "{stderr}");
    assert!(!dir.join("three.nii.gz").exists());

    // Training goes on from the weights: one step at a negligible learning rate predicts the
    // training case as the trained net did; a fresh net does not.
    let go_on = refs(&args(&[
        "--steps",
        "1",
        "--lr",
        "1e-12",
        "--init-weights",
        &weights,
    ]));
    let (ok, stdout, stderr) = run(&go_on.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{stderr}");
    assert!(stderr.contains("Adam starts afresh"), "{stderr}");
    assert_eq!(summary(&stdout)["dice"], trained_dice);
    let fresh = refs(&args(&["--steps", "1", "--lr", "1e-12"]));
    let (ok, stdout, stderr) = run(&fresh.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{stderr}");
    assert_ne!(summary(&stdout)["dice"], trained_dice);
    // Weights for another net: a sentence naming the first tensor that differs.
    let other = refs(&args(&["--steps", "1", "--init-weights", &weights]));
    let mut other = other;
    let model = other.iter().position(|a| a == "simple").unwrap();
    other[model] = "target".into();
    let (ok, _, stderr) = run(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok);
    assert!(stderr.contains("conv1.weight"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The loss columns of a `--report` CSV (every column but the step's milliseconds).
fn without_millis(csv: &str) -> Vec<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let millis = header
        .iter()
        .position(|h| *h == "millis")
        .expect("a millis column");
    lines
        .map(|line| {
            let mut cells: Vec<&str> = line.split(',').collect();
            cells.remove(millis);
            cells.join(",")
        })
        .collect()
}

#[test]
fn a_run_saved_by_the_cli_resumes_as_if_it_had_never_stopped() {
    let dir = std::env::temp_dir().join(format!("gdl-lab-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let at = |name: &str| dir.join(name).to_string_lossy().to_string();
    let (image, label) = (at("t1.nii.gz"), at("seg.nii.gz"));
    let (ok, _, stderr) = run(&[
        "phantom", "--dims", "24x24x20", "--seed", "3", "--image", &image, "--label", &label,
    ]);
    assert!(ok, "{stderr}");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--image",
            &image,
            "--label",
            &label,
            "--model",
            "simple",
            "--patch",
            "16",
            "--batch",
            "1",
            "--steps-per-epoch",
            "5",
            "--crop",
            "false",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (ok, _, stderr) = train(&["--steps", "14", "--report", &at("whole.csv")]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = train(&["--steps", "9", "--save-run", &at("run.gdlrun")]);
    assert!(ok, "{stderr}");
    // The flags' settings are not used on resume: the run's are (another lr here).
    let (ok, stdout, stderr) = train(&[
        "--resume",
        &at("run.gdlrun"),
        "--steps",
        "5",
        "--lr",
        "0.5",
        "--report",
        &at("resumed.csv"),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("Opened the run"), "{stderr}");
    assert_eq!(summary(&stdout)["steps"], 14);
    let whole = without_millis(&std::fs::read_to_string(at("whole.csv")).unwrap());
    let resumed = without_millis(&std::fs::read_to_string(at("resumed.csv")).unwrap());
    assert_eq!(whole.len(), 14);
    assert_eq!(
        resumed, whole,
        "the resumed run's history differs from the uninterrupted one"
    );

    // Another scan: a sentence, exit 2.
    let (other, other_label) = (at("other.nii.gz"), at("other_seg.nii.gz"));
    let (ok, _, stderr) = run(&[
        "phantom",
        "--dims",
        "24x24x20",
        "--seed",
        "4",
        "--image",
        &other,
        "--label",
        &other_label,
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&[
        "train",
        "--image",
        &other,
        "--label",
        &other_label,
        "--resume",
        &at("run.gdlrun"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("another"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
