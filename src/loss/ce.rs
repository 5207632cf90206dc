//! Categorical cross-entropy: the warm-up that agrees with the softmax the Dice losses use.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// PyTorch's `cross_entropy(logits, labels)` with mean reduction: `−Σ_c y_c·log softmax(x)_c`
/// averaged over the B·N voxels. `target` is the one-hot mask, same shape as `logits`.
pub fn cross_entropy(logits: Tensor<5>, target: Tensor<5>) -> Tensor<1> {
    (log_softmax(logits, 1) * target).sum_dim(1).mean().neg()
}
