//! The invariant monitor: checks the assumptions that keep GDL in [0, 1] and, when the value
//! leaves that range, names the broken one in a sentence.
//!
//! The assumptions (see [`super::gdl`]): p ∈ [0, 1], g ∈ [0, 1] (a mask: one-hot, or soft
//! labels, since 2·p·g ≤ p + g holds for both), w ≥ 0 and smooth_nr ≤ smooth_dr. The statistics are tensors, read back together with the
//! step's other scalars, so checking costs no extra synchronisation.

#[cfg(engine)]
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(engine)]
use super::gdl::GdlParts;
#[cfg(engine)]
use super::maxima::{MAXIMA, Maxima, volume_maxima};
#[cfg(engine)]
use super::misuse::GdlRun;
use super::misuse::Misuse;

/// How many scalars [`input_statistics`] returns: the GDL, the [`MAXIMA`] of p and g, then those
/// of their sums over the channels at each voxel.
#[cfg(engine)]
pub const STATISTICS: usize = 1 + 2 * MAXIMA;

/// What the monitor looked at, read back from the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GdlInputStats {
    pub gdl: f32,
    pub p_min: f32,
    pub p_max: f32,
    pub g_min: f32,
    pub g_max: f32,
    pub w_min: f32,
    /// max |g − round(g)|: 0 when every target value is an integer, as in a label map.
    pub g_fraction: f32,
    /// g_max − the smallest non-zero g (at least 0): 0 when the target holds only 0 and its
    /// maximum, as a mask does.
    pub g_not_two_valued: f32,
    /// 1 when some target value is 3, else 0 (BraTS 2021 labels skip 3).
    pub g_has_3: f32,
    /// 1 when some target value is 4, else 0.
    pub g_has_4: f32,
    /// The smallest (over samples) weighted miss `Σ_c w_c·(P_c + G_c − 2·I_c)`: the fraction
    /// exceeds 1, and the GDL goes negative, exactly when `smooth_nr − smooth_dr` is larger.
    pub weighted_miss: f32,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    /// Channels of p and g (1 for a one-channel prediction).
    #[serde(default)]
    pub channels: u32,
    /// The largest Σ_c g at a voxel: 1 for one-hot classes, 3 for a voxel of BraTS's enhancing
    /// tumour in the three overlapping regions.
    #[serde(default)]
    pub g_channel_sum_max: f32,
    /// The smallest Σ_c g at a voxel: 1 for one-hot classes, 0 for a voxel outside every region.
    #[serde(default)]
    pub g_channel_sum_min: f32,
    /// The largest |Σ_c p − 1| at a voxel: ~0 when a softmax made p.
    #[serde(default)]
    pub p_channel_sum_gap: f32,
    /// The number of (sample, class) pairs with G > 0 but w = 0: a weight that underflowed.
    #[serde(default)]
    pub present_zero_weights: u32,
    /// 1 when a sum I, P or G is infinite (it overflowed), else 0.
    #[serde(default)]
    pub sums_infinite: f32,
    /// 1 when every sum I, P, G and weight w is a half-precision (fp16) value and some are not
    /// whole numbers: the loss was computed in fp16 (f32 sums of probabilities almost never
    /// are), else 0.
    #[serde(default)]
    pub sums_in_half: f32,
}

#[cfg(engine)]
/// `[gdl]` and the [`MAXIMA`] of the run's prediction and target (`loss::maxima`: one pass
/// over both volumes), to be read back with everything else (in one transfer:
/// `train/session/readout.rs`). What follows from the per-class sums is reduced on the CPU
/// ([`GdlRows`]).
pub fn input_statistics(run: &GdlRun) -> Vec<Tensor<1>> {
    vec![
        run.value.clone(),
        volume_maxima(run.probs.clone(), run.target.clone()),
        volume_maxima(run.probs.clone().sum_dim(1), run.target.clone().sum_dim(1)),
    ]
}

/// The GDL's parts `[rows, classes]` (a row per sample, or one row when the batch is pooled)
/// on the CPU. They are read back as they are and reduced here: a few numbers per class, where
/// a kernel launch each (means and sums over the samples, the smallest weight, the weighted
/// miss) cost more than the arithmetic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GdlRows {
    pub classes: usize,
    /// Row-major `[rows, classes]` each.
    pub intersection: Vec<f32>,
    pub prediction: Vec<f32>,
    pub target: Vec<f32>,
    pub weight: Vec<f32>,
    pub dice: Vec<f32>,
    pub contribution: Vec<f32>,
}

impl GdlRows {
    /// How many tensors [`GdlRows::tensors`] returns.
    pub const PARTS: usize = 6;

    #[cfg(engine)]
    /// The parts to read back, flattened, in the order [`GdlRows::from_values`] takes them.
    pub fn tensors(parts: &GdlParts) -> Vec<Tensor<1>> {
        [
            &parts.sums.intersection,
            &parts.sums.prediction,
            &parts.sums.target,
            &parts.weight,
            &parts.dice,
            &parts.contribution,
        ]
        .map(|part| part.clone().reshape([-1]))
        .to_vec()
    }

    /// The values of [`GdlRows::tensors`], one after the other, for `classes` channels.
    pub fn from_values(values: &[f32], classes: usize) -> Self {
        let part = values.len() / Self::PARTS;
        let take = |index: usize| values[index * part..(index + 1) * part].to_vec();
        Self {
            classes,
            intersection: take(0),
            prediction: take(1),
            target: take(2),
            weight: take(3),
            dice: take(4),
            contribution: take(5),
        }
    }

    /// The `index`th part in [`GdlRows::tensors`]' order.
    pub fn part(&self, index: usize) -> &[f32] {
        [
            &self.intersection,
            &self.prediction,
            &self.target,
            &self.weight,
            &self.dice,
            &self.contribution,
        ][index]
    }

    fn rows(part: &[f32], classes: usize) -> impl Iterator<Item = &[f32]> {
        part.chunks(classes.max(1))
    }

    /// Each class's sum over the rows.
    pub fn sum_over_rows(&self, part: &[f32]) -> Vec<f32> {
        (0..self.classes)
            .map(|class| {
                Self::rows(part, self.classes)
                    .map(|row| row[class] as f64)
                    .sum::<f64>() as f32
            })
            .collect()
    }

    /// Each class's mean over the rows.
    pub fn mean_over_rows(&self, part: &[f32]) -> Vec<f32> {
        let rows = (part.len() / self.classes.max(1)).max(1) as f64;
        self.sum_over_rows(part)
            .into_iter()
            .map(|sum| (sum as f64 / rows) as f32)
            .collect()
    }

    /// The smallest class weight of any row.
    pub fn smallest_weight(&self) -> f32 {
        smallest(self.weight.iter().copied())
    }

    /// The (row, class) pairs whose target is present (G > 0) and whose weight is exactly 0.
    pub fn present_zero_weights(&self) -> u32 {
        self.target
            .iter()
            .zip(&self.weight)
            .filter(|&(&g, &w)| g > 0.0 && w == 0.0)
            .count() as u32
    }

    /// True when every I, P, G and w is an fp16 value ([`is_half`]) and at least one is not a
    /// whole number (a saturated net's f32 sums can all be small whole numbers, which fp16
    /// holds too).
    pub fn sums_in_half(&self) -> bool {
        let values = || {
            [
                &self.intersection,
                &self.prediction,
                &self.target,
                &self.weight,
            ]
            .into_iter()
            .flatten()
            .copied()
        };
        values().all(is_half) && values().any(|value| value.is_finite() && value.fract() != 0.0)
    }

    /// True when a sum I, P or G is infinite.
    pub fn sums_infinite(&self) -> bool {
        [&self.intersection, &self.prediction, &self.target]
            .iter()
            .any(|part| part.iter().any(|value| value.is_infinite()))
    }

    /// The smallest over the rows of `Σ_c w_c·(P_c + G_c − 2·I_c)`.
    pub fn weighted_miss(&self) -> f32 {
        let parts = [
            &self.weight,
            &self.prediction,
            &self.target,
            &self.intersection,
        ]
        .map(|part| Self::rows(part, self.classes));
        let [weight, prediction, target, intersection] = parts;
        smallest(
            weight
                .zip(prediction)
                .zip(target)
                .zip(intersection)
                .map(|(((w, p), g), i)| {
                    (0..w.len())
                        .map(|c| w[c] as f64 * (p[c] as f64 + g[c] as f64 - 2.0 * i[c] as f64))
                        .sum::<f64>() as f32
                }),
        )
    }
}

/// True when `value` is exactly a half-precision (fp16) number, or ±∞.
pub fn is_half(value: f32) -> bool {
    let magnitude = value.abs();
    if value.is_infinite() || value == 0.0 {
        true
    } else if value.is_nan() || magnitude > 65_504.0 {
        false
    } else if magnitude < 2f32.powi(-14) {
        // fp16's subnormals: multiples of 2⁻²⁴ (the scaling by a power of two is exact).
        (magnitude * 2f32.powi(24)).fract() == 0.0
    } else {
        // fp16 keeps 10 of f32's 23 fraction bits: the other 13 are zero.
        value.to_bits() & 0x1FFF == 0
    }
}

/// The smallest value, NaN if any is NaN (a broken sum must not pass for a small one).
fn smallest(values: impl Iterator<Item = f32>) -> f32 {
    values.fold(f32::INFINITY, |least, value| {
        if least.is_nan() || value.is_nan() {
            f32::NAN
        } else {
            least.min(value)
        }
    })
}

impl GdlInputStats {
    #[cfg(engine)]
    /// The [`STATISTICS`] read-back values of [`input_statistics`] and the run's parts on the
    /// CPU, with the run's options.
    pub fn from_readout(statistics: &[f32], rows: &GdlRows, run: &GdlRun) -> Self {
        let maxima = Maxima::from_values(&statistics[1..1 + MAXIMA]);
        let channel_sums = Maxima::from_values(&statistics[1 + MAXIMA..]);
        Self {
            gdl: statistics[0],
            p_min: maxima.p_min,
            p_max: maxima.p_max,
            g_min: maxima.g_min,
            g_max: maxima.g_max,
            w_min: rows.smallest_weight(),
            g_fraction: maxima.g_fraction,
            g_not_two_valued: (maxima.g_max - maxima.g_smallest_nonzero).max(0.0),
            g_has_3: maxima.g_has_3,
            g_has_4: maxima.g_has_4,
            weighted_miss: rows.weighted_miss(),
            smooth_nr: run.config.smooth_nr,
            smooth_dr: run.config.smooth_dr,
            channels: run.probs.dims()[1] as u32,
            g_channel_sum_max: channel_sums.g_max,
            g_channel_sum_min: channel_sums.g_min,
            p_channel_sum_gap: (channel_sums.p_max - 1.0)
                .abs()
                .max((1.0 - channel_sums.p_min).abs()),
            present_zero_weights: rows.present_zero_weights(),
            sums_infinite: f32::from(u8::from(rows.sums_infinite())),
            sums_in_half: f32::from(u8::from(rows.sums_in_half())),
        }
    }

    /// The causes the inputs (and, for −Dice, the value) point at, most fundamental first. Each
    /// is told from the statistics alone, never from which misuse the lab injected, so the
    /// monitor diagnoses a user's pipeline the same way.
    pub fn causes(&self) -> Vec<Misuse> {
        // f32 softmax can land a hair outside [0, 1]; that is rounding, not a broken input.
        const SLACK: f32 = 1e-5;
        let mut found = Vec::new();
        if self.p_min < -SLACK || self.p_max > 1.0 + SLACK {
            found.push(Misuse::Logits);
        }
        if let Some(cause) = self.target_cause(SLACK) {
            found.push(cause);
        }
        if self.smooth_nr > self.smooth_dr {
            found.push(Misuse::SmoothNrAboveDr);
        }
        if self.w_min < 0.0 {
            found.push(Misuse::NegativeWeight);
        }
        if self.present_zero_weights > 0 || self.sums_infinite > 0.5 || self.sums_in_half > 0.5 {
            found.push(Misuse::Fp16Sums);
        }
        if self.channels == 1 && self.p_min >= 1.0 - SLACK && self.p_max <= 1.0 + SLACK {
            found.push(Misuse::OneChannel);
        }
        // A mask target whose channels are not exclusive classes (a voxel in several of them,
        // or in none), against a prediction that sums to 1 over the channels, as a softmax
        // makes it: a softmax over regions.
        let mask = self.g_min >= -SLACK && self.g_max <= 1.0 + SLACK;
        let not_a_partition =
            self.g_channel_sum_max > 1.0 + SLACK || self.g_channel_sum_min < 1.0 - SLACK;
        if self.channels > 1
            && mask
            && not_a_partition
            && self.p_channel_sum_gap <= 1e-3
            && self.p_min >= -SLACK
        {
            found.push(Misuse::SoftmaxOverRegions);
        }
        // Valid inputs keep 1 − Dice in [0, 1]; a value in [−1, 0) from them is −Dice.
        if found.is_empty() && (-1.0 - SLACK..-SLACK).contains(&self.gdl) {
            found.push(Misuse::NegatedDice);
        }
        found
    }

    /// Which wrong target it is: a mask of 0 and 255; integer labels with 4 but no 3 (BraTS
    /// 2021's {0, 1, 2, 4}); other integer labels, or any values outside [0, 1] (a label map).
    /// `None` for a target in [0, 1].
    fn target_cause(&self, slack: f32) -> Option<Misuse> {
        if self.g_min >= -slack && self.g_max <= 1.0 + slack {
            return None;
        }
        let integers = self.g_fraction <= slack && self.g_min >= 0.0;
        Some(if !integers {
            Misuse::LabelMapAsTarget
        } else if self.g_not_two_valued <= slack && (self.g_max - 255.0).abs() <= slack {
            Misuse::Mask255
        } else if self.g_has_4 > 0.5 && self.g_has_3 < 0.5 {
            Misuse::BratsLabels
        } else {
            Misuse::LabelMapAsTarget
        })
    }

    /// One sentence per cause found; each names its cause and no other.
    pub fn violations(&self) -> Vec<String> {
        self.causes()
            .into_iter()
            .map(|cause| self.sentence(cause))
            .collect()
    }

    fn sentence(&self, cause: Misuse) -> String {
        match cause {
            Misuse::Logits => format!(
                "The prediction is not a probability: its values span [{:.3}, {:.3}], as raw \
                 logits do, so 2·I can exceed P + G and the denominator can even cross zero.",
                self.p_min, self.p_max
            ),
            Misuse::Mask255 => {
                "The target holds only 0 and 255: a binary mask stored as 0/255 and never \
                 divided by 255, so 2·I can exceed P + G even before training (for an untrained \
                 4-class net, once the foreground passes 0.6 % of the patch)."
                    .to_string()
            }
            Misuse::BratsLabels => format!(
                "The target holds integer labels up to {} with a 4 but no 3: BraTS labels \
                 {{0, 1, 2, 4}} used as the target without remapping, so I = Σp·g can exceed \
                 (P + G)/2.",
                self.g_max
            ),
            Misuse::LabelMapAsTarget if self.g_fraction > 1e-5 || self.g_min < 0.0 => format!(
                "The target is not a mask: its values span [{:.3}, {:.3}], outside [0, 1], \
                 so I = Σp·g can exceed (P + G)/2.",
                self.g_min, self.g_max
            ),
            Misuse::LabelMapAsTarget => format!(
                "The target holds the integer labels 0 to {}: the raw label map used as the \
                 target instead of one-hot masks, so I = Σp·g can exceed (P + G)/2.",
                self.g_max
            ),
            Misuse::SmoothNrAboveDr
                if self.smooth_nr - self.smooth_dr > self.weighted_miss as f64 =>
            {
                format!(
                    "smooth_nr = {} exceeds smooth_dr = {} by more than the weighted miss \
                     Σw·(P + G − 2·I) = {:.3e}, so the smoothing dominates and the fraction \
                     exceeds 1.",
                    self.smooth_nr, self.smooth_dr, self.weighted_miss
                )
            }
            Misuse::SmoothNrAboveDr => format!(
                "smooth_nr = {} exceeds smooth_dr = {}, but on this batch the weighted miss \
                 Σw·(P + G − 2·I) = {:.3} is larger than the difference, so the fraction stays \
                 below 1 on this batch.",
                self.smooth_nr, self.smooth_dr, self.weighted_miss
            ),
            Misuse::NegativeWeight => format!(
                "A class has a negative weight ({:.3e}), so that class subtracts from the sums.",
                self.w_min
            ),
            Misuse::NegatedDice => format!(
                "Every input is valid and the value {:.4} lies in [−1, 0]: the loss is −Dice \
                 (nnU-Net's convention), not 1 − Dice; nothing is broken.",
                self.gdl
            ),
            Misuse::SoftmaxOverRegions => format!(
                "The target's channels are not exclusive classes (a voxel lies in {:.0} of them \
                 and another in {:.0}, as in the overlapping tumour regions WT ⊃ TC ⊃ ET) but the \
                 prediction sums to 1 over its {} channels, as a softmax makes it: a voxel \
                 cannot be 1 in every region it belongs to, nor 0 in all, so the GDL has a \
                 floor above 0. Overlapping regions need a sigmoid per channel.",
                self.g_channel_sum_max, self.g_channel_sum_min, self.channels
            ),
            Misuse::Fp16Sums if self.sums_infinite < 0.5 && self.present_zero_weights == 0 => {
                "Every sum I, P, G and weight w is a half-precision (fp16) number: the loss was \
                 computed in fp16, where 1/G² underflows to 0 once G > 255 and P + G overflows \
                 past 65 504. Compute the loss's sums in float32."
                    .to_string()
            }
            Misuse::Fp16Sums if self.sums_infinite > 0.5 => {
                "A sum I, P or G is infinite: it overflowed half precision (fp16's largest \
                 value is 65 504), so the fraction is ∞/∞ or 0·∞. Compute the loss's sums in \
                 float32."
                    .to_string()
            }
            Misuse::Fp16Sums => format!(
                "{} class weight{} of present classes (G > 0) {} exactly 0: 1/G² underflowed, as \
                 in half precision (fp16) once G > 255 (G² passes 65 504), so those classes \
                 drop out of the loss and the value reads near 0. Compute the loss's sums in \
                 float32.",
                self.present_zero_weights,
                if self.present_zero_weights == 1 {
                    ""
                } else {
                    "s"
                },
                if self.present_zero_weights == 1 {
                    "is"
                } else {
                    "are"
                },
            ),
            Misuse::OneChannel => "The prediction has one channel and it is 1 at every voxel: \
                 a softmax over one output channel, so CE is 0 and the GDL a constant with no \
                 gradient. One channel needs a sigmoid (and BCE), or two channels with a softmax."
                .to_string(),
        }
    }

    /// True when the value lies in [0, 1] (allowing f32 rounding).
    pub fn in_range(&self) -> bool {
        (-1e-5..=1.0 + 1e-5).contains(&self.gdl)
    }

    /// One sentence when the GDL left [0, 1]: the broken assumption, or, if none was found, a
    /// statement that this should be impossible.
    pub fn explain(&self) -> Option<String> {
        if self.in_range() && !self.gdl.is_nan() {
            return None;
        }
        let value = self.gdl;
        Some(match self.violations().into_iter().next() {
            Some(reason) => format!("GDL = {value:.4} is outside [0, 1]. {reason}"),
            None => format!(
                "GDL = {value:.4} is outside [0, 1] although p ∈ [0, 1], g ∈ [0, 1], w ≥ 0 and \
                 smooth_nr ≤ smooth_dr held; this points at numerical trouble (overflow or NaN)."
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two samples × three classes, as `GdlRows::tensors` lays them out.
    fn two_samples() -> GdlRows {
        let parts: [[f32; 6]; 6] = [
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],       // I
            [2.0, 4.0, 6.0, 8.0, 10.0, 12.0],     // P
            [3.0, 3.0, 3.0, 5.0, 5.0, 5.0],       // G
            [0.5, 1.0, -2.0, 1.0, 1.0, 1.0],      // w
            [0.1, 0.2, 0.3, 0.5, 0.6, 0.7],       // Dice
            [0.01, 0.02, 0.03, 0.05, 0.06, 0.07], // contribution
        ];
        GdlRows::from_values(&parts.concat(), 3)
    }

    #[test]
    fn the_rows_reduce_per_class_over_the_samples() {
        let rows = two_samples();
        assert_eq!(rows.sum_over_rows(&rows.intersection), [5.0f32, 7.0, 9.0]);
        let means = rows.mean_over_rows(&rows.dice);
        for (mean, expected) in means.iter().zip([0.3f32, 0.4, 0.5]) {
            assert!((mean - expected).abs() < 1e-6, "{means:?}");
        }
        assert_eq!(rows.smallest_weight(), -2.0);
        // Sample 0: 0.5·(2+3−2) + 1·(4+3−4) − 2·(6+3−6) = 1.5 + 3 − 6 = −1.5;
        // sample 1: (8+5−8) + (10+5−10) + (12+5−12) = 15.
        assert_eq!(rows.weighted_miss(), -1.5);
    }

    #[test]
    fn a_nan_in_the_rows_is_not_taken_for_a_small_value() {
        let mut rows = two_samples();
        rows.weight[4] = f32::NAN;
        assert!(rows.smallest_weight().is_nan());
        assert!(rows.weighted_miss().is_nan());
        let pooled = GdlRows::from_values(&[1.0; 6], 1);
        assert_eq!(pooled.mean_over_rows(&pooled.dice), [1.0f32]);
    }
}
