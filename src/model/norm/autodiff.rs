//! The backward pass of [`NormKernels::instance_norm_leaky_relu`] under autodiff.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Shape, Slice};

use super::NormKernels;

impl<B: NormKernels, C: CheckpointStrategy> NormKernels for Autodiff<B, C> {
    fn instance_norm_leaky_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct InstanceNormLeakyReluBackward;

        impl<B: NormKernels> Backward<B, 3> for InstanceNormLeakyReluBackward {
            // x, γ, β as checkpointed nodes; the statistics as computed in the forward pass
            // (they are [B, C, 2], so keeping them is cheaper than a second pass over x).
            type State = (NodeId, NodeId, NodeId, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, gamma_state, beta_state, stats) = ops.state;
                let x: FloatTensor<B> = checkpointer.retrieve_node_output(x_state);
                let gamma: FloatTensor<B> = checkpointer.retrieve_node_output(gamma_state);
                let beta: FloatTensor<B> = checkpointer.retrieve_node_output(beta_state);
                let channels = gamma.shape()[0];

                let sums = B::instance_norm_grad_sums(
                    x.clone(),
                    stats.clone(),
                    gamma.clone(),
                    beta.clone(),
                    grad.clone(),
                );
                // ∂L/∂β and ∂L/∂γ: the planes' Σg and Σg·x̂ added over the batch.
                let summed = B::float_sum_dim(sums.clone(), 0);
                let per_channel = |index: usize| {
                    let item = B::float_slice(
                        summed.clone(),
                        &[
                            Slice::from(..),
                            Slice::from(..),
                            Slice::from(index..index + 1),
                        ],
                    );
                    B::float_reshape(item, Shape::new([channels]))
                };
                if let Some(node) = node_beta {
                    grads.register::<B>(node.id, per_channel(0));
                }
                if let Some(node) = node_gamma {
                    grads.register::<B>(node.id, per_channel(1));
                }
                if let Some(node) = node_x {
                    let grad_x = B::instance_norm_input_grad(x, stats, gamma, beta, grad, sums);
                    grads.register::<B>(node.id, grad_x);
                }
            }
        }

        match InstanceNormLeakyReluBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let beta_state = prep.checkpoint(&beta);
                let x = x.into_primitive();
                let gamma = gamma.into_primitive();
                let beta = beta.into_primitive();
                let stats = B::instance_norm_stats(x.clone());
                let output = B::instance_norm_apply(x, stats.clone(), gamma, beta);
                prep.finish((x_state, gamma_state, beta_state, stats), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::instance_norm_leaky_relu(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
            )),
        }
    }

    fn instance_norm_stats(_x: FloatTensor<Self>) -> FloatTensor<Self> {
        unimplemented!("the statistics are computed inside the differentiable operation")
    }

    fn instance_norm_apply(
        _x: FloatTensor<Self>,
        _stats: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unimplemented!("applied inside the differentiable operation")
    }

    fn instance_norm_grad_sums(
        _x: FloatTensor<Self>,
        _stats: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _beta: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unimplemented!("computed in the backward pass, not differentiated")
    }

    fn instance_norm_input_grad(
        _x: FloatTensor<Self>,
        _stats: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _beta: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _sums: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unimplemented!("computed in the backward pass, not differentiated")
    }
}
