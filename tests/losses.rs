//! The mixed schedule, the lab's misuses and the invariant monitor (the reference values are in
//! `tests/reference.rs`).
#![cfg(not(target_arch = "wasm32"))]

use burn::prelude::*;
use burn::tensor::Distribution;
use gdl_lab::loss::monitor::{GdlRows, input_statistics};
use gdl_lab::loss::{GdlConfig, GdlInputStats, Misuse, Schedule, WeightType, gdl_pipeline};
use gdl_lab::sample::one_hot;

mod common;
use common::{CAUSE_NAMES, IN_RANGE_CAUSE_NAMES};

#[test]
fn schedules_hand_over_from_warmup_to_gdl() {
    // Warm-up 2 epochs, ramp 4 epochs.
    let at = |schedule: Schedule, epoch: f64| schedule.lambda(epoch, 2.0, 4.0);
    for schedule in Schedule::ALL {
        assert_eq!(at(schedule, 0.0), 0.0, "{schedule:?}");
        assert_eq!(at(schedule, 1.99), 0.0, "{schedule:?}");
        let end = if schedule == Schedule::Constant {
            0.5
        } else {
            1.0
        };
        assert_eq!(at(schedule, 6.0), end, "{schedule:?}");
        assert_eq!(at(schedule, 60.0), end, "{schedule:?}");
        let values: Vec<f64> = (0..=40)
            .map(|i| at(schedule, 2.0 + i as f64 * 0.1))
            .collect();
        assert!(
            values.windows(2).all(|pair| pair[1] >= pair[0]),
            "{schedule:?} rises"
        );
    }
    assert_eq!(at(Schedule::Switch, 2.0), 1.0);
    assert_eq!(at(Schedule::Constant, 2.0), 0.5);
    assert_eq!(at(Schedule::Linear, 3.0), 0.25);
    assert!((at(Schedule::Cosine, 4.0) - 0.5).abs() < 1e-12);
    assert!((at(Schedule::Sigmoid, 4.0) - (-5.0f64 * 0.25).exp()).abs() < 1e-12);
    // No ramp means a switch.
    assert_eq!(Schedule::Linear.lambda(2.0, 2.0, 0.0), 1.0);
}

/// The 4-class label map of the lab's cases: 300 voxels of background, 40 of class 1 (the
/// rarest, and not the last, so that "the rarest" is not confused with "the last"), 100 of
/// class 2 and 72 of class 3, interleaved.
fn labels() -> Vec<u8> {
    let counts = [300usize, 40, 100, 72];
    let mut labels: Vec<u8> = counts
        .iter()
        .enumerate()
        .flat_map(|(class, &n)| std::iter::repeat_n(class as u8, n))
        .collect();
    // A fixed interleaving (a stride coprime to 512), so classes are not in blocks.
    let shuffled: Vec<u8> = (0..512).map(|i| labels[(i * 77) % 512]).collect();
    labels.copy_from_slice(&shuffled);
    labels
}

/// A confident, correct prediction of [`labels`] (the net "has improved").
fn confident_case(device: &Device) -> (Tensor<5>, Tensor<5>) {
    let onehot = Tensor::<5>::from_data(
        TensorData::new(one_hot(&labels(), 4), [1, 4, 8, 8, 8]),
        device,
    );
    let noise = Tensor::<5>::random([1, 4, 8, 8, 8], Distribution::Normal(0.0, 0.5), device);
    (onehot.clone() * 8.0 - 4.0 + noise, onehot)
}

/// Confident on every class but the rarest (class 1), which is still predicted as background:
/// a net half-way through learning.
fn missing_rarest_class(device: &Device) -> (Tensor<5>, Tensor<5>) {
    let (logits, onehot) = confident_case(device);
    let rarest = onehot.clone().narrow(1, 1, 1);
    let mask = Tensor::cat(
        vec![
            rarest.clone().neg(),
            rarest.clone(),
            rarest.zeros_like(),
            rarest.zeros_like(),
        ],
        1,
    );
    // Move class 1's evidence to background: logits − 8·(−1 at class 0, +1 at class 1).
    (logits - mask * 8.0, onehot)
}

fn run(misuse: Option<Misuse>) -> gdl_lab::loss::GdlRun {
    let device = Device::flex();
    device.seed(11);
    let (logits, onehot) = if misuse == Some(Misuse::NegativeWeight) {
        missing_rarest_class(&device)
    } else {
        confident_case(&device)
    };
    gdl_pipeline(logits, onehot, &GdlConfig::default(), misuse)
}

fn stats(misuse: Option<Misuse>) -> GdlInputStats {
    monitor(&run(misuse))
}

/// What the monitor makes of `run`, read back synchronously (as the CPU allows).
fn monitor(run: &gdl_lab::loss::GdlRun) -> GdlInputStats {
    let read = |tensors: Vec<Tensor<1>>| -> Vec<f32> {
        Tensor::cat(tensors, 0).into_data().try_to_vec().unwrap()
    };
    let classes = run.parts.weight.dims()[1];
    let rows = GdlRows::from_values(&read(GdlRows::tensors(&run.parts)), classes);
    GdlInputStats::from_readout(&read(input_statistics(run)), &rows, run)
}

#[test]
fn valid_inputs_give_gdl_in_range_and_no_explanation() {
    let stats = stats(None);
    assert!((0.0..=1.0).contains(&stats.gdl), "{stats:?}");
    assert!(
        stats.gdl < 0.05,
        "a confident correct net scores near 0: {stats:?}"
    );
    assert!(stats.violations().is_empty(), "{:?}", stats.violations());
    assert_eq!(stats.explain(), None);
}

/// Soft labels (label smoothing) are not a misuse: with g ∈ [0, 1], 2·p·g ≤ p + g holds.
#[test]
fn soft_labels_are_valid_and_stay_in_range() {
    let device = Device::flex();
    device.seed(13);
    let (logits, onehot) = confident_case(&device);
    let soft = onehot * 0.9 + 0.025;
    let run = gdl_pipeline(logits, soft, &GdlConfig::default(), None);
    let stats = monitor(&run);
    assert!(stats.in_range(), "{stats:?}");
    assert!(stats.causes().is_empty(), "{:?}", stats.violations());
}

/// Each misuse on a net that has learned (for the negative weight: learned all but the class whose
/// weight is negative, which is when it bites) leaves [0, 1], and the monitor diagnoses that
/// cause, from the inputs' statistics alone, and no other.
#[test]
fn each_misuse_breaks_the_range_and_the_monitor_names_its_cause_and_no_other() {
    for (misuse, name) in CAUSE_NAMES {
        let stats = stats(Some(misuse));
        assert!(
            !stats.in_range(),
            "{misuse:?} left GDL in range: {}",
            stats.gdl
        );
        assert_eq!(stats.causes(), [misuse], "{stats:?}");
        let sentence = stats.explain().expect("an explanation");
        assert!(sentence.contains(name), "{misuse:?}: {sentence}");
        for (other, other_name) in CAUSE_NAMES {
            if other != misuse {
                assert!(
                    !sentence.contains(other_name),
                    "{misuse:?}'s sentence names {other:?} too: {sentence}"
                );
            }
        }
    }
}

/// The negative-weight misuse flips the weight of the class with the smallest G (class 1 here),
/// not the last one.
#[test]
fn the_negative_weight_lands_on_the_rarest_class() {
    let run = run(Some(Misuse::NegativeWeight));
    let weights: Vec<f32> = run.parts.weight.into_data().try_to_vec().unwrap();
    let targets: Vec<f32> = run.parts.sums.target.into_data().try_to_vec().unwrap();
    assert_eq!(targets, [300.0, 40.0, 100.0, 72.0]);
    let negative: Vec<usize> = (0..4).filter(|&c| weights[c] < 0.0).collect();
    assert_eq!(negative, [1], "weights {weights:?}");
}

#[test]
fn the_label_map_misuse_goes_negative_as_the_prediction_improves() {
    let device = Device::flex();
    device.seed(12);
    let (confident, onehot) = confident_case(&device);
    let gdl = |logits: Tensor<5>| {
        gdl_pipeline(
            logits,
            onehot.clone(),
            &GdlConfig::default(),
            Some(Misuse::LabelMapAsTarget),
        )
        .value
        .into_scalar::<f32>()
    };
    let untrained = gdl(Tensor::zeros([1, 4, 8, 8, 8], &device));
    let trained = gdl(confident);
    assert!(
        untrained >= 0.0,
        "an untrained net is still in range: {untrained}"
    );
    assert!(trained < 0.0, "a confident net goes negative: {trained}");
}

/// Saturated logits (a net that is sure of itself, or has blown up) keep every loss and gradient
/// finite, and BCE matches PyTorch's stable form `max(x,0) − x·y + log(1 + e^−|x|)`.
#[test]
fn saturated_logits_give_finite_losses_and_gradients() {
    use gdl_lab::loss::{bce_with_logits, cross_entropy};
    let device = Device::flex().autodiff();
    let labels: Vec<u8> = (0..8).map(|i| (i % 2) as u8).collect();
    let onehot = Tensor::<5>::from_data(
        TensorData::new(one_hot(&labels, 2), [1, 2, 2, 2, 2]),
        &device,
    );
    // Right with ±200 on half the voxels, wrong with ±200 on the others.
    let signs: Vec<f32> = (0..16)
        .map(|i| if (i / 3) % 2 == 0 { 200.0 } else { -200.0 })
        .collect();
    let logits = Tensor::<5>::from_data(TensorData::new(signs.clone(), [1, 2, 2, 2, 2]), &device)
        .require_grad();
    let targets = one_hot(&labels, 2);
    let expected_bce = signs
        .iter()
        .zip(&targets)
        .map(|(&x, &y)| {
            let (x, y) = (x as f64, y as f64);
            x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
        })
        .sum::<f64>()
        / 16.0;
    let bce = bce_with_logits(logits.clone(), onehot.clone());
    let bce_value = bce.clone().into_scalar::<f32>() as f64;
    assert!(
        (bce_value - expected_bce).abs() <= 1e-4 * expected_bce.max(1.0),
        "{bce_value} vs {expected_bce}"
    );
    for (name, loss) in [
        ("BCE", bce),
        ("CE", cross_entropy(logits.clone(), onehot.clone())),
        (
            "GDL",
            gdl_pipeline(logits.clone(), onehot.clone(), &GdlConfig::default(), None).value,
        ),
    ] {
        let value = loss.clone().into_scalar::<f32>();
        assert!(value.is_finite(), "{name} = {value}");
        let gradient: Vec<f32> = logits
            .grad(&loss.backward())
            .expect("a gradient")
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(
            gradient.iter().all(|g| g.is_finite()),
            "{name}: {gradient:?}"
        );
    }
}

/// The causes that keep the value in [0, 1] (a softmax over overlapping regions, fp16 sums, one
/// output channel) are named by the monitor all the same, each by its own sentence, which names
/// no other cause.
#[test]
fn the_in_range_causes_are_named_each_by_its_own_sentence() {
    let every_name: Vec<(Misuse, &str)> = CAUSE_NAMES
        .into_iter()
        .chain(IN_RANGE_CAUSE_NAMES)
        .collect();
    for (misuse, name) in IN_RANGE_CAUSE_NAMES {
        let stats = stats(Some(misuse));
        assert!(stats.in_range(), "{misuse:?}: {stats:?}");
        assert_eq!(stats.causes(), [misuse], "{stats:?}");
        let sentence = stats.violations().remove(0);
        assert!(sentence.contains(name), "{misuse:?}: {sentence}");
        for (other, other_name) in &every_name {
            if *other != misuse {
                assert!(
                    !sentence.contains(other_name),
                    "{misuse:?}'s sentence names {other:?} too: {sentence}"
                );
            }
        }
    }
    // And the out-of-range causes' sentences name none of these.
    for (misuse, _) in CAUSE_NAMES {
        let sentence = stats(Some(misuse)).explain().unwrap_or_default();
        for (other, other_name) in IN_RANGE_CAUSE_NAMES {
            assert!(
                !sentence.contains(other_name),
                "{misuse:?}'s sentence names {other:?}: {sentence}"
            );
        }
    }
}

/// A softmax over BraTS's overlapping regions has a floor above 0: a region net that is right
/// everywhere scores ~0 with a sigmoid per channel, and well above 0 with a softmax over them
/// (an enhancing-tumour voxel cannot be 1 in three channels that sum to 1).
#[test]
fn a_softmax_over_overlapping_regions_cannot_reach_0() {
    let device = Device::flex();
    let labels = labels();
    let regions = gdl_lab::volume::RegionMap::brats().masks(&labels);
    let target = Tensor::<5>::from_data(TensorData::new(regions, [1, 3, 8, 8, 8]), &device);
    let logits = target.clone() * 16.0 - 8.0;
    let sigmoid = GdlConfig {
        sigmoid: true,
        ..GdlConfig::default()
    };
    let gdl = |misuse| {
        gdl_pipeline(logits.clone(), target.clone(), &sigmoid, misuse)
            .value
            .into_scalar::<f32>()
    };
    let (right, softmax) = (gdl(None), gdl(Some(Misuse::SoftmaxOverRegions)));
    assert!(
        right < 1e-3,
        "a right region net scores {right} with sigmoids"
    );
    assert!(
        softmax > 0.2,
        "the same logits score {softmax} through a softmax"
    );
}

/// fp16's arithmetic in the GDL: on 8³ patches the background (G = 300) has G² = 90 000 > 65 504,
/// so its 1/G² weight is 0 in half precision; on a 64³ patch P + G passes 65 504 and the value is
/// NaN, which a NaN stop catches.
#[test]
fn half_precision_drops_large_classes_and_overflows_on_a_64_cube() {
    let run = run(Some(Misuse::Fp16Sums));
    let weights: Vec<f32> = run.parts.weight.into_data().try_to_vec().unwrap();
    assert_eq!(weights[0], 0.0, "{weights:?}");
    assert!(weights[1..].iter().all(|&w| w > 0.0), "{weights:?}");
    let device = Device::flex();
    let shape = [1, 2, 64, 64, 64];
    let target = Tensor::<5>::cat(
        vec![
            Tensor::ones([1, 1, 64, 64, 64], &device),
            Tensor::zeros([1, 1, 64, 64, 64], &device),
        ],
        1,
    );
    let logits = target.clone() * 8.0;
    assert_eq!(logits.dims(), shape);
    let uniform = GdlConfig {
        weight_type: WeightType::Uniform,
        ..GdlConfig::default()
    };
    let value = gdl_pipeline(logits, target, &uniform, Some(Misuse::Fp16Sums))
        .value
        .into_scalar::<f32>();
    assert!(
        value.is_nan(),
        "P + G = 2·64³ overflowed fp16, yet the GDL is {value}"
    );
}
