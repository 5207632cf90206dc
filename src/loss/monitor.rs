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
use super::misuse::GdlRun;
use super::misuse::Misuse;

/// How many scalars [`input_statistics`] returns, in the order of [`GdlInputStats::from_slice`].
pub const STATISTICS: usize = 11;

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
    /// max |g·(g_max − g)|: 0 when the target holds only 0 and its maximum, as a mask does.
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
}

#[cfg(engine)]
/// `[gdl, p_min, p_max, g_min, g_max, w_min, g_fraction, g_not_two_valued, g_has_3, g_has_4,
/// weighted_miss]` of a GDL run, one `[1]` tensor each, to be read back with everything else
/// (in one transfer: `train/session/readout.rs`).
pub fn input_statistics(run: &GdlRun) -> Vec<Tensor<1>> {
    let g = run.target.clone();
    let g_max = g.clone().max();
    let has = |value: f32| g.clone().equal_elem(value).float().max().reshape([1]);
    vec![
        run.value.clone(),
        run.probs.clone().min().reshape([1]),
        run.probs.clone().max().reshape([1]),
        g.clone().min().reshape([1]),
        g_max.clone().reshape([1]),
        run.parts.weight.clone().min().reshape([1]),
        (g.clone() - g.clone().round()).abs().max().reshape([1]),
        (g.clone() * (g_max.reshape([1, 1, 1, 1, 1]) - g.clone()))
            .abs()
            .max()
            .reshape([1]),
        has(3.0),
        has(4.0),
        weighted_miss(run),
    ]
}

#[cfg(engine)]
/// `[1]`: the smallest over samples of `Σ_c w_c·(P_c + G_c − 2·I_c)`.
fn weighted_miss(run: &GdlRun) -> Tensor<1> {
    let sums = &run.parts.sums;
    let miss = sums.prediction.clone() + sums.target.clone() - sums.intersection.clone() * 2.0;
    (run.parts.weight.clone() * miss)
        .sum_dim(1)
        .min()
        .reshape([1])
}

impl GdlInputStats {
    #[cfg(engine)]
    /// Pairs the [`STATISTICS`] read-back values of [`input_statistics`] with the run's options.
    pub fn from_slice(values: &[f32], run: &GdlRun) -> Self {
        Self {
            gdl: values[0],
            p_min: values[1],
            p_max: values[2],
            g_min: values[3],
            g_max: values[4],
            w_min: values[5],
            g_fraction: values[6],
            g_not_two_valued: values[7],
            g_has_3: values[8],
            g_has_4: values[9],
            weighted_miss: values[10],
            smooth_nr: run.config.smooth_nr,
            smooth_dr: run.config.smooth_dr,
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
