//! From a volume on the CPU to the tensors a training step eats: normalisation, one-hot targets,
//! random patches and the sliding windows of whole-volume prediction.
//!
//! Tensors are `[batch, channels, z, y, x]`; volumes are x-fastest, so a volume of dims
//! `[nx, ny, nz]` is the tensor `[1, 1, nz, ny, nx]` without reordering.

use burn::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::volume::LabelledVolume;
use crate::volume::boxes::crop;

/// One training batch on the device: intensities `[batch, 1, z, y, x]` and the one-hot target
/// `[batch, classes, z, y, x]`.
#[derive(Clone, Debug)]
pub struct Batch {
    pub image: Tensor<5>,
    pub target: Tensor<5>,
}

/// Channel-first one-hot masks: `classes` planes of `labels.len()` voxels each, on the CPU (the
/// reference values of the tests; training makes them on the device, [`one_hot_on_device`]).
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

/// Channel-first one-hot masks `[B, classes, z, y, x]` of `labels` `[B, 1, z, y, x]` (class
/// numbers as floats), made on the labels' device: a step uploads the label patch, 1/classes of
/// the bytes of its masks (BENCHMARKS.md, "What a step uploads"). Not burn's `one_hot`, which
/// reads back synchronously (a panic in the browser), and not a comparison, whose boolean
/// result took a kernel of its own and a cast: `max(0, 1 − |label − class|)` is 1 for the
/// voxel's class and 0 for every other (the labels are whole numbers, exact in f32), in float
/// operations that burn's fusion folds into the kernels that read the masks.
pub fn one_hot_on_device(labels: Tensor<5>, classes: usize) -> Tensor<5> {
    let [batch, _, z, y, x] = labels.dims();
    let numbers: Vec<f32> = (0..classes).map(|class| class as f32).collect();
    let numbers = Tensor::<1>::from_data(TensorData::new(numbers, [classes]), &labels.device())
        .reshape([1, classes, 1, 1, 1]);
    let shape = [batch, classes, z, y, x];
    (labels.expand(shape) - numbers.expand(shape))
        .abs()
        .neg()
        .add_scalar(1.0)
        .clamp_min(0.0)
}

/// Z-score normalisation over the non-zero voxels (the head), as nnU-Net does for MRI; the
/// zero background stays 0. A constant image becomes all zeros.
pub fn normalise_nonzero(image: &mut [f32]) {
    // Two passes in f64 over the voxels themselves: no second copy of a large scan.
    let inside = || image.iter().filter(|&&v| v != 0.0).map(|&v| v as f64);
    let (count, total) = inside().fold((0usize, 0.0f64), |(n, sum), v| (n + 1, sum + v));
    if count == 0 {
        return;
    }
    let mean = total / count as f64;
    let std = (inside().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count as f64).sqrt();
    let scale = if std > 0.0 { 1.0 / std } else { 0.0 };
    for value in image.iter_mut().filter(|v| **v != 0.0) {
        *value = ((*value as f64 - mean) * scale) as f32;
    }
}

/// Random cubic patches, a share of them centred on foreground voxels (as nnU-Net does), so
/// that rare classes are seen often. Deterministic from its seed, and can go back to any
/// earlier position ([`PatchSampler::seek`]).
pub struct PatchSampler {
    edge: usize,
    foreground_fraction: f64,
    foreground: Vec<usize>,
    dims: [usize; 3],
    seed: u64,
    rng: StdRng,
    /// Patches drawn so far.
    drawn: usize,
}

impl PatchSampler {
    pub fn new(volume: &LabelledVolume, edge: usize, foreground_fraction: f64, seed: u64) -> Self {
        Self {
            edge,
            foreground_fraction,
            foreground: (0..volume.labels.len())
                .filter(|&i| volume.labels[i] != 0)
                .collect(),
            dims: volume.dims,
            seed,
            rng: StdRng::seed_from_u64(seed),
            drawn: 0,
        }
    }

    /// Patches drawn so far: the position [`PatchSampler::seek`] returns to.
    pub fn position(&self) -> usize {
        self.drawn
    }

    /// Continues as if exactly `drawn` patches had been drawn: back after a failed step, or
    /// forward to where a restored checkpoint left off. (rand's `StdRng` cannot be cloned, and
    /// replaying the draws costs microseconds: no tensors are made.)
    pub fn seek(&mut self, drawn: usize) {
        if drawn < self.drawn {
            self.rng = StdRng::seed_from_u64(self.seed);
            self.drawn = 0;
        }
        while self.drawn < drawn {
            self.next_origin(self.dims);
        }
    }

    /// The origin (x, y, z) of the next patch.
    fn next_origin(&mut self, dims: [usize; 3]) -> [isize; 3] {
        self.drawn += 1;
        let edge = self.edge as isize;
        if dims.iter().all(|&d| d as isize <= edge) {
            // The whole volume fits in one patch: nothing to sample.
            return dims.map(|d| (d as isize - edge) / 2);
        }
        let on_foreground =
            !self.foreground.is_empty() && self.rng.random_bool(self.foreground_fraction);
        if on_foreground {
            let voxel = self.foreground[self.rng.random_range(0..self.foreground.len())];
            let centre = [
                voxel % dims[0],
                (voxel / dims[0]) % dims[1],
                voxel / (dims[0] * dims[1]),
            ];
            centre.map(|c| c as isize - edge / 2)
        } else {
            // Anywhere the patch fits; centred when the volume is smaller than the patch.
            [0, 1, 2].map(|axis| {
                let room = dims[axis] as isize - edge;
                if room > 0 {
                    self.rng.random_range(0..=room as i64) as isize
                } else {
                    room / 2
                }
            })
        }
    }

    /// `batch` patches of the volume, with their one-hot targets, on `device`.
    pub fn sample(&mut self, volume: &LabelledVolume, batch: usize, device: &Device) -> Batch {
        let edge = self.edge;
        let mut image = Vec::with_capacity(batch * edge.pow(3));
        let mut labels = Vec::with_capacity(batch * edge.pow(3));
        for _ in 0..batch {
            let origin = self.next_origin(volume.dims);
            image.extend(crop(&volume.image, volume.dims, origin, [edge; 3], 0.0));
            let patch = crop(&volume.labels, volume.dims, origin, [edge; 3], 0);
            labels.extend(patch.into_iter().map(f32::from));
        }
        let shape = [batch, 1, edge, edge, edge];
        Batch {
            image: Tensor::from_data(TensorData::new(image, shape), device),
            target: one_hot_on_device(
                Tensor::from_data(TensorData::new(labels, shape), device),
                volume.classes,
            ),
        }
    }
}

/// Window origins along one axis of `size` voxels: windows of `edge` that step by
/// `edge·(1 − overlap)` and always cover the end. A size below `edge` gets one centred window.
pub fn window_starts(size: usize, edge: usize, overlap: f64) -> Vec<isize> {
    if size <= edge {
        return vec![(size as isize - edge as isize) / 2];
    }
    let step = ((edge as f64 * (1.0 - overlap)).round() as usize).max(1);
    let last = size - edge;
    let mut starts: Vec<isize> = (0..last).step_by(step).map(|s| s as isize).collect();
    starts.push(last as isize);
    starts
}

/// Gaussian blending weights for an `edge`³ window (σ = edge/8, as nnU-Net), so that each
/// window's centre counts more than its borders, where context is missing.
pub fn blending_weights(edge: usize) -> Vec<f32> {
    let sigma = edge as f64 / 8.0;
    let centre = (edge as f64 - 1.0) / 2.0;
    let profile: Vec<f64> = (0..edge)
        .map(|i| (-((i as f64 - centre).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let mut weights = Vec::with_capacity(edge.pow(3));
    for z in 0..edge {
        for y in 0..edge {
            for x in 0..edge {
                // A floor keeps corner voxels of a single window from having ~0 weight.
                weights.push((profile[x] * profile[y] * profile[z]).max(1e-3) as f32);
            }
        }
    }
    weights
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

    #[test]
    fn the_device_makes_the_same_masks_as_the_cpu() {
        // Two samples of 3×2×2 voxels, every class in each, in different places.
        let samples: [[u8; 12]; 2] = [
            [0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 2, 1],
            [3, 3, 0, 1, 2, 0, 0, 1, 1, 2, 3, 0],
        ];
        let labels: Vec<f32> = samples.iter().flatten().map(|&l| f32::from(l)).collect();
        let device = Device::flex();
        let labels = Tensor::<5>::from_data(TensorData::new(labels, [2, 1, 3, 2, 2]), &device);
        let masks = one_hot_on_device(labels, 4);
        assert_eq!(masks.dims(), [2, 4, 3, 2, 2]);
        let expected: Vec<f32> = samples.iter().flat_map(|s| one_hot(s, 4)).collect();
        assert_eq!(masks.into_data().try_to_vec::<f32>().unwrap(), expected);
    }

    #[test]
    fn windows_cover_every_voxel_with_the_requested_overlap() {
        assert_eq!(window_starts(64, 32, 0.5), vec![0, 16, 32]);
        assert_eq!(window_starts(70, 32, 0.5), vec![0, 16, 32, 38]);
        assert_eq!(window_starts(32, 32, 0.5), vec![0]);
        assert_eq!(window_starts(20, 32, 0.5), vec![-6]);
        for size in 33..100 {
            let starts = window_starts(size, 32, 0.5);
            assert_eq!(*starts.last().unwrap() as usize + 32, size);
            assert!(starts.windows(2).all(|pair| pair[1] - pair[0] <= 16));
        }
    }

    #[test]
    fn normalisation_leaves_background_at_zero_and_standardises_the_rest() {
        let mut image = vec![0.0, 2.0, 4.0, 0.0, 6.0];
        normalise_nonzero(&mut image);
        assert_eq!(image[0], 0.0);
        assert_eq!(image[3], 0.0);
        let inside = [image[1], image[2], image[4]];
        let mean: f32 = inside.iter().sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6);
        let var: f32 = inside.iter().map(|v| v * v).sum::<f32>() / 3.0;
        assert!((var - 1.0).abs() < 1e-5);
    }
}
