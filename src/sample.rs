//! From a volume on the CPU to the tensors a training step eats.

use burn::prelude::*;

use crate::volume::LabelledVolume;

/// One training batch on the device: intensities `[batch, 1, z, y, x]` and the one-hot target
/// `[batch, classes, z, y, x]`.
#[derive(Clone, Debug)]
pub struct Batch {
    pub image: Tensor<5>,
    pub target: Tensor<5>,
}

/// Channel-first one-hot masks: `classes` planes of `labels.len()` voxels each.
///
/// Built on the CPU because burn's `one_hot` reads back synchronously, which panics in the
/// browser.
pub fn one_hot(labels: &[u8], classes: usize) -> Vec<f32> {
    let mut planes = vec![0.0; classes * labels.len()];
    for (voxel, &label) in labels.iter().enumerate() {
        let label = label as usize;
        assert!(
            label < classes,
            "label {label} is not below {classes} classes"
        );
        planes[label * labels.len() + voxel] = 1.0;
    }
    planes
}

/// The whole volume as a batch of one.
pub fn whole_volume_batch(volume: &LabelledVolume, device: &Device) -> Batch {
    let [nx, ny, nz] = volume.dims;
    let image = Tensor::from_data(
        TensorData::new(volume.image.clone(), [1, 1, nz, ny, nx]),
        device,
    );
    let target = Tensor::from_data(
        TensorData::new(
            one_hot(&volume.labels, volume.classes),
            [1, volume.classes, nz, ny, nx],
        ),
        device,
    );
    Batch { image, target }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_puts_each_voxel_in_its_class_plane() {
        let planes = one_hot(&[0, 2, 1, 2], 3);
        assert_eq!(
            planes,
            vec![
                1., 0., 0., 0., // class 0
                0., 0., 1., 0., // class 1
                0., 1., 0., 1., // class 2
            ]
        );
    }
}
