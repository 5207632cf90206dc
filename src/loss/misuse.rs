//! The real causes of a GDL outside [0, 1], injected on purpose for the lab.
//!
//! Each misuse changes an *input* of the same formula ([`super::gdl`]), as the bug does in
//! users' code; the formula itself is never altered. The causes are the ones reported by users
//! of MONAI, nnU-Net and others. (A poor early prediction is *not* one of them: valid inputs
//! always give a GDL in [0, 1].)

#[cfg(engine)]
use burn::prelude::*;
#[cfg(engine)]
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

#[cfg(engine)]
use super::gdl::{
    GdlConfig, GdlParts, class_sums, class_weights, drop_background, gdl_from_parts,
    generalized_dice,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misuse {
    /// Raw logits fed where probabilities belong (softmax forgotten).
    Logits,
    /// The integer label map (0..C−1) as a one-channel target instead of one-hot masks.
    LabelMapAsTarget,
    /// BraTS labels {0, 1, 2, 4} used as the target without remapping.
    BratsLabels,
    /// A binary mask stored as 0/255 and never divided by 255.
    Mask255,
    /// smooth_nr = 1 > smooth_dr = 1e-5: with 1/G² weights the smoothing dominates.
    SmoothNrAboveDr,
    /// The weight of the rarest class present (the smallest G) flipped to negative.
    NegativeWeight,
    /// nnU-Net's convention: the loss is −Dice, in [−1, 0] by design.
    NegatedDice,
}

impl Misuse {
    pub const ALL: [Misuse; 7] = [
        Misuse::Logits,
        Misuse::LabelMapAsTarget,
        Misuse::BratsLabels,
        Misuse::Mask255,
        Misuse::SmoothNrAboveDr,
        Misuse::NegativeWeight,
        Misuse::NegatedDice,
    ];

    /// When this cause takes the GDL out of [0, 1], measured on the demo scan (the lab's
    /// probe at step 0 and during training; see the README's lab table).
    pub fn when_it_leaves(self) -> &'static str {
        match self {
            Misuse::Logits => {
                "whenever a logit strays outside [0, 1]; an untrained net's small logits may \
                 keep it inside or just above 1"
            }
            Misuse::LabelMapAsTarget | Misuse::BratsLabels => {
                "only once the net predicts the labelled voxels confidently: a trained net"
            }
            Misuse::Mask255 => {
                "at once, even untrained: for a 4-class net at step 0, once the foreground \
                 passes about 0.6 % of the patch"
            }
            Misuse::SmoothNrAboveDr => {
                "when the weighted miss Σw·(P + G − 2·I) is below smooth_nr − smooth_dr: with \
                 1/G² weights that sum is small unless a class is tiny, so often at once; with \
                 1/G only for a near-perfect net; practically never with uniform weights"
            }
            Misuse::NegativeWeight => {
                "when the flipped class's share of the sums outweighs the others': it comes and \
                 goes as the rarest class is learned, already at step 0 on the demo"
            }
            Misuse::NegatedDice => "at once: −Dice is negative whenever the Dice is above 0",
        }
    }

    /// A short label for toggles and legends.
    pub fn label(self) -> &'static str {
        match self {
            Misuse::Logits => "logits instead of probabilities",
            Misuse::LabelMapAsTarget => "raw label map as target",
            Misuse::BratsLabels => "BraTS labels {0,1,2,4} not remapped",
            Misuse::Mask255 => "0/255 mask",
            Misuse::SmoothNrAboveDr => "smooth_nr > smooth_dr",
            Misuse::NegativeWeight => "a negative class weight",
            Misuse::NegatedDice => "nnU-Net-style −Dice",
        }
    }
}

#[cfg(engine)]
/// The GDL as a (possibly buggy) pipeline computes it, with the inputs that reached the formula
/// so that the invariant monitor can inspect them.
#[derive(Clone, Debug)]
pub struct GdlRun {
    /// What the pipeline reports as its loss.
    pub value: Tensor<1>,
    pub parts: GdlParts,
    /// What reached the formula as p and g, `[batch, channels, z, y, x]`.
    pub probs: Tensor<5>,
    pub target: Tensor<5>,
    /// The options in effect (a misuse may change the smoothing).
    pub config: GdlConfig,
}

#[cfg(engine)]
/// GDL of `logits` against the one-hot `target` as the correct pipeline computes it
/// (`misuse = None`), or with one real cause of trouble injected.
pub fn gdl_pipeline(
    logits: Tensor<5>,
    target: Tensor<5>,
    config: &GdlConfig,
    misuse: Option<Misuse>,
) -> GdlRun {
    let classes = logits.dims()[1];
    let mut config = *config;
    let probs = softmax(logits.clone(), 1);
    // One-channel "anything but background" prediction against a one-channel target whose voxel
    // values are `codes[label]`.
    let one_channel = |codes: Vec<f32>| {
        let foreground = probs.clone().narrow(1, 0, 1).neg().add_scalar(1.0);
        let device = target.device();
        let codes = Tensor::<1>::from_data(TensorData::new(codes, [classes]), &device)
            .reshape([1, classes, 1, 1, 1]);
        (foreground, (target.clone() * codes).sum_dim(1))
    };
    let (probs, target) = match misuse {
        Some(Misuse::Logits) => (logits, target),
        Some(Misuse::LabelMapAsTarget) => one_channel((0..classes).map(|c| c as f32).collect()),
        Some(Misuse::BratsLabels) => one_channel(
            (0..classes)
                .map(|c| if c >= 3 { c as f32 + 1.0 } else { c as f32 })
                .collect(),
        ),
        Some(Misuse::Mask255) => one_channel(
            (0..classes)
                .map(|c| if c == 0 { 0.0 } else { 255.0 })
                .collect(),
        ),
        Some(Misuse::SmoothNrAboveDr) => {
            config.smooth_nr = 1.0;
            config.smooth_dr = 1e-5;
            (probs, target)
        }
        _ => (probs, target),
    };
    let parts = if misuse == Some(Misuse::NegativeWeight) {
        let (p, g) = drop_background(probs.clone(), target.clone(), config.include_background);
        let sums = class_sums(p, g, config.batch);
        let weight = class_weights(sums.target.clone(), config.weight_type);
        let signs = rarest_class_flipped(sums.target.clone());
        gdl_from_parts(sums, weight * signs, &config)
    } else {
        generalized_dice(probs.clone(), target.clone(), &config)
    };
    let value = if misuse == Some(Misuse::NegatedDice) {
        parts.loss.clone().sub_scalar(1.0)
    } else {
        parts.loss.clone()
    };
    GdlRun {
        value,
        parts,
        probs,
        target,
        config,
    }
}

#[cfg(engine)]
/// `[rows, classes]` signs: −1 for each row's class with the smallest non-zero G (the rarest
/// class present, where a sign error does the most harm; ties flip together), +1 elsewhere.
fn rarest_class_flipped(target_sums: Tensor<2>) -> Tensor<2> {
    let [rows, classes] = target_sums.dims();
    // Absent classes (G = 0) are not candidates: their weight is a stand-in.
    let present = target_sums
        .clone()
        .mask_fill(target_sums.equal_elem(0.0), f32::MAX);
    let smallest = present.clone().min_dim(1).expand([rows, classes]);
    present
        .equal(smallest)
        .float()
        .mul_scalar(-2.0)
        .add_scalar(1.0)
}
