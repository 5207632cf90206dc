//! A scan given to a trained net (`gdl-lab predict`, the page's "Apply to a scan"): its images
//! matched to the net's input channels by modality, and its label map when it brings one, read
//! with the label values the net was trained with.

use super::LabelledVolume;
use super::files::match_channels;
use super::labels::LabelMapping;
use super::nifti::Volume;

/// The scan, ready for the net.
#[derive(Clone, Debug)]
pub struct NewScan {
    /// The first image's geometry and header (the prediction is written in it); no voxels.
    pub image: Volume,
    /// The images as the net's channels, in its order; the labels as its classes (all 0 when
    /// the scan brought no label map).
    pub volume: LabelledVolume,
    pub labelled: bool,
    /// The images' names, in channel order.
    pub names: Vec<String>,
    pub warnings: Vec<String>,
}

/// `images` (name, volume) stacked in the order of the net's `channels` (modality keys; a
/// sentence naming the first one missing), with `label` read by `mapping`'s values.
pub fn new_scan(
    images: Vec<(String, Volume)>,
    label: Option<(String, Volume)>,
    channels: &[String],
    in_channels: usize,
    mapping: &LabelMapping,
) -> Result<NewScan, String> {
    let names: Vec<String> = images.iter().map(|(name, _)| name.clone()).collect();
    if names.is_empty() {
        return Err("Give the scan's images (one per channel the net reads).".into());
    }
    let order = match_channels(&names, channels, in_channels)?;
    let mut images: Vec<Option<(String, Volume)>> = images.into_iter().map(Some).collect();
    let chosen: Vec<(String, Volume)> = order
        .iter()
        .map(|&i| images[i].take().expect("each image once"))
        .collect();
    let (first_name, first) = &chosen[0];
    let mut warnings = Vec::new();
    for (name, volume) in &chosen {
        if volume.dims != first.dims {
            return Err(format!(
                "{name} is {:?} voxels but {first_name} is {:?}; a scan's images share one grid.",
                volume.dims, first.dims
            ));
        }
        warnings.extend(volume.warnings.iter().map(|w| format!("{name}: {w}")));
    }
    let voxels = first.data.len();
    let labels = match &label {
        Some((name, label)) => {
            if label.dims != first.dims {
                return Err(format!(
                    "{name} is {:?} voxels but {first_name} is {:?}; they must match.",
                    label.dims, first.dims
                ));
            }
            Some(
                mapping
                    .classes_of(label)
                    .map_err(|error| format!("{name}: {error}"))?,
            )
        }
        None => None,
    };
    let geometry = Volume {
        dims: first.dims,
        spacing: first.spacing,
        affine: first.affine,
        data: Vec::new(),
        header: first.header.clone(),
        warnings: Vec::new(),
    };
    let names: Vec<String> = chosen.iter().map(|(name, _)| name.clone()).collect();
    let mut image = Vec::with_capacity(voxels * chosen.len());
    for (_, volume) in chosen {
        image.extend_from_slice(&volume.data);
    }
    Ok(NewScan {
        volume: LabelledVolume {
            dims: geometry.dims,
            image,
            channels: names.len(),
            labels: labels.clone().unwrap_or_else(|| vec![0; voxels]),
            classes: mapping.values.len(),
        },
        image: geometry,
        labelled: labels.is_some(),
        names,
        warnings,
    })
}
