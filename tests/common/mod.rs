//! Helpers shared by test files (each includes this folder with `mod common;`).
// Each test file uses a part of this module.
#![allow(dead_code)]

/// The word each lab cause's sentence must contain, and no other cause's sentence may (the
/// monitor names each cause and only that one). scripts/page_check.py has the same list.
pub const CAUSE_NAMES: [(gdl_lab::loss::Misuse, &str); 7] = {
    use gdl_lab::loss::Misuse;
    [
        (Misuse::Logits, "logits"),
        (Misuse::LabelMapAsTarget, "label map"),
        (Misuse::BratsLabels, "BraTS"),
        (Misuse::Mask255, "0/255"),
        (Misuse::SmoothNrAboveDr, "smooth_nr"),
        (Misuse::NegativeWeight, "negative weight"),
        (Misuse::NegatedDice, "−Dice"),
    ]
};

/// The causes that keep the value in [0, 1] and are wrong all the same, with the word their
/// sentence must contain (and no other cause's may). scripts/page_check.py has the same list.
pub const IN_RANGE_CAUSE_NAMES: [(gdl_lab::loss::Misuse, &str); 3] = {
    use gdl_lab::loss::Misuse;
    [
        (Misuse::SoftmaxOverRegions, "overlapping"),
        (Misuse::Fp16Sums, "fp16"),
        (Misuse::OneChannel, "one channel"),
    ]
};

/// What one convolution check compares: its output and its three gradients.
pub const CONVOLUTION_PARTS: [&str; 4] = [
    "output",
    "input gradient",
    "weight gradient",
    "bias gradient",
];

/// Largest |a − b| over the largest of 1 and |b|: a tolerance that is relative for large
/// values and absolute for small ones.
pub fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "different sizes");
    let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
    ours.iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Panics unless each part of `ours` is within `1e-4` ([`relative_error`]) of `reference`,
/// naming the part and `what`; returns each part's error.
pub fn assert_convolutions_agree(
    ours: &[Vec<f32>; 4],
    reference: &[Vec<f32>; 4],
    what: &str,
) -> [f32; 4] {
    std::array::from_fn(|index| {
        let part = CONVOLUTION_PARTS[index];
        assert_eq!(
            ours[index].len(),
            reference[index].len(),
            "{what}: {part} size"
        );
        let error = relative_error(&ours[index], &reference[index]);
        assert!(error <= 1e-4, "{what}: {part} off by {error} (relative)");
        error
    })
}

/// Runs the `gdl-lab` binary with `args`: (success, stdout, stderr).
pub fn gdl_lab(args: &[&str]) -> (bool, String, String) {
    gdl_lab_with_env(args, &[])
}

/// [`gdl_lab`] with these environment variables set for it.
pub fn gdl_lab_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the gdl-lab binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}
