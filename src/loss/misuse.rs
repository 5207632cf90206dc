//! The real causes of a GDL outside [0, 1], injected on purpose for the lab.
//!
//! Each misuse changes an *input* of the same formula ([`super::gdl`]), as the bug does in
//! users' code; the formula itself is never altered (the fp16 cause evaluates it in half
//! precision, [`super::half`]). Three causes keep the value in [0, 1] and are wrong all the
//! same: a softmax over overlapping regions, fp16 sums, one output channel. The causes are the ones reported by users
//! of MONAI, nnU-Net and others. (A poor early prediction is *not* one of them: valid inputs
//! always give a GDL in [0, 1].)

#[cfg(engine)]
use burn::prelude::*;
#[cfg(engine)]
use burn::tensor::activation::{sigmoid, softmax};
use serde::{Deserialize, Serialize};

#[cfg(engine)]
use super::gdl::{
    GdlConfig, GdlParts, class_sums, class_weights, drop_background, gdl_from_parts,
    generalized_dice,
};
#[cfg(engine)]
use super::half::half_precision_gdl;
#[cfg(engine)]
use crate::sample::regions_on_device;
#[cfg(engine)]
use crate::volume::RegionMap;

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
    /// A softmax over BraTS's overlapping regions (WT ⊃ TC ⊃ ET) where each needs its own
    /// sigmoid: a voxel of the enhancing tumour should be 1 in all three channels, a softmax
    /// gives the three 1 in all, so the GDL has a floor above 0.
    SoftmaxOverRegions,
    /// The GDL's sums and weights computed in half precision (fp16, as under mixed precision):
    /// 1/G² underflows to 0 once G > 255, and P + G becomes ∞ past 65 504.
    Fp16Sums,
    /// A net with one output channel through a softmax: p = 1 everywhere, so CE is 0 and the
    /// GDL of the "foreground" a constant with no gradient.
    OneChannel,
}

impl Misuse {
    pub const ALL: [Misuse; 10] = [
        Misuse::Logits,
        Misuse::LabelMapAsTarget,
        Misuse::BratsLabels,
        Misuse::Mask255,
        Misuse::SmoothNrAboveDr,
        Misuse::NegativeWeight,
        Misuse::NegatedDice,
        Misuse::SoftmaxOverRegions,
        Misuse::Fp16Sums,
        Misuse::OneChannel,
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
            Misuse::SoftmaxOverRegions => {
                "only with another cause: alone it stays inside but cannot fall below a floor \
                 above 0, set by the voxels that belong to two or three regions or to none, and \
                 stalls there"
            }
            Misuse::Fp16Sums => {
                "only as NaN, once P + G passes 65 504 (a 64³ patch's background); before that, \
                 with 1/G² weights, every class with more than 255 voxels in the patch weighs 0 \
                 and drops out, so the value reads low and teaches nothing about those classes"
            }
            Misuse::OneChannel => {
                "only with another cause: alone it is 1 − 2G/(N + G), set by the patch, with \
                 no gradient, and CE is 0"
            }
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
            Misuse::SoftmaxOverRegions => "softmax over overlapping regions",
            Misuse::Fp16Sums => "sums in fp16",
            Misuse::OneChannel => "one output channel",
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
    /// True when the channels are BraTS's regions WT, TC and ET (region targets, or the
    /// softmax-over-regions misuse that made them from four classes).
    pub regions: bool,
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
    let mut regions = config.sigmoid;
    let probs = if config.sigmoid {
        sigmoid(logits.clone())
    } else {
        softmax(logits.clone(), 1)
    };
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
        Some(Misuse::SoftmaxOverRegions) => {
            regions |= target.dims()[1] == 4;
            let (logits, target) = as_region_channels(logits, target);
            (softmax(logits, 1), target)
        }
        Some(Misuse::OneChannel) => {
            regions = false;
            let (logits, target) = one_output_channel(logits, target, config.sigmoid);
            (softmax(logits, 1), target)
        }
        _ => (probs, target),
    };
    let parts = match misuse {
        Some(Misuse::NegativeWeight) => {
            let (p, g) = drop_background(probs.clone(), target.clone(), config.include_background);
            let sums = class_sums(p, g, config.batch);
            let weight = class_weights(sums.target.clone(), config.weight_type);
            let signs = rarest_class_flipped(sums.target.clone());
            gdl_from_parts(sums, weight * signs, &config)
        }
        Some(Misuse::Fp16Sums) => half_precision_gdl(probs.clone(), target.clone(), &config),
        _ => generalized_dice(probs.clone(), target.clone(), &config),
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
        regions,
    }
}

#[cfg(engine)]
/// The logits and target as a net trained on BraTS's three regions sees them: unchanged when the
/// target already has three channels (region targets); for BraTS's four classes (background,
/// necrotic core, oedema, enhancing tumour), the regions WT, TC and ET of the one-hot target and
/// the net's three tumour channels as region logits; anything else unchanged.
pub fn as_region_channels(logits: Tensor<5>, target: Tensor<5>) -> (Tensor<5>, Tensor<5>) {
    if target.dims()[1] == 4 {
        let regions = regions_on_device(target, &RegionMap::brats());
        (logits.narrow(1, 1, 3), regions)
    } else {
        (logits, target)
    }
}

#[cfg(engine)]
/// One output channel of `logits` (the last: a "foreground" logit) and the foreground mask as
/// the target: the first channel of region targets (WT), else everything but the background.
pub fn one_output_channel(
    logits: Tensor<5>,
    target: Tensor<5>,
    region_targets: bool,
) -> (Tensor<5>, Tensor<5>) {
    let channels = logits.dims()[1];
    let logit = logits.narrow(1, channels - 1, 1);
    let foreground = if region_targets || target.dims()[1] == 1 {
        target.narrow(1, 0, 1)
    } else {
        target.narrow(1, 0, 1).neg().add_scalar(1.0)
    };
    (logit, foreground)
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
