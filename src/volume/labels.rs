//! Label maps: validated integers, and the mapping from the file's labels to consecutive
//! classes (BraTS {0, 1, 2, 4} → {0, 1, 2, 3}) that the page shows.

use serde::{Deserialize, Serialize};

use super::LabelledVolume;
use super::nifti::Volume;

/// The two BraTS label conventions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BratsConvention {
    /// 1 necrotic core, 2 oedema, 4 enhancing tumour.
    Brats2021,
    /// 1 necrotic core, 2 oedema, 3 enhancing tumour.
    Brats2023,
}

impl BratsConvention {
    pub fn describe(self) -> &'static str {
        match self {
            BratsConvention::Brats2021 => {
                "The labels follow BraTS 2021 (1 necrotic core, 2 oedema, 4 enhancing tumour)."
            }
            BratsConvention::Brats2023 => {
                "The labels follow BraTS 2023 (1 necrotic core, 2 oedema, 3 enhancing tumour)."
            }
        }
    }
}

/// Which label value in the file became which class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMapping {
    /// `values[class]` is the label value in the file; class 0 is the smallest (background).
    pub values: Vec<i64>,
}

impl LabelMapping {
    pub fn classes(&self) -> usize {
        self.values.len()
    }

    /// True when the labels were already 0, 1, 2, … (nothing was renumbered).
    pub fn is_identity(&self) -> bool {
        self.values.iter().enumerate().all(|(i, &v)| v == i as i64)
    }

    /// Classes back to the file's own label values (BraTS class 3 → 4, FreeSurfer's 2035 stays
    /// 2035), for writing a prediction beside the input. Loading keeps every value in 0..=65535.
    pub fn file_values(&self, classes: &[u8]) -> Vec<u16> {
        classes
            .iter()
            .map(|&class| self.values[class as usize].clamp(0, u16::MAX as i64) as u16)
            .collect()
    }

    /// The BraTS convention these labels follow, if any: {0, 1, 2, 4} is BraTS 2021 (4 =
    /// enhancing tumour); {0, 1, 2, 3} is BraTS 2023 (3 = enhancing) when a file name says
    /// BraTS, since plain 0–3 labels are common elsewhere.
    pub fn brats_convention(&self, file_names: &[&str]) -> Option<BratsConvention> {
        let named = file_names
            .iter()
            .any(|name| name.to_lowercase().contains("brats"));
        let only = |allowed: &[i64]| self.values.iter().all(|v| allowed.contains(v));
        if only(&[0, 1, 2, 4]) && self.values.contains(&4) {
            Some(BratsConvention::Brats2021)
        } else if named && only(&[0, 1, 2, 3]) {
            Some(BratsConvention::Brats2023)
        } else {
            None
        }
    }

    /// A name per class for legends: BraTS's tissue names when a convention is recognised,
    /// else "label 7".
    pub fn class_names(&self, convention: Option<BratsConvention>) -> Vec<String> {
        self.values
            .iter()
            .map(|&value| match (convention, value) {
                (Some(_), 0) => "background".to_string(),
                (Some(_), 1) => "necrotic core (label 1)".to_string(),
                (Some(_), 2) => "oedema (label 2)".to_string(),
                (Some(BratsConvention::Brats2021), 4) | (Some(BratsConvention::Brats2023), 3) => {
                    format!("enhancing tumour (label {value})")
                }
                _ => format!("label {value}"),
            })
            .collect()
    }

    /// A label map's voxels as these classes (by their file label values); a sentence naming a
    /// value that is none of them.
    pub fn classes_of(&self, label: &Volume) -> Result<Vec<u8>, String> {
        label
            .data
            .iter()
            .map(|&value| {
                self.values
                    .iter()
                    .position(|&v| value.fract() == 0.0 && v == value as i64)
                    .map(|class| class as u8)
                    .ok_or_else(|| {
                        format!(
                            "it holds the label {value}, which the net has no class for (its \
                             label values: {}).",
                            self.values
                                .iter()
                                .map(i64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
            })
            .collect()
    }

    /// "4 → class 3", for the labels that moved.
    pub fn describe(&self) -> Vec<String> {
        self.values
            .iter()
            .enumerate()
            .map(|(class, value)| format!("label {value} → class {class}"))
            .collect()
    }
}

/// Checks that `labels` fits `image` and holds non-negative integers, and renumbers its values
/// to consecutive classes. Returns the training volume and the mapping.
pub fn pair_image_and_labels(
    image: &Volume,
    labels: &Volume,
) -> Result<(LabelledVolume, LabelMapping), String> {
    let (classes, mapping) = label_classes(image, labels)?;
    let volume = LabelledVolume {
        dims: image.dims,
        image: image.data.clone(),
        channels: 1,
        labels: classes,
        classes: mapping.values.len(),
    };
    Ok((volume, mapping))
}

/// [`pair_image_and_labels`] that takes the image's intensities rather than copying them (a
/// full-size modality is 36 MB as f32); `image.data` is left empty, also on failure.
pub fn pair_image_and_labels_moving(
    image: &mut Volume,
    labels: &Volume,
) -> Result<(LabelledVolume, LabelMapping), String> {
    let data = std::mem::take(&mut image.data);
    let (classes, mapping) = label_classes(image, labels)?;
    let volume = LabelledVolume {
        dims: image.dims,
        image: data,
        channels: 1,
        labels: classes,
        classes: mapping.values.len(),
    };
    Ok((volume, mapping))
}

/// The label map's voxels as consecutive classes, and the mapping back to its values; a
/// sentence when it does not fit `image` or holds no labels.
fn label_classes(image: &Volume, labels: &Volume) -> Result<(Vec<u8>, LabelMapping), String> {
    if image.dims != labels.dims {
        return Err(format!(
            "The label map is {}×{}×{} voxels but the image is {}×{}×{}; they must match.",
            labels.dims[0],
            labels.dims[1],
            labels.dims[2],
            image.dims[0],
            image.dims[1],
            image.dims[2]
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, &value) in labels.data.iter().enumerate() {
        if value < 0.0 || value.fract() != 0.0 {
            return Err(format!(
                "The label map holds {value} at voxel {index}; labels must be non-negative \
                 integers (is this an image rather than a label map?)."
            ));
        }
        if value > u16::MAX as f32 {
            return Err(format!(
                "The label map holds {value} at voxel {index}; labels above 65535 cannot be \
                 written back into a label map (NIfTI uint16)."
            ));
        }
        seen.insert(value as i64);
        if seen.len() > 255 {
            return Err(
                "The label map has more than 255 distinct labels; is it an image rather than a \
                 label map?"
                    .into(),
            );
        }
    }
    if !seen.contains(&0) {
        seen.insert(0);
    }
    let values: Vec<i64> = seen.into_iter().collect();
    if values.len() < 2 {
        return Err("The label map holds only background (0); there is nothing to segment.".into());
    }
    let class_of = |value: f32| values.binary_search(&(value as i64)).expect("seen") as u8;
    let classes = labels.data.iter().map(|&v| class_of(v)).collect();
    Ok((classes, LabelMapping { values }))
}
