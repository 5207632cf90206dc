//! Plain (not generalised) soft Dice losses: the seed's `dice_loss` and MONAI's `DiceLoss`.

use burn::prelude::*;

use super::gdl::class_sums;

/// The seed's `dice_loss`: `1 − mean_{b,c} (2·I + 1e-6) / (P + G + 1e-6)`.
pub fn seed_soft_dice(probs: Tensor<5>, target: Tensor<5>) -> Tensor<1> {
    soft_dice(probs, target, 1e-6, 1e-6)
}

/// MONAI `DiceLoss(softmax=True, to_onehot_y=True)` once softmax and one-hot are applied:
/// `1 − mean_{b,c} (2·I + smooth_nr) / (P + G + smooth_dr)`, each class weighted equally.
pub fn soft_dice(probs: Tensor<5>, target: Tensor<5>, smooth_nr: f64, smooth_dr: f64) -> Tensor<1> {
    let sums = class_sums(probs, target, false);
    let dice = (sums.intersection * 2.0 + smooth_nr) / (sums.prediction + sums.target + smooth_dr);
    dice.mean().neg().add_scalar(1.0)
}
