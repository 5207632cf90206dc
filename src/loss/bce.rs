//! Binary cross-entropy on logits: the seed's warm-up loss.

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;

/// PyTorch's `binary_cross_entropy_with_logits(logits, target)` with mean reduction: every
/// element (each class of each voxel) is its own binary problem.
///
/// `−[y·log σ(x) + (1−y)·log σ(−x)]`, written with `log_sigmoid` so that large |x| neither
/// overflows nor loses the gradient.
pub fn bce_with_logits<const D: usize>(logits: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    let positive = log_sigmoid(logits.clone()) * target.clone();
    let negative = log_sigmoid(logits.neg()) * target.neg().add_scalar(1.0);
    (positive + negative).mean().neg()
}
