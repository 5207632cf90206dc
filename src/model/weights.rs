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
    to_safetensors_named(net, metadata, str::to_string).await
}

/// PyTorch's name for a parameter of gdl-lab's nets, so that the seed's modules (and
/// `gdl_lab_model.py`'s U-Net) load the file with `strict=True`: the net's variant dropped
/// (`Simple.conv1.weight` → `conv1.weight`), InstanceNorm's `gamma`/`beta` as
/// `weight`/`bias`. Arrays keep burn's index (`encode1.0.conv.weight`), as `nn.ModuleList`.
pub fn pytorch_key(path: &str) -> String {
    let without_variant = path.split_once('.').map_or(path, |(_, rest)| rest);
    if let Some(stem) = without_variant.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = without_variant.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        without_variant.to_string()
    }
}

/// [`to_safetensors`] with each key as `name` makes it (e.g. [`pytorch_key`]).
pub async fn to_safetensors_named(
    net: &SegmentationNet,
    metadata: &[(&str, String)],
    name: impl Fn(&str) -> String,
) -> Result<Vec<u8>, String> {
    let mut visitor = Collect::default();
    net.visit(&mut visitor);
    let (names, tensors): (Vec<_>, Vec<_>) = visitor
        .tensors
        .into_iter()
        .map(|(path, shape, tensor)| ((name(&path), shape), tensor))
        .unzip();
    let data = crate::backend::read_all(tensors)
        .await
        .map_err(|error| format!("Reading the weights failed: {error}"))?;
    let named = names
        .into_iter()
        .zip(data)
        .map(|((name, shape), data)| (name, shape, data.convert::<f32>().as_bytes().to_vec()))
        .collect::<Vec<_>>();
    serialize_f32(&named, metadata)
}

/// A `.safetensors` file of little-endian f32 tensors, each `(name, shape, bytes)`, with
/// `metadata` in its header.
pub fn serialize_f32(
    named: &[(String, Vec<usize>, Vec<u8>)],
    metadata: &[(&str, String)],
) -> Result<Vec<u8>, String> {
    let views = named
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| format!("{name}: {error}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = metadata
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect();
    safetensors::serialize(views, Some(metadata)).map_err(|error| error.to_string())
}

/// The values of a `.safetensors` tensor stored as little-endian f32 (`None` for another type).
pub fn f32_values(view: &TensorView<'_>) -> Option<Vec<f32>> {
    (view.dtype() == Dtype::F32).then(|| {
        view.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
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
    let (names, tensors): (Vec<_>, Vec<_>) = source
        .tensors
        .into_iter()
        .map(|(name, shape, tensor)| ((name, shape), tensor))
        .unzip();
    let data = crate::backend::read_all(tensors)
        .await
        .map_err(|error| format!("Reading the weights failed: {error}"))?;
    let values: Vec<_> = names
        .into_iter()
        .zip(data)
        .map(|((name, shape), data)| (name, shape, data))
        .collect();
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

/// `onto` with every float parameter replaced by the tensor of the same module path in a
/// `.safetensors` file that [`to_safetensors`] wrote (a checkpoint the page kept), or of its
/// PyTorch name ([`pytorch_key`]: the export for PyTorch, or a net saved from PyTorch). A
/// sentence naming the first tensor that is missing or differs (with both shapes), and nothing
/// loaded, when the file is for another net.
pub fn from_safetensors(bytes: &[u8], onto: SegmentationNet) -> Result<SegmentationNet, String> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|error| format!("The saved weights could not be read: {error}"))?;
    let mut wanted = Collect::default();
    onto.visit(&mut wanted);
    let mut values = Vec::with_capacity(wanted.tensors.len());
    for (name, shape, _) in wanted.tensors {
        let torch = pytorch_key(&name);
        let (key, view) = match (file.tensor(&name), file.tensor(&torch)) {
            (Ok(view), _) => (&name, view),
            (_, Ok(view)) => (&torch, view),
            _ => {
                return Err(format!(
                    "The weights have no {torch} ({name}), which this net needs."
                ));
            }
        };
        let floats = f32_values(&view)
            .filter(|_| view.shape() == shape.as_slice())
            .ok_or_else(|| {
                format!(
                    "The weights' {key} is {:?} {:?}; this net needs F32 {shape:?}.",
                    view.dtype(),
                    view.shape()
                )
            })?;
        let count = floats.len();
        values.push((name, shape, TensorData::new(floats, [count])));
    }
    let mut replace = Replace {
        path: Vec::new(),
        values: values.into_iter(),
        error: None,
    };
    let loaded = onto.map(&mut replace);
    match replace.error {
        Some(error) => Err(error),
        None => Ok(loaded),
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
