//! Native tests on burn's flex CPU backend: the numerics the page relies on.
#![cfg(not(target_arch = "wasm32"))]

use burn::prelude::*;
use gdl_lab::backend::ComputeDevice;
use gdl_lab::loss::bce_with_logits;
use gdl_lab::model::Simple3DModelConfig;
use gdl_lab::train::{TrainingConfig, TrainingSession};

fn flex() -> Device {
    ComputeDevice::flex(None).device
}

#[test]
fn simple_model_maps_one_channel_to_class_logits_of_the_same_size() {
    let device = flex();
    let model = Simple3DModelConfig::new().with_num_classes(4).init(&device);
    let output = model.forward(Tensor::zeros([2, 1, 6, 7, 8], &device));
    assert_eq!(output.dims(), [2, 4, 6, 7, 8]);
    // conv 1→8 (k3), 8→16 (k3), 16→4 (k1), each with a bias.
    let expected = (8 * 27 + 8) + (16 * 8 * 27 + 16) + (4 * 16 + 4);
    assert_eq!(burn::module::Module::num_params(&model), expected);
}

#[test]
fn bce_with_logits_matches_the_textbook_formula() {
    let logits = [2.0f32, -1.0, 0.5, -30.0, 40.0, 0.0];
    let target = [1.0f32, 0.0, 0.0, 1.0, 0.0, 1.0];
    let expected = logits
        .iter()
        .zip(target)
        .map(|(&x, y)| {
            let (x, y) = (x as f64, y as f64);
            // max(x, 0) − x·y + log(1 + e^−|x|), PyTorch's stable form.
            x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
        })
        .sum::<f64>()
        / logits.len() as f64;
    let device = flex();
    let loss = bce_with_logits(
        Tensor::<1>::from_floats(logits, &device),
        Tensor::<1>::from_floats(target, &device),
    );
    let value: f32 = loss.into_scalar();
    assert!(
        (value as f64 - expected).abs() <= 1e-5 * expected.max(1.0),
        "{value} vs {expected}"
    );
}

fn run_steps(config: TrainingConfig, steps: usize) -> Vec<f32> {
    let device = flex();
    let mut session = TrainingSession::new(config, &device);
    (0..steps)
        .map(|_| {
            pollster::block_on(session.step())
                .expect("step failed")
                .loss
        })
        .collect()
}

#[test]
fn a_few_steps_reduce_the_loss() {
    let config = TrainingConfig::with_volume_size(16);
    let losses = run_steps(config, 10);
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
    let config = TrainingConfig::with_volume_size(8);
    assert_eq!(run_steps(config, 3), run_steps(config, 3));
    let other = TrainingConfig { seed: 1, ..config };
    assert_ne!(run_steps(config, 3), run_steps(other, 3));
}

#[test]
fn an_exploding_learning_rate_stops_with_a_sentence_not_a_panic() {
    let config = TrainingConfig {
        learning_rate: 1e30,
        ..TrainingConfig::with_volume_size(8)
    };
    let mut session = TrainingSession::new(config, &flex());
    let failure = (0..20)
        .find_map(|_| pollster::block_on(session.step()).err())
        .expect("a learning rate of 1e30 should blow the loss up");
    let sentence = failure.to_string();
    assert!(sentence.contains("Training stopped at step"), "{sentence}");
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
