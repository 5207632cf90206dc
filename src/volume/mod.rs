//! Volumes: NIfTI files, the phantom, and the scan with its label map as flat voxel arrays.
//!
//! Voxels are stored x-fastest: index = x + nx·(y + ny·z), the order NIfTI files use.

pub mod boxes;
pub mod cases;
pub mod dataset;
pub mod files;
pub mod labels;
pub mod new_scan;
pub mod nifti;
pub mod phantom;
pub mod preprocess;
pub mod reading;
pub mod regions;
pub mod source;
pub mod synthetic;

pub use dataset::{Case, Dataset};
pub use files::{LoadedScan, NamedFile, demo_scan, load_case, load_dropped};
pub use labels::{BratsConvention, LabelMapping, pair_image_and_labels};
pub use nifti::{Limits, ReadError, Volume, read_nifti, read_nifti_pair, write_label_map};
pub use phantom::{PhantomConfig, phantom};
pub use regions::{REGION_NAMES, REGION_SHORT, RegionMap, Targets, Tissue};
pub use source::ImageSource;
pub use synthetic::{SyntheticConfig, synthetic_volume};

/// A 3D scan (one or more co-registered channels, e.g. MRI modalities) with its label map, on
/// the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledVolume {
    /// Size along x, y, z.
    pub dims: [usize; 3],
    /// Intensities: `channels` planes of `dims` voxels one after the other, each x-fastest (the
    /// layout of one sample of a `[batch, channels, z, y, x]` tensor).
    pub image: Vec<f32>,
    /// Input channels (modalities) in `image`.
    pub channels: usize,
    /// Class of each voxel, `0..classes`, x-fastest.
    pub labels: Vec<u8>,
    /// Number of classes, background included.
    pub classes: usize,
}

impl LabelledVolume {
    pub fn voxel_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// The intensities of channel `index`.
    pub fn channel(&self, index: usize) -> &[f32] {
        let voxels = self.voxel_count();
        &self.image[index * voxels..(index + 1) * voxels]
    }

    /// Each channel's intensities, in order.
    pub fn channel_planes(&self) -> std::slice::Chunks<'_, f32> {
        self.image.chunks(self.voxel_count().max(1))
    }

    /// How many voxels each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }
}
