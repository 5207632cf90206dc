//! The trained weights as a `.safetensors` file, readable by PyTorch (`safetensors.torch`),
//! burn-store and numpy.
//!
//! burn's own recorders and burn-store read every tensor synchronously, which panics in the
//! browser; so the tensors are collected here, read back asynchronously, and handed to the
//! `safetensors` crate.

use burn::module::{ModuleVisitor, Param};
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
