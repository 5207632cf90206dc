//! Every loss, gradient and the clipping against values computed by PyTorch and MONAI.
//!
//! Reads every `case_*.json` in `$GDL_LAB_REFERENCE_DIR` (default `../shared/reference/losses`,
//! or the copy in `tests/data/reference-losses` where that is missing; the format is in its
//! README). Run: `cargo test --release --test reference`.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use gdl_lab::loss::{
    GdlConfig, Misuse, WeightType, bce_with_logits, cross_entropy, gdl_pipeline, seed_soft_dice,
    soft_dice,
};
use gdl_lab::sample::one_hot;
use gdl_lab::train::clip_global_norm;
use serde_json::Value;

/// A loss value: `|ours − ref| ≤ 1e-4 · max(1, |ref|)`, from the reference README.
fn close(ours: f64, reference: f64) -> bool {
    (ours - reference).abs() <= 1e-4 * reference.abs().max(1.0)
}

/// A whole tensor (a gradient): every element within `1e-4 · max|ref| + 1e-7`. The README's
/// per-element `max(1, |ref|)` would be an absolute 1e-4 here, since no reference gradient
/// exceeds ~0.014: a 1 % scale error, or a zero gradient, would pass it.
fn assert_tensor_close(what: &str, ours: &[f32], reference: &[f32]) {
    assert_eq!(
        ours.len(),
        reference.len(),
        "{what}: {} elements, the reference has {}",
        ours.len(),
        reference.len()
    );
    let largest = reference
        .iter()
        .fold(0.0f64, |m, &r| m.max((r as f64).abs()));
    let tolerance = 1e-4 * largest + 1e-7;
    for (index, (&ours, &reference)) in ours.iter().zip(reference).enumerate() {
        let error = (ours as f64 - reference as f64).abs();
        assert!(
            error <= tolerance,
            "{what}[{index}] = {ours}, PyTorch/MONAI say {reference} \
             (|error| {error:.3e} > {tolerance:.3e} = 1e-4·max|ref| + 1e-7)"
        );
    }
}

/// `$GDL_LAB_REFERENCE_DIR`; else the shared set beside the clone; else, in a clone without it,
/// the copy kept in `tests/data/reference-losses` (the same files).
fn reference_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GDL_LAB_REFERENCE_DIR") {
        return PathBuf::from(dir);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/reference/losses");
    if shared.is_dir() {
        shared
    } else {
        root.join("tests/data/reference-losses")
    }
}

fn cases() -> Vec<(String, Value)> {
    cases_in(&reference_dir())
}

/// Every `case_*.json` in `dir`, sorted by name; fails on none (a check of nothing).
fn cases_in(dir: &std::path::Path) -> Vec<(String, Value)> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| {
        panic!(
            "cannot read the reference directory {}: {error}",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("case_") && name.ends_with(".json")
        })
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no case_*.json in {}; the reference test checks nothing without cases",
        dir.display()
    );
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable case");
            let case = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path.display().to_string(), case)
        })
        .collect()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// A case's logits (requiring gradients) and its target (the one-hot of its labels, or their
/// regions), both `[B, C, D, H, W]`.
struct Inputs {
    logits: Tensor<5>,
    target: Tensor<5>,
}

fn inputs(case: &Value, device: &Device) -> Inputs {
    let classes = shape_of(case)[1];
    inputs_with(case, device, |sample| one_hot(sample, classes))
}

fn shape_of(case: &Value) -> [usize; 5] {
    let shape: Vec<usize> = case["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|v| v.as_u64().expect("a dimension") as usize)
        .collect();
    shape.try_into().expect("shape has five entries")
}

/// A case's logits (requiring gradients) and, as `target`, the planes `target_of` makes
/// from each sample's labels (as many planes as the logits have channels).
fn inputs_with(case: &Value, device: &Device, target_of: impl Fn(&[u8]) -> Vec<f32>) -> Inputs {
    let shape = shape_of(case);
    let [batch, channels, d, h, w] = shape;
    let labels: Vec<u8> = case["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|v| u8::try_from(v.as_u64().expect("an integer label")).expect("label < 256"))
        .collect();
    let voxels = d * h * w;
    assert_eq!(labels.len(), batch * voxels, "labels match the shape");
    let target: Vec<f32> = labels.chunks(voxels).flat_map(&target_of).collect();
    let logits = floats(&case["logits"]);
    assert_eq!(
        logits.len(),
        batch * channels * voxels,
        "logits match the shape"
    );
    assert_eq!(target.len(), logits.len(), "the targets match the logits");
    Inputs {
        logits: Tensor::from_data(TensorData::new(logits, shape), device).require_grad(),
        target: Tensor::from_data(TensorData::new(target, shape), device),
    }
}

/// The loss named `name` (see the reference README) computed by gdl-lab.
fn loss_by_name(name: &str, inputs: &Inputs) -> Tensor<1> {
    let logits = inputs.logits.clone();
    let onehot = inputs.target.clone();
    let probs = || softmax(logits.clone(), 1);
    let square = GdlConfig::default();
    match name {
        "bce_with_logits_onehot" => bce_with_logits(logits.clone(), onehot),
        "cross_entropy" => cross_entropy(logits.clone(), onehot),
        "seed_soft_dice" => seed_soft_dice(probs(), onehot),
        "dice_mean" => soft_dice(probs(), onehot, 1e-5, 1e-5),
        "misuse_gdl_on_logits" => {
            gdl_pipeline(logits.clone(), onehot, &square, Some(Misuse::Logits)).value
        }
        "misuse_gdl_label_map_as_target" => {
            gdl_pipeline(
                logits.clone(),
                onehot,
                &square,
                Some(Misuse::LabelMapAsTarget),
            )
            .value
        }
        _ => {
            let config = gdl_config_from_name(name)
                .unwrap_or_else(|| panic!("the reference names a loss gdl-lab lacks: {name}"));
            gdl_pipeline(logits.clone(), onehot, &config, None).value
        }
    }
}

/// `gdl_{square|simple|uniform}_bg{0|1}_batch{0|1}` → the options it names.
fn gdl_config_from_name(name: &str) -> Option<GdlConfig> {
    let parts: Vec<&str> = name.split('_').collect();
    let [gdl, weight, background, batch] = parts.as_slice() else {
        return None;
    };
    if *gdl != "gdl" {
        return None;
    }
    let weight_type = *WeightType::ALL.iter().find(|w| w.name() == *weight)?;
    let flag = |text: &str, prefix: &str| match text.strip_prefix(prefix)? {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    };
    Some(GdlConfig {
        weight_type,
        include_background: flag(background, "bg")?,
        batch: flag(batch, "batch")?,
        ..GdlConfig::default()
    })
}

fn device() -> Device {
    Device::flex().autodiff()
}

#[test]
fn every_reference_loss_value_matches() {
    let device = device();
    let mut checked = 0;
    for (path, case) in cases() {
        let inputs = inputs(&case, &device);
        let expected = case["expected"].as_object().expect("expected values");
        assert!(!expected.is_empty(), "{path}: no expected values");
        for (name, reference) in expected {
            let reference = reference.as_f64().expect("a number");
            let ours = loss_by_name(name, &inputs).into_scalar::<f32>() as f64;
            assert!(
                close(ours, reference),
                "{path}: {name} = {ours}, PyTorch/MONAI say {reference}"
            );
            checked += 1;
        }
    }
    println!("{checked} loss values match");
}

#[test]
fn every_reference_gradient_matches() {
    let device = device();
    for (path, case) in cases() {
        let grads = case["grad"].as_object().expect("gradients");
        assert!(!grads.is_empty(), "{path}: no gradients");
        for (name, reference) in grads {
            let inputs = inputs(&case, &device);
            let loss = loss_by_name(name, &inputs);
            let gradients = loss.backward();
            let ours: Vec<f32> = inputs
                .logits
                .grad(&gradients)
                .unwrap_or_else(|| panic!("{path}: {name} has no gradient"))
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 gradient");
            assert_tensor_close(
                &format!("{path}: d {name} / d logits"),
                &ours,
                &floats(reference),
            );
        }
    }
}

/// Two parameters whose gradients are set to given values: loss = Σ a·g_a + Σ b·g_b.
#[derive(Module, Debug)]
struct TwoParameters {
    a: Param<Tensor<1>>,
    b: Param<Tensor<1>>,
}

#[test]
fn global_norm_clipping_matches_pytorch() {
    let device = device();
    for (path, case) in cases() {
        let clip = &case["clip"];
        let given: Vec<Vec<f32>> = clip["grads"]
            .as_array()
            .expect("clip.grads")
            .iter()
            .map(floats)
            .collect();
        let expected: Vec<Vec<f32>> = clip["clipped"]
            .as_array()
            .expect("clip.clipped")
            .iter()
            .map(floats)
            .collect();
        let [given_a, given_b] = given.as_slice() else {
            panic!("{path}: clip.grads holds {} tensors, not 2", given.len());
        };
        let zeros = |n: usize| Param::from_tensor(Tensor::<1>::zeros([n], &device));
        let module = TwoParameters {
            a: zeros(given_a.len()),
            b: zeros(given_b.len()),
        };
        let as_tensor = |values: &Vec<f32>| Tensor::<1>::from_floats(values.as_slice(), &device);
        let loss = (module.a.val() * as_tensor(given_a)).sum()
            + (module.b.val() * as_tensor(given_b)).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &module);
        let max_norm = clip["max_norm"].as_f64().expect("max_norm");
        let norms = clip_global_norm(&module, &mut grads, Some(max_norm)).expect("two gradients");

        let before = norms.before.into_scalar::<f32>() as f64;
        let total = clip["total_norm"].as_f64().expect("total_norm");
        assert!(
            close(before, total),
            "{path}: norm {before}, PyTorch says {total}"
        );
        let after = norms.after.into_scalar::<f32>() as f64;
        assert!(
            close(after, total.min(max_norm)),
            "{path}: norm after clipping {after}, expected {}",
            total.min(max_norm)
        );
        assert_eq!(expected.len(), 2, "{path}: clip.clipped holds two tensors");
        for ((id, expected), name) in [module.a.id, module.b.id]
            .into_iter()
            .zip(&expected)
            .zip(["a", "b"])
        {
            let ours: Vec<f32> = grads
                .get::<1>(id)
                .expect("a clipped gradient")
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            assert_tensor_close(&format!("{path}: clipped gradient {name}"), &ours, expected);
        }
    }
}

/// `tests/data/reference-regions`: BraTS's regions (WT, TC, ET) of class labels 0–3, three
/// region logits each through a sigmoid, as `scripts/reference_cases.py --regions` writes them
/// with MONAI's `GeneralizedDiceLoss(sigmoid=True)`.
fn region_cases() -> Vec<(String, Value)> {
    cases_in(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference-regions"))
}

/// The region loss `name` of a case: `bce_with_logits_regions` or
/// `gdl_sigmoid_{square|simple|uniform}_batch{0|1}` (MONAI's sigmoid GDL, background included).
fn region_loss(name: &str, case: &Value, device: &Device) -> (Tensor<5>, Tensor<1>) {
    let inputs = inputs_with(case, device, |sample| {
        gdl_lab::volume::RegionMap::brats().masks(sample)
    });
    let (logits, target) = (inputs.logits, inputs.target);
    let loss = if name == "bce_with_logits_regions" {
        bce_with_logits(logits.clone(), target)
    } else {
        let rest = name
            .strip_prefix("gdl_sigmoid_")
            .unwrap_or_else(|| panic!("an unknown region loss: {name}"));
        let (weight, batch) = rest.split_once("_batch").expect("…_batch0 or …_batch1");
        let config = GdlConfig {
            weight_type: *WeightType::ALL
                .iter()
                .find(|w| w.name() == weight)
                .expect("a weight type"),
            batch: batch == "1",
            sigmoid: true,
            ..GdlConfig::default()
        };
        gdl_pipeline(logits.clone(), target, &config, None).value
    };
    (logits, loss)
}

#[test]
fn region_losses_and_gradients_match_monai_with_sigmoid_outputs() {
    let device = device();
    let mut checked = 0;
    for (path, case) in region_cases() {
        let expected = case["expected"].as_object().expect("expected values");
        for (name, reference) in expected {
            let (logits, loss) = region_loss(name, &case, &device);
            let ours = loss.clone().into_scalar::<f32>() as f64;
            let reference = reference.as_f64().expect("a number");
            assert!(
                close(ours, reference),
                "{path}: {name} = {ours}, MONAI says {reference}"
            );
            let gradients = loss.backward();
            let grad: Vec<f32> = logits
                .grad(&gradients)
                .expect("a gradient")
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            assert_tensor_close(
                &format!("{path}: d {name} / d logits"),
                &grad,
                &floats(&case["grad"][name]),
            );
            checked += 1;
        }
    }
    assert!(checked >= 21, "only {checked} region losses checked");
}
