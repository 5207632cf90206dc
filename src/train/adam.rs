//! Adam, computed exactly as burn's `Adam` (β₁ 0.9, β₂ 0.999, ε 1e-5, its bias correction folded
//! into one factor), with moments that can go into a crash checkpoint.
//!
//! Why not burn's `ModuleOptimizer`: it gives its moments out only through `to_record`, which
//! reads every tensor synchronously (a panic in the browser) and keys them by parameter id, which
//! a net restored from a checkpoint does not keep. Here the moments are read back asynchronously
//! and named by the parameter's module path, which the restored net shares.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::model::weights::{f32_values, serialize_f32};
use crate::train::clip::add_sum_of_squares;

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// Adam's state: each parameter's [`Moments`], kept in the parameter's own shape (a reshape in
/// the update would keep burn's fusion from fusing it: ~15 launches a parameter instead of a few).
#[derive(Clone, Default)]
pub struct Adam {
    moments: HashMap<ParamId, Arc<dyn Any + Send + Sync>>,
}

/// One parameter's moments (without autodiff) and its step count.
#[derive(Clone)]
struct Moments<const D: usize> {
    first: Tensor<D>,
    second: Tensor<D>,
    steps: i32,
}

impl Adam {
    /// `module` moved one Adam step along `grads` at learning rate `lr`, and the L2 norm of the
    /// parameters it moved (`None` when `grads` holds none): a non-finite norm means the update
    /// broke the weights. Parameters without a gradient stay as they are, and so do their
    /// moments.
    ///
    /// The norm is taken here, each parameter's sum of squares right after its update, so that
    /// burn's fusion can fold it into the update's kernel; after all the updates it was a launch
    /// of its own per parameter, and a norm of every parameter, the U-Net's ten unused conv
    /// biases (which never change) included.
    pub fn step<M: Module>(
        &mut self,
        lr: f64,
        module: M,
        grads: GradientsParams,
    ) -> (M, Option<Tensor<1>>) {
        let mut update = Update {
            adam: self,
            grads,
            lr,
            squares: None,
        };
        let module = module.map(&mut update);
        (module, update.squares.map(Tensor::sqrt))
    }

    fn get<const D: usize>(&self, id: &ParamId) -> Option<&Moments<D>> {
        self.moments.get(id)?.downcast_ref::<Moments<D>>()
    }

    /// The moments as a `.safetensors` file, under each parameter's module path (`first.…`,
    /// `second.…`, and `steps.…` as one f32), read back in one asynchronous transfer.
    pub async fn to_safetensors<M: Module>(&self, module: &M) -> Result<Vec<u8>, String> {
        let mut held = Held {
            adam: self,
            path: Vec::new(),
            found: Vec::new(),
        };
        module.visit(&mut held);
        let found = held.found;
        let moments = found
            .iter()
            .flat_map(|(_, first, second, _)| [first.clone(), second.clone()])
            .collect();
        let data = crate::backend::read_all(moments)
            .await
            .map_err(|error| format!("Reading Adam's moments failed: {error}"))?;
        let mut named = Vec::with_capacity(3 * found.len());
        for ((path, _, _, steps), pair) in found.iter().zip(data.chunks(2)) {
            for (kind, data) in ["first", "second"].into_iter().zip(pair) {
                named.push((
                    format!("{kind}.{path}"),
                    vec![data.num_elements()],
                    data.as_bytes().to_vec(),
                ));
            }
            named.push((
                format!("steps.{path}"),
                vec![1],
                (*steps as f32).to_le_bytes().to_vec(),
            ));
        }
        serialize_f32(&named, &[])
    }

    /// The state [`Adam::to_safetensors`] wrote, for `module` (a net with the same module paths,
    /// e.g. restored from the same checkpoint) on `device`. A parameter the file does not name
    /// starts afresh; a moment whose size does not match its parameter's is refused.
    pub fn from_safetensors<M: Module>(
        bytes: &[u8],
        module: &M,
        device: &Device,
    ) -> Result<Self, String> {
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|error| format!("Adam's saved moments could not be read: {error}"))?;
        let mut load = Load {
            file,
            device,
            path: Vec::new(),
            adam: Adam::default(),
            error: None,
        };
        module.visit(&mut load);
        match load.error {
            Some(error) => Err(error),
            None => Ok(load.adam),
        }
    }
}

struct Update<'a> {
    adam: &'a mut Adam,
    grads: GradientsParams,
    lr: f64,
    /// Σ w² over the parameters updated so far.
    squares: Option<Tensor<1>>,
}

impl ModuleMapper for Update<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return param;
        };
        let id = param.id;
        let previous = self.adam.get::<D>(&id).cloned();
        let (adam, lr, squares) = (&mut *self.adam, self.lr, &mut self.squares);
        param.map(|tensor| {
            let (first, second, steps) = match previous {
                Some(m) => (
                    m.first.mul_scalar(BETA_1) + grad.clone().mul_scalar(1.0 - BETA_1),
                    m.second.mul_scalar(BETA_2) + grad.square().mul_scalar(1.0 - BETA_2),
                    m.steps + 1,
                ),
                None => (
                    grad.clone().mul_scalar(1.0 - BETA_1),
                    grad.square().mul_scalar(1.0 - BETA_2),
                    1,
                ),
            };
            // burn's form: m·√(1 − β₂ᵗ)/(1 − β₁ᵗ) / (√v + ε·√(1 − β₂ᵗ)).
            let correction_2 = (1.0 - BETA_2.powi(steps)).sqrt();
            let factor = correction_2 / (1.0 - BETA_1.powi(steps));
            let direction = first
                .clone()
                .mul_scalar(factor)
                .div(second.clone().sqrt().add_scalar(EPSILON * correction_2));
            adam.moments.insert(
                id,
                Arc::new(Moments {
                    first,
                    second,
                    steps,
                }),
            );
            let updated = tensor.clone().inner() - direction.mul_scalar(lr);
            add_sum_of_squares(squares, updated.clone());
            // Back into autodiff as it was: burn's `ParameterContext` does the same.
            let mut parameter = Tensor::from_inner(updated);
            if let Some(strategy) = tensor.gradient_checkpointing_strategy() {
                parameter = parameter.with_gradient_checkpointing_strategy(strategy);
            }
            if tensor.is_require_grad() {
                parameter = parameter.require_grad();
            }
            parameter
        })
    }
}

/// Every parameter's moments, flattened, under its module path, in visiting order.
struct Held<'a> {
    adam: &'a Adam,
    path: Vec<String>,
    found: Vec<(String, Tensor<1>, Tensor<1>, i32)>,
}

impl ModuleVisitor for Held<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(moments) = self.adam.get::<D>(&param.id) {
            self.found.push((
                self.path.join("."),
                moments.first.clone().reshape([-1]),
                moments.second.clone().reshape([-1]),
                moments.steps,
            ));
        }
    }
}

/// Each parameter's moments from a file [`Adam::to_safetensors`] wrote.
struct Load<'a, 'f> {
    file: safetensors::SafeTensors<'f>,
    device: &'a Device,
    path: Vec<String>,
    adam: Adam,
    error: Option<String>,
}

impl Load<'_, '_> {
    fn floats(&self, name: &str) -> Option<Vec<f32>> {
        f32_values(&self.file.tensor(name).ok()?)
    }
}

impl ModuleVisitor for Load<'_, '_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        let (Some(first), Some(second), Some(steps)) = (
            self.floats(&format!("first.{path}")),
            self.floats(&format!("second.{path}")),
            self.floats(&format!("steps.{path}")),
        ) else {
            return;
        };
        let dims = param.val().dims();
        let size: usize = dims.iter().product();
        if first.len() != size || second.len() != size || steps.len() != 1 {
            self.error.get_or_insert_with(|| {
                format!("Adam's saved moments for {path} do not fit its {size} values.")
            });
            return;
        }
        let tensor =
            |values: Vec<f32>| Tensor::<D>::from_data(TensorData::new(values, dims), self.device);
        self.adam.moments.insert(
            param.id,
            Arc::new(Moments {
                first: tensor(first),
                second: tensor(second),
                steps: steps[0] as i32,
            }),
        );
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use burn::optim::AdamConfig;
    use burn::tensor::Distribution;

    use super::*;

    #[derive(Module, Debug)]
    struct Three {
        a: Param<Tensor<2>>,
        b: Param<Tensor<1>>,
        /// Not in the loss: no gradient.
        unused: Param<Tensor<1>>,
    }

    fn values<M: Module>(module: &M) -> Vec<f32> {
        struct All(Vec<f32>);
        impl ModuleVisitor for All {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0
                    .extend(param.val().into_data().iter::<f32>().collect::<Vec<_>>());
            }
        }
        let mut all = All(Vec::new());
        module.visit(&mut all);
        all.0
    }

    fn gradients(module: &Three, x: &Tensor<2>, y: &Tensor<1>) -> GradientsParams {
        let loss =
            (module.a.val() * x.clone()).sum() + (module.b.val().powi_scalar(3) * y.clone()).sum();
        GradientsParams::from_grads(loss.backward(), module)
    }

    /// Step for step, burn's `Adam` and this one give the same weights, and a parameter without
    /// a gradient stays.
    #[test]
    fn steps_as_burns_adam_does() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let random = |shape: &[usize]| {
            Tensor::<1>::random(
                [shape.iter().product::<usize>()],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
        };
        let start = Three {
            a: Param::from_tensor(random(&[3, 4]).reshape([3, 4]).require_grad()),
            b: Param::from_tensor(random(&[5]).require_grad()),
            unused: Param::from_tensor(random(&[2]).require_grad()),
        };
        let x = random(&[3, 4]).reshape([3, 4]).inner();
        let y = random(&[5]).inner();
        let (x, y) = (Tensor::from_inner(x), Tensor::from_inner(y));

        let mut burns = AdamConfig::new().init();
        let mut ours = Adam::default();
        let (mut theirs_net, mut our_net) = (start.clone(), start.clone());
        for step in 1..=5 {
            let lr = 0.01 * step as f64;
            theirs_net = burns.step(lr, theirs_net.clone(), gradients(&theirs_net, &x, &y));
            let (net, moved_norm) = ours.step(lr, our_net.clone(), gradients(&our_net, &x, &y));
            our_net = net;
            let (theirs, mine) = (values(&theirs_net), values(&our_net));
            // The norm `step` returns is of the parameters it moved: a and b, not `unused`.
            let moved_norm = moved_norm.expect("a and b moved").into_scalar::<f32>();
            let expected = mine[..17].iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!(
                (moved_norm - expected).abs() <= 1e-5 * expected,
                "step {step}: the moved weights' norm {moved_norm}, expected {expected}"
            );
            for (i, (t, m)) in theirs.iter().zip(&mine).enumerate() {
                assert!(
                    (t - m).abs() <= 1e-6,
                    "step {step}, value {i}: burn {t}, ours {m}"
                );
            }
            assert_ne!(
                values(&start)[..17],
                mine[..17],
                "step {step} moved nothing"
            );
            assert_eq!(
                values(&start)[17..],
                mine[17..],
                "a parameter without gradient moved"
            );
        }

        // The moments survive a round trip through their file, and a net whose parameters do
        // not fit them gets a sentence.
        let bytes = pollster::block_on(ours.to_safetensors(&our_net)).unwrap();
        let inner = device.clone().inner();
        let back = Adam::from_safetensors(&bytes, &our_net, &inner).unwrap();
        let again = pollster::block_on(back.to_safetensors(&our_net)).unwrap();
        assert!(
            bytes == again,
            "the moments changed in a round trip through their file"
        );
        let other = Three {
            a: Param::from_tensor(random(&[4]).reshape([2, 2])),
            ..start
        };
        let refused = Adam::from_safetensors(&bytes, &other, &inner).err();
        assert_eq!(
            refused.as_deref(),
            Some("Adam's saved moments for a do not fit its 4 values.")
        );
    }
}
