//! The backward pass of [`ConvKernels::tiled_conv3d`] under autodiff.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;

use super::ConvKernels;

impl<B: ConvKernels, C: CheckpointStrategy> ConvKernels for Autodiff<B, C> {
    fn tiled_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        transposed: bool,
    ) -> FloatTensor<Self> {
        // Transposed weights are read only inside a backward pass, on the inner backend.
        assert!(
            !transposed,
            "tiled_conv3d: transposed weights are not differentiated"
        );
        #[derive(Debug)]
        struct TiledConv3dBackward;

        impl<B: ConvKernels> Backward<B, 2> for TiledConv3dBackward {
            type State = (NodeId, NodeId, usize, usize);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, stride, padding) = ops.state;
                let x: FloatTensor<B> = checkpointer.retrieve_node_output(x_state);
                let weight: FloatTensor<B> = checkpointer.retrieve_node_output(weight_state);

                if let Some(node) = node_x {
                    let grad_x =
                        input_grad::<B>(x.clone(), weight.clone(), grad.clone(), stride, padding);
                    grads.register::<B>(node.id, grad_x);
                }
                if let Some(node) = node_weight {
                    let grad_weight = B::tiled_conv3d_weight_grad(x, weight, grad, stride, padding);
                    grads.register::<B>(node.id, grad_weight);
                }
            }
        }

        match TiledConv3dBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output = B::tiled_conv3d(
                    x.into_primitive(),
                    weight.into_primitive(),
                    stride,
                    padding,
                    false,
                );
                prep.finish((x_state, weight_state, stride, padding), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::tiled_conv3d(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                padding,
                false,
            )),
        }
    }

    fn tiled_conv3d_input_grad(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _output_grad: FloatTensor<Self>,
        _stride: usize,
        _padding: usize,
    ) -> FloatTensor<Self> {
        unimplemented!("the input gradient is computed in the backward pass, not differentiated")
    }

    fn tiled_conv3d_weight_grad(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _output_grad: FloatTensor<Self>,
        _stride: usize,
        _padding: usize,
    ) -> FloatTensor<Self> {
        unimplemented!("the weight gradient is computed in the backward pass, not differentiated")
    }
}

/// The input gradient. With stride 1 it is a convolution of the output gradient by the weights
/// with their channel axes swapped and every spatial axis flipped, padded by `k − 1 − padding`:
/// the same fast kernel, reading the weights so (`transposed`) rather than from a flipped copy.
/// A larger stride is a transposed convolution: its own kernel.
fn input_grad<B: ConvKernels>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    stride: usize,
    padding: usize,
) -> FloatTensor<B> {
    let kernel = weight.shape()[2];
    if stride == 1 && padding < kernel {
        B::tiled_conv3d(grad, weight, 1, kernel - 1 - padding, true)
    } else {
        B::tiled_conv3d_input_grad(x, weight, grad, stride, padding)
    }
}
