//! Global-norm gradient clipping with PyTorch's `clip_grad_norm_` semantics.
//!
//! burn's `GradientClippingConfig::Norm` clips each parameter on its own; PyTorch (and the seed)
//! take one L2 norm over *all* gradients together, then scale every gradient by
//! `min(1, max_norm / (norm + 1e-6))`. Written here because burn has no global variant. The
//! coefficient stays a tensor, so clipping never waits for the device.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// The global gradient norm before clipping and of the clipped gradients, as `[1]` tensors on
/// the device.
#[derive(Clone, Debug)]
pub struct ClipNorms {
    pub before: Tensor<1>,
    pub after: Tensor<1>,
}

/// Clips `grads` (the gradients of `module`) in place to a global L2 norm of at most
/// `max_norm`. With `max_norm = None` nothing changes, but the norm is still measured. `None`
/// when the module has no gradient at all.
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: Option<f64>,
) -> Option<ClipNorms> {
    let mut squares = SumOfSquares { grads, total: None };
    module.visit(&mut squares);
    let before = squares.total?.sqrt();
    let Some(max_norm) = max_norm else {
        return Some(ClipNorms {
            after: before.clone(),
            before,
        });
    };
    let coefficient = before
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    // Every gradient is scaled by the one coefficient, so the clipped norm is `before ·
    // coefficient` (equal up to rounding to measuring the clipped gradients again, which took
    // two launches per parameter; `tests/reference.rs` checks the clipped gradients themselves).
    let after = before.clone() * coefficient.clone();
    module.visit(&mut Scale { grads, coefficient });
    Some(ClipNorms { before, after })
}

struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            add_sum_of_squares(&mut self.total, grad);
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    coefficient: Tensor<1>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let coefficient = self.coefficient.clone().reshape([1; D]);
            self.grads.register::<D>(param.id, grad * coefficient);
        }
    }
}

/// Adds Σx² of `tensor` to `total` (a `[1]` tensor on the device, `None` before the first). A
/// vector is summed along its one axis, which burn's fusion folds into the kernel that computed
/// it; anything else is flattened first, which ends that kernel (fusion does not fuse a reshape
/// to fewer axes), so its sum is a launch of its own.
pub(crate) fn add_sum_of_squares<const D: usize>(total: &mut Option<Tensor<1>>, tensor: Tensor<D>) {
    let square = if D == 1 {
        tensor.square().sum_dim(0).reshape([1])
    } else {
        tensor.reshape([-1]).square().sum_dim(0)
    };
    *total = Some(match total.take() {
        Some(total) => total + square,
        None => square,
    });
}
