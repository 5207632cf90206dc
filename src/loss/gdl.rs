//! The Generalized Dice Loss (Sudre et al. 2017) with MONAI's exact semantics.
//!
//! ```text
//!             2 · Σ_c w_c · I_c + smooth_nr          I_c = Σ_v p_cv · g_cv   (intersection)
//! GDL = 1 − ─────────────────────────────────        P_c = Σ_v p_cv          (prediction sum)
//!           Σ_c w_c · (P_c + G_c) + smooth_dr        G_c = Σ_v g_cv          (target sum)
//!
//! w_c = 1/G_c² (square), 1/G_c (simple) or 1 (uniform)
//! ```
//!
//! The sums run over the voxels of each sample (`batch = false`, then the mean over samples) or
//! over the whole batch (`batch = true`). A class absent from the target has an infinite weight;
//! MONAI sets it to 0 and then to the largest weight of the sample (or of the batch).
//!
//! Why valid GDL lies in [0, 1]: for p, g ∈ [0, 1], `p + g − 2pg = p(1−g) + g(1−p) ≥ 0`, so
//! `2·I_c ≤ P_c + G_c` for every class, and with w ≥ 0 and smooth_nr ≤ smooth_dr the fraction is
//! in [0, 1]. The proof is per voxel and per channel: it never uses Σ_c p = 1, so it holds for
//! sigmoid outputs on overlapping region targets (WT, TC, ET) exactly as for softmax on
//! exclusive classes. A value outside that range always means an input broke one of those assumptions;
//! see [`super::monitor`].

#[cfg(engine)]
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How the class weights w_c follow from the target sums G_c.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightType {
    /// `1/G²`: Sudre et al.'s choice, and MONAI's default.
    #[default]
    Square,
    /// `1/G`.
    Simple,
    /// `1`: an unweighted multi-class Dice over pooled sums.
    Uniform,
}

impl WeightType {
    pub const ALL: [WeightType; 3] = [WeightType::Square, WeightType::Simple, WeightType::Uniform];

    pub fn name(self) -> &'static str {
        match self {
            WeightType::Square => "square",
            WeightType::Simple => "simple",
            WeightType::Uniform => "uniform",
        }
    }
}

/// MONAI `GeneralizedDiceLoss` options.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GdlConfig {
    pub weight_type: WeightType,
    /// Keep channel 0 (background) in the sums.
    pub include_background: bool,
    /// Pool the sums over the batch before the ratio, instead of one ratio per sample.
    pub batch: bool,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    /// Probabilities by a sigmoid on each channel (MONAI's `sigmoid=True`: overlapping region
    /// targets) rather than a softmax over the channels (`softmax=True`: exclusive classes).
    #[serde(default)]
    pub sigmoid: bool,
}

impl Default for GdlConfig {
    fn default() -> Self {
        Self {
            weight_type: WeightType::Square,
            include_background: true,
            batch: false,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            sigmoid: false,
        }
    }
}

#[cfg(engine)]
/// Per-class sums, `[rows, classes]`: one row per sample, or a single row when pooled.
#[derive(Clone, Debug)]
pub struct ClassSums {
    /// I_c = Σ p·g.
    pub intersection: Tensor<2>,
    /// P_c = Σ p.
    pub prediction: Tensor<2>,
    /// G_c = Σ g.
    pub target: Tensor<2>,
}

#[cfg(engine)]
/// The loss and every part of it, for the charts and the lab's anatomy table. All
/// `[rows, classes]` except `loss`.
#[derive(Clone, Debug)]
pub struct GdlParts {
    pub loss: Tensor<1>,
    pub sums: ClassSums,
    /// w_c after MONAI's absent-class rule.
    pub weight: Tensor<2>,
    /// Per-class soft Dice `(2·I + smooth_nr) / (P + G + smooth_dr)`.
    pub dice: Tensor<2>,
    /// What each class adds to the fraction: `2·w_c·I_c / (Σ_c w_c·(P_c+G_c) + smooth_dr)`.
    pub contribution: Tensor<2>,
}

#[cfg(engine)]
/// Sums over the voxels (and over the batch when `pooled`) of `probs`, `target` and their product.
/// Both are `[batch, classes, z, y, x]`.
pub fn class_sums(probs: Tensor<5>, target: Tensor<5>, pooled: bool) -> ClassSums {
    let [batch, classes, z, y, x] = probs.dims();
    let flat = |t: Tensor<5>| t.reshape([batch, classes, z * y * x]);
    let (probs, target) = (flat(probs), flat(target));
    let reduce = |t: Tensor<3>| {
        let per_sample = t.sum_dim(2).reshape([batch, classes]);
        if pooled {
            per_sample.sum_dim(0)
        } else {
            per_sample
        }
    };
    ClassSums {
        intersection: reduce(probs.clone() * target.clone()),
        prediction: reduce(probs),
        target: reduce(target),
    }
}

#[cfg(engine)]
/// w_c from the target sums, with MONAI's rule for absent classes (G = 0 → infinite weight →
/// the row's largest finite weight). Weights carry no gradient, as in MONAI.
pub fn class_weights(target_sum: Tensor<2>, weight_type: WeightType) -> Tensor<2> {
    let target_sum = target_sum.detach();
    if weight_type == WeightType::Uniform {
        return target_sum.ones_like();
    }
    // Division by zero is avoided rather than relied on, so no backend needs IEEE infinities.
    let absent = target_sum.clone().equal_elem(0.0);
    let safe = target_sum.mask_fill(absent.clone(), 1.0);
    let finite = match weight_type {
        WeightType::Square => safe.square().recip(),
        _ => safe.recip(),
    };
    absent_take_row_max(finite, absent)
}

#[cfg(engine)]
/// MONAI's rule for the weights of absent classes (`absent`, where G = 0): they take the
/// largest weight of the other classes of their row.
pub fn absent_take_row_max(weight: Tensor<2>, absent: Tensor<2, Bool>) -> Tensor<2> {
    let [rows, classes] = weight.dims();
    let finite = weight.mask_fill(absent.clone(), 0.0);
    let row_max = finite.clone().max_dim(1).expand([rows, classes]);
    finite.mask_where(absent, row_max)
}

#[cfg(engine)]
/// How [`gdl_from_parts_rounded`] rounds each intermediate: not at all, or (the lab's fp16
/// cause) to another precision.
pub type Rounding = fn(Tensor<2>) -> Tensor<2>;

#[cfg(engine)]
/// The GDL fraction from given sums and weights. Split from [`generalized_dice`] so that the lab
/// can inject a wrong weight and still go through this exact formula.
pub fn gdl_from_parts(sums: ClassSums, weight: Tensor<2>, config: &GdlConfig) -> GdlParts {
    gdl_from_parts_rounded(sums, weight, config, |exact| exact)
}

#[cfg(engine)]
/// [`gdl_from_parts`] with each sum, product and ratio passed through `round` as it is made (the
/// lab's fp16 cause: `super::half`); the same operations in the same order.
pub fn gdl_from_parts_rounded(
    sums: ClassSums,
    weight: Tensor<2>,
    config: &GdlConfig,
    round: Rounding,
) -> GdlParts {
    let [rows, classes] = weight.dims();
    let union = round(sums.prediction.clone() + sums.target.clone());
    let weighted_intersection = round(sums.intersection.clone() * weight.clone());
    let numerator = round(round(weighted_intersection.clone().sum_dim(1)) * 2.0 + config.smooth_nr);
    let denominator =
        round(round(round(union.clone() * weight.clone()).sum_dim(1)) + config.smooth_dr);
    let per_row = round(numerator / denominator.clone()).neg().add_scalar(1.0);
    let dice = round(
        round(sums.intersection.clone() * 2.0 + config.smooth_nr) / round(union + config.smooth_dr),
    );
    let contribution = round(weighted_intersection * 2.0 / denominator.expand([rows, classes]));
    GdlParts {
        loss: per_row.mean(),
        sums,
        weight,
        dice,
        contribution,
    }
}

#[cfg(engine)]
/// MONAI `GeneralizedDiceLoss` on probabilities (softmax already applied) against a one-hot
/// target, both `[batch, classes, z, y, x]`.
pub fn generalized_dice(probs: Tensor<5>, target: Tensor<5>, config: &GdlConfig) -> GdlParts {
    let (probs, target) = drop_background(probs, target, config.include_background);
    let sums = class_sums(probs, target, config.batch);
    let weight = class_weights(sums.target.clone(), config.weight_type);
    gdl_from_parts(sums, weight, config)
}

#[cfg(engine)]
/// Channel 0 removed from both unless `include_background`; a one-channel input keeps its only
/// channel, as MONAI does.
pub fn drop_background(
    probs: Tensor<5>,
    target: Tensor<5>,
    include_background: bool,
) -> (Tensor<5>, Tensor<5>) {
    let channels = probs.dims()[1];
    if include_background || channels == 1 {
        (probs, target)
    } else {
        (
            probs.narrow(1, 1, channels - 1),
            target.narrow(1, 1, channels - 1),
        )
    }
}
