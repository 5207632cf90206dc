//! The monitor's whole-volume statistics (the range of p and g, whether g holds fractions,
//! which values it holds) as one operation: on a GPU one pass over both volumes and one small
//! reduction, where burn's tensor operations took a reduction each, plus a comparison and a
//! cast for each "holds a 3 / a 4" (~16 launches a step and as many in each lab probe; a launch
//! costs host time before the GPU sees it: BENCHMARKS.md, "Launches per step").
//!
//! Why by hand: burn has no reduction with several outputs, and its fusion does not join
//! reductions of one input. Every statistic is a maximum, a minimum being the maximum of the
//! negated values, so one kernel keeps eight running maxima per thread.

mod cube;
mod kernel;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Backend, Dispatch, Flex, TensorMetadata, backend_extension, get_or_init_device_settings,
};
use burn::prelude::*;
use burn::tensor::Shape;

/// How many values [`volume_maxima`] returns, in the order of [`Maxima`]'s fields.
pub const MAXIMA: usize = 8;

/// The lowest value a running maximum starts from: finite, since WGSL refuses infinite
/// constants. A maximum still at it saw no value (in practice: no non-zero target value).
pub const LOWEST: f32 = -3.0e38;

/// What [`volume_maxima`] measures, decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Maxima {
    pub p_min: f32,
    pub p_max: f32,
    pub g_min: f32,
    pub g_max: f32,
    /// max |g − round(g)|.
    pub g_fraction: f32,
    /// The smallest non-zero g; [`LOWEST`] negated when every g is 0.
    pub g_smallest_nonzero: f32,
    /// 1 when some g is exactly 3, else 0.
    pub g_has_3: f32,
    /// 1 when some g is exactly 4, else 0.
    pub g_has_4: f32,
}

impl Maxima {
    /// The [`MAXIMA`] values as read back.
    pub fn from_values(values: &[f32]) -> Self {
        Self {
            p_min: -values[0],
            p_max: values[1],
            g_min: -values[2],
            g_max: values[3],
            g_fraction: values[4],
            g_smallest_nonzero: -values[5],
            g_has_3: values[6],
            g_has_4: values[7],
        }
    }
}

/// The statistics of the prediction `p` and the target `g` (any shapes of equal size), as
/// maxima on every backend gdl-lab trains on: `[max(−p), max p, max(−g), max g,
/// max |g − round g|, max over g ≠ 0 of −g, [some g = 3], [some g = 4]]`.
#[backend_extension(Cube, Flex, Fusion, Autodiff)]
pub trait MonitorKernels: Backend {
    #[fusion(dtype = p, shape = maxima_shape(p, g))]
    fn volume_maxima(p: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `[MAXIMA]`, whatever the inputs.
pub fn maxima_shape(_p: &Shape, _g: &Shape) -> Shape {
    Shape::new([MAXIMA])
}

/// [`MonitorKernels::volume_maxima`] of `p` and `g`, without a gradient.
pub fn volume_maxima<const D: usize>(p: Tensor<D>, g: Tensor<D>) -> Tensor<1> {
    assert_eq!(
        p.shape().num_elements(),
        g.shape().num_elements(),
        "the monitor compares a prediction and a target of the same size"
    );
    Tensor::from_dispatch(Dispatch::volume_maxima(
        p.detach().into_dispatch(),
        g.detach().into_dispatch(),
    ))
}

/// On the CPU, burn's tensor operations, one reduction per statistic.
impl MonitorKernels for Flex {
    fn volume_maxima(p: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::<Self>(p, g)
    }
}

/// Statistics carry no gradient ([`volume_maxima`] detaches its inputs): the inner backend's
/// operation, with a backward pass that passes nothing on.
impl<B: MonitorKernels, C: CheckpointStrategy> MonitorKernels for Autodiff<B, C> {
    fn volume_maxima(p: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct NoGradient;

        impl<B: Backend> Backward<B, 2> for NoGradient {
            type State = ();

            fn backward(self, _: Ops<(), 2>, _: &mut Gradients, _: &mut Checkpointer) {}
        }

        NoGradient
            .prepare::<C>([p.node(), g.node()])
            .compute_bound()
            .stateless(B::volume_maxima(p.into_primitive(), g.into_primitive()))
    }
}

/// The statistics with one burn operation per term, for backends without the kernel.
fn reference<B: Backend>(p: FloatTensor<B>, g: FloatTensor<B>) -> FloatTensor<B> {
    let flat = |t: FloatTensor<B>| {
        let count = t.shape().num_elements();
        B::float_reshape(t, Shape::new([count]))
    };
    let (p, g) = (flat(p), flat(g));
    let device = g.device();
    let float_dtype = g.dtype();
    let bool_dtype = get_or_init_device_settings::<B>(&device).bool_dtype;
    let has = |value: f32| {
        let equal = B::float_equal_elem(g.clone(), value.into(), bool_dtype);
        B::float_max(B::bool_into_float(equal, float_dtype.into()))
    };
    let zero = B::float_equal_elem(g.clone(), 0.0.into(), bool_dtype);
    let fraction = B::float_abs(B::float_sub(g.clone(), B::float_round(g.clone())));
    let parts = vec![
        B::float_max(B::float_neg(p.clone())),
        B::float_max(p),
        B::float_max(B::float_neg(g.clone())),
        B::float_max(g.clone()),
        B::float_max(fraction),
        B::float_max(B::float_mask_fill(
            B::float_neg(g.clone()),
            zero,
            LOWEST.into(),
        )),
        has(3.0),
        has(4.0),
    ];
    B::float_cat(parts, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made volumes whose statistics are known: p spans [−0.5, 1.25]; g holds 0, 4, 255,
    /// 2.5 (a fraction of 0.5) and no 3.
    #[test]
    fn the_maxima_decode_to_the_volumes_statistics() {
        let device = Device::flex().autodiff();
        let p =
            Tensor::<2>::from_floats([[0.0, -0.5, 1.25], [0.3, 0.3, 0.3]], &device).require_grad();
        let g = Tensor::<2>::from_floats([[0.0, 4.0, 255.0], [2.5, 0.0, 4.0]], &device);
        let values = volume_maxima(p, g).into_data().try_to_vec::<f32>().unwrap();
        let maxima = Maxima::from_values(&values);
        assert_eq!(
            maxima,
            Maxima {
                p_min: -0.5,
                p_max: 1.25,
                g_min: 0.0,
                g_max: 255.0,
                g_fraction: 0.5,
                g_smallest_nonzero: 2.5,
                g_has_3: 0.0,
                g_has_4: 1.0,
            }
        );
        let zeros = Tensor::<1>::zeros([5], &device);
        let maxima = Maxima::from_values(
            &volume_maxima(zeros.clone(), zeros)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        assert_eq!(maxima.g_smallest_nonzero, -LOWEST, "no non-zero value");
        assert_eq!((maxima.g_has_3, maxima.g_has_4), (0.0, 0.0));
    }
}
