//! What a `.safetensors` weights file holds: gdl-lab's own (its metadata names the net, the
//! classes, the channels and the label values) or one saved from PyTorch
//! (`safetensors.torch.save_file(net.state_dict(), …)`, keys such as `conv1.weight` and no
//! metadata), where the net, its input channels and its classes are read from the keys and the
//! shapes.

use std::collections::{BTreeSet, HashMap};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use safetensors::SafeTensors;

use super::ModelKind;
use super::weights::pytorch_key;
use crate::volume::RegionMap;

/// The net a weights file is for.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsInfo {
    pub kind: ModelKind,
    pub in_channels: usize,
    /// The label map's classes: the net's outputs, or for a region net the classes its three
    /// regions are made of.
    pub classes: usize,
    /// A region net's tissue of each class (its outputs are WT, TC and ET), when the file says
    /// so (`targets=regions` in gdl-lab's metadata).
    pub regions: Option<RegionMap>,
    /// The input channels by modality (`t1`, `t1ce`, …) when the file names them.
    pub channels: Vec<String>,
    /// The file's label value of each class, when the file says (a net saved from PyTorch
    /// does not).
    pub label_values: Option<Vec<i64>>,
    /// Keys under PyTorch's names (`conv1.weight`) rather than burn's module paths.
    pub pytorch_names: bool,
    /// Training steps behind the weights, when the file says.
    pub steps: Option<usize>,
}

impl WeightsInfo {
    /// "a unet for 4 channels (t1, t1ce, t2, flair) and 4 classes".
    pub fn describe(&self) -> String {
        let channels = if self.channels.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.channels.join(", "))
        };
        let outputs = match self.regions {
            Some(_) => format!(
                "the regions WT, TC and ET of {} classes (a sigmoid each)",
                self.classes
            ),
            None => format!("{} classes", self.classes),
        };
        format!(
            "a {} for {} channel{}{channels} and {outputs}",
            self.kind.name(),
            self.in_channels,
            if self.in_channels == 1 { "" } else { "s" },
        )
    }
}

/// Every float parameter's module path and shape, in visiting order.
#[derive(Default)]
struct Shapes {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl ModuleVisitor for Shapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.shapes
            .push((self.path.join("."), param.val().dims().to_vec()));
    }
}

/// The module paths and shapes of a `kind` net for `in_channels` and `classes`.
pub fn parameter_shapes(
    kind: ModelKind,
    in_channels: usize,
    classes: usize,
    device: &Device,
) -> Vec<(String, Vec<usize>)> {
    let mut shapes = Shapes::default();
    kind.init_for(in_channels, classes, device)
        .visit(&mut shapes);
    shapes.shapes
}

/// What `bytes` (a `.safetensors` file) holds, or a sentence: not a safetensors file, no net of
/// gdl-lab's, or a net whose shapes are not those of gdl-lab's nets (naming the first tensor
/// that differs, with both shapes). `device` builds the candidate nets to compare with.
pub fn describe_weights(bytes: &[u8], device: &Device) -> Result<WeightsInfo, String> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|error| format!("This is not a .safetensors weights file ({error})."))?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|error| format!("The weights file is damaged ({error})."))?;
    let metadata: HashMap<String, String> = header
        .metadata()
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let keys: BTreeSet<&str> = file.names().into_iter().collect();
    if keys.is_empty() {
        return Err("The weights file holds no tensor.".into());
    }
    let named_kind = metadata
        .get("model")
        .and_then(|name| ModelKind::ALL.into_iter().find(|k| k.name() == name));
    // The net whose keys the file has, under burn's paths or PyTorch's names.
    // (score, kind, PyTorch's names, the kind's keys and shapes under those names)
    type Candidate = (usize, ModelKind, bool, Vec<(String, Vec<usize>)>);
    let mut best: Option<Candidate> = None;
    for kind in ModelKind::ALL {
        let shapes = parameter_shapes(kind, 1, 2, device);
        for pytorch in [false, true] {
            let name = |path: &str| {
                if pytorch {
                    pytorch_key(path)
                } else {
                    path.to_string()
                }
            };
            let wanted: BTreeSet<String> = shapes.iter().map(|(p, _)| name(p)).collect();
            let shared = wanted.iter().filter(|k| keys.contains(k.as_str())).count();
            let exact = shared == wanted.len() && wanted.len() == keys.len();
            let preferred = named_kind.is_none_or(|named| named == kind);
            let score = shared * 2 + usize::from(exact && preferred);
            if best.as_ref().is_none_or(|(s, ..)| score > *s) {
                let named_shapes = shapes.iter().map(|(p, s)| (name(p), s.clone())).collect();
                best = Some((score, kind, pytorch, named_shapes));
            }
        }
    }
    let (_, kind, pytorch_names, shapes) = best.expect("three nets compared");
    if let Some((missing, _)) = shapes.iter().find(|(key, _)| !keys.contains(key.as_str())) {
        return Err(format!(
            "The weights file is not one of gdl-lab's nets: it has no {missing}, which the \
             closest, a {}, needs (its first tensors: {}).",
            kind.name(),
            keys.iter().take(3).copied().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(extra) = keys
        .iter()
        .find(|key| !shapes.iter().any(|(k, _)| k == *key))
    {
        return Err(format!(
            "The weights file has {extra}, which a {} does not have.",
            kind.name()
        ));
    }
    // The first convolution's input channels, the last one's outputs.
    let shape_of = |key: &str| {
        file.tensor(key)
            .map(|t| t.shape().to_vec())
            .unwrap_or_default()
    };
    let first = &shapes[0].0;
    let last = &shapes
        .iter()
        .rev()
        .find(|(_, shape)| shape.len() == 5)
        .expect("every net has a convolution")
        .0;
    let in_channels = shape_of(first).get(1).copied().unwrap_or(0);
    let outputs = shape_of(last).first().copied().unwrap_or(0);
    let regions = match metadata.get("targets").map(String::as_str) {
        Some("regions") => Some(
            RegionMap::from_metadata(metadata.get("region_tissues").map_or("", String::as_str))
                .map_err(|error| {
                    format!("The weights file says it is a region net, but {error}.")
                })?,
        ),
        _ => None,
    };
    if regions.is_some() && outputs != crate::volume::REGION_NAMES.len() {
        return Err(format!(
            "The weights file says it is a region net (WT, TC, ET), but {last} has {outputs} \
             outputs."
        ));
    }
    let classes = regions.as_ref().map_or(outputs, RegionMap::classes);
    if !(1..=16).contains(&in_channels) || !(2..=255).contains(&outputs) {
        return Err(format!(
            "The weights file's {first} is {:?} and {last} is {:?}: not a net for 1–16 channels \
             and 2–255 classes.",
            shape_of(first),
            shape_of(last)
        ));
    }
    let name = |path: &str| {
        if pytorch_names {
            pytorch_key(path)
        } else {
            path.to_string()
        }
    };
    for (path, wanted) in parameter_shapes(kind, in_channels, outputs, device) {
        let key = name(&path);
        let found = shape_of(&key);
        if found != wanted {
            return Err(format!(
                "The weights file's {key} is {found:?}; a {} for {in_channels} channels and \
                 {outputs} outputs has {wanted:?}.",
                kind.name()
            ));
        }
    }
    let list = |key: &str| -> Vec<String> {
        metadata
            .get(key)
            .map(|value| {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let channels = list("channels");
    let label_values: Vec<i64> = list("label_values")
        .iter()
        .filter_map(|v| v.parse().ok())
        .collect();
    Ok(WeightsInfo {
        kind,
        in_channels,
        classes,
        regions,
        channels: if channels.len() == in_channels {
            channels
        } else {
            Vec::new()
        },
        label_values: (label_values.len() == classes).then_some(label_values),
        pytorch_names,
        steps: metadata.get("steps").and_then(|s| s.parse().ok()),
    })
}
