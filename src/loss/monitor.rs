//! The invariant monitor: checks the assumptions that keep GDL in [0, 1] and, when the value
//! leaves that range, names the broken one in a sentence.
//!
//! The assumptions (see [`super::gdl`]): p ∈ [0, 1], g one-hot (0 or 1, one class per voxel),
//! w ≥ 0 and smooth_nr ≤ smooth_dr. The statistics are tensors, read back together with the
//! step's other scalars, so checking costs no extra synchronisation.

use burn::prelude::*;
use serde::Serialize;

use super::misuse::GdlRun;

/// How many scalars [`input_statistics`] returns, in the order of [`GdlInputStats::from_slice`].
pub const STATISTICS: usize = 8;

/// What the monitor looked at, read back from the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct GdlInputStats {
    pub gdl: f32,
    pub p_min: f32,
    pub p_max: f32,
    pub g_min: f32,
    pub g_max: f32,
    /// max |g·(1−g)|: 0 exactly when every target value is 0 or 1.
    pub g_not_binary: f32,
    /// max over voxels of |Σ_c g − 1| (0 for a one-hot target; not checked for one channel).
    pub g_sum_error: f32,
    pub w_min: f32,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub channels: usize,
    pub negated: bool,
}

/// `[gdl, p_min, p_max, g_min, g_max, g_not_binary, g_sum_error, w_min]` of a GDL run, as one
/// tensor to be read back with everything else.
pub fn input_statistics(run: &GdlRun) -> Tensor<1> {
    let channels = run.target.dims()[1];
    let g = run.target.clone();
    let g_sum_error = if channels > 1 {
        g.clone()
            .sum_dim(1)
            .sub_scalar(1.0)
            .abs()
            .max()
            .reshape([1])
    } else {
        Tensor::zeros([1], &g.device())
    };
    Tensor::cat(
        vec![
            run.value.clone(),
            run.probs.clone().min().reshape([1]),
            run.probs.clone().max().reshape([1]),
            g.clone().min().reshape([1]),
            g.clone().max().reshape([1]),
            (g.clone() * g.neg().add_scalar(1.0))
                .abs()
                .max()
                .reshape([1]),
            g_sum_error,
            run.parts.weight.clone().min().reshape([1]),
        ],
        0,
    )
}

impl GdlInputStats {
    /// Pairs the [`STATISTICS`] read-back values of [`input_statistics`] with the run's options.
    pub fn from_slice(values: &[f32], run: &GdlRun) -> Self {
        Self {
            gdl: values[0],
            p_min: values[1],
            p_max: values[2],
            g_min: values[3],
            g_max: values[4],
            g_not_binary: values[5],
            g_sum_error: values[6],
            w_min: values[7],
            smooth_nr: run.config.smooth_nr,
            smooth_dr: run.config.smooth_dr,
            channels: run.target.dims()[1],
            negated: run.negated,
        }
    }

    /// Every broken assumption, one sentence each, most fundamental first.
    pub fn violations(&self) -> Vec<String> {
        // f32 softmax can land a hair outside [0, 1]; that is rounding, not a broken input.
        const SLACK: f32 = 1e-5;
        let mut found = Vec::new();
        if self.negated {
            found.push(
                "The loss is −Dice by design (nnU-Net's convention), so it lies in [−1, 0]; \
                 nothing is broken, but it is not 1 − Dice."
                    .to_string(),
            );
        }
        if self.p_min < -SLACK || self.p_max > 1.0 + SLACK {
            found.push(format!(
                "The prediction is not a probability: its values span [{:.3}, {:.3}], as raw \
                 logits do, so 2·I can exceed P + G and the denominator can even cross zero.",
                self.p_min, self.p_max
            ));
        }
        if self.g_not_binary > SLACK || self.g_min < -SLACK || self.g_max > 1.0 + SLACK {
            found.push(format!(
                "The target is not a one-hot mask: its values reach {}, as a label map or a \
                 0/255 mask does, so I = Σp·g can exceed (P + G)/2.",
                self.g_max
            ));
        } else if self.channels > 1 && self.g_sum_error > SLACK {
            found.push(
                "The target's channels do not sum to 1 in every voxel, so it is not one-hot."
                    .to_string(),
            );
        }
        if self.smooth_nr > self.smooth_dr {
            found.push(format!(
                "smooth_nr = {} exceeds smooth_dr = {}: with 1/G² weights the weighted sums are \
                 tiny, so the smoothing dominates and the fraction exceeds 1.",
                self.smooth_nr, self.smooth_dr
            ));
        }
        if self.w_min < 0.0 {
            found.push(format!(
                "A class weight is negative ({:.3e}), so that class subtracts from the sums.",
                self.w_min
            ));
        }
        found
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
                "GDL = {value:.4} is outside [0, 1] although p ∈ [0, 1], g is one-hot, w ≥ 0 and \
                 smooth_nr ≤ smooth_dr held; this points at numerical trouble (overflow or NaN)."
            ),
        })
    }
}
