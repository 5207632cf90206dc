//! The trained weights as a `.safetensors` file, readable by PyTorch (`safetensors.torch`),
//! burn-store and numpy.
//!
//! burn's own recorders and burn-store read every tensor synchronously, which panics in the
//! browser; so the tensors are collected here, read back asynchronously, and handed to the
//! `safetensors` crate.

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use safetensors::{Dtype, tensor::TensorView};

use super::SegmentationNet;

/// Collects every float parameter under its module path. (burn's visitor reports the path
/// only through enter/exit calls, so the stack is kept here.)
#[derive(Default)]
struct Collect {
    path: Vec<String>,
    tensors: Vec<(String, Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        self.tensors.push((
            self.path.join("."),
            tensor.dims().to_vec(),
            tensor.reshape([-1]),
        ));
    }
}

/// Every float parameter of `net` under its module path (e.g. `Unet.down1.conv.weight`), as
/// little-endian f32, with `metadata` (e.g. the model kind and the settings) in the header.
pub async fn to_safetensors(
    net: &SegmentationNet,
    metadata: &[(&str, String)],
) -> Result<Vec<u8>, String> {
    let mut visitor = Collect::default();
    net.visit(&mut visitor);
    let mut bytes = Vec::with_capacity(visitor.tensors.len());
    for (_, _, tensor) in &visitor.tensors {
        let values = tensor
            .clone()
            .into_data_async()
            .await
            .map_err(|error| format!("Reading the weights failed: {error}"))?
            .convert::<f32>();
        bytes.push(values.as_bytes().to_vec());
    }
    let views: Vec<(String, TensorView<'_>)> = visitor
        .tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|error| format!("{name}: {error}"))
        })
        .collect::<Result<_, _>>()?;
    let metadata = metadata
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect();
    safetensors::serialize(views, Some(metadata)).map_err(|error| error.to_string())
}

/// `onto` with every float parameter replaced by `from`'s, which may live on another device or
/// backend (e.g. flex weights onto WebGPU, so both train from the same start). The values are
/// read back asynchronously (a direct cross-backend transfer reads synchronously, which panics
/// in the browser) and matched by module path; the nets must be of the same kind.
pub async fn copy_parameters(
    from: &SegmentationNet,
    onto: SegmentationNet,
) -> Result<SegmentationNet, String> {
    let mut source = Collect::default();
    from.visit(&mut source);
    let mut values = Vec::with_capacity(source.tensors.len());
    for (name, shape, tensor) in source.tensors {
        let data = tensor
            .into_data_async()
            .await
            .map_err(|error| format!("Reading {name} failed: {error}"))?;
        values.push((name, shape, data));
    }
    let mut replace = Replace {
        path: Vec::new(),
        values: values.into_iter(),
        error: None,
    };
    let copied = onto.map(&mut replace);
    match (replace.error, replace.values.next()) {
        (Some(error), _) => Err(error),
        (None, Some((name, _, _))) => Err(format!("{name} has no counterpart in the other net")),
        (None, None) => Ok(copied),
    }
}

/// Replaces each float parameter, in visiting order, by the next collected value, checking that
/// the paths and shapes agree.
struct Replace<I> {
    path: Vec<String>,
    values: I,
    error: Option<String>,
}

impl<I: Iterator<Item = (String, Vec<usize>, TensorData)>> ModuleMapper for Replace<I> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let here = self.path.join(".");
        let Some((name, shape, data)) = self.values.next() else {
            self.error
                .get_or_insert_with(|| format!("{here} has no counterpart in the other net"));
            return param;
        };
        let target = param.val();
        if name != here || shape != target.dims() {
            self.error.get_or_insert_with(|| {
                format!("{name} {shape:?} does not match {here} {:?}", target.dims())
            });
            return param;
        }
        let device = target.device();
        let tracked = target.is_require_grad();
        param.map(|_| {
            let copy = Tensor::<1>::from_data(data, &device).reshape(shape_of::<D>(&shape));
            if tracked { copy.require_grad() } else { copy }
        })
    }
}

fn shape_of<const D: usize>(dims: &[usize]) -> [usize; D] {
    let mut shape = [0; D];
    shape.copy_from_slice(dims);
    shape
}
