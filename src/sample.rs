//! From a volume on the CPU to the tensors a training step eats: normalisation, one-hot targets,
//! random patches and the sliding windows of whole-volume prediction.
//!
//! Tensors are `[batch, channels, z, y, x]`; volumes are x-fastest, so a volume of dims
//! `[nx, ny, nz]` is the tensor `[1, 1, nz, ny, nx]` without reordering.

use burn::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::volume::boxes::crop;
use crate::volume::{LabelledVolume, RegionMap};

/// One training batch on the device: intensities `[batch, channels, z, y, x]` and the one-hot
/// target `[batch, classes, z, y, x]`.
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

/// BraTS's region masks `[B, 3, z, y, x]` (WT, TC, ET) of one-hot class masks `[B, classes, z,
/// y, x]`: each region the sum of its classes' masks ([`RegionMap::membership`]).
pub fn regions_on_device(onehot: Tensor<5>, map: &RegionMap) -> Tensor<5> {
    let [batch, classes, z, y, x] = onehot.dims();
    assert_eq!(
        classes,
        map.classes(),
        "the region map is for another number of classes"
    );
    let device = onehot.device();
    let regions = map.membership().map(|membership| {
        let membership = Tensor::<1>::from_data(TensorData::new(membership, [classes]), &device)
            .reshape([1, classes, 1, 1, 1]);
        (onehot.clone() * membership.expand([batch, classes, z, y, x])).sum_dim(1)
    });
    Tensor::cat(regions.to_vec(), 1)
}

/// [`normalise_nonzero`] on each channel of `volume` on its own (modalities have unrelated
/// scales), as nnU-Net does.
pub fn normalise_channels(volume: &mut LabelledVolume) {
    let voxels = volume.voxel_count().max(1);
    for plane in volume.image.chunks_mut(voxels) {
        normalise_nonzero(plane);
    }
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

/// Random cubic patches from one or several cases, a share of them centred on foreground
/// voxels of their case (as nnU-Net does), so that rare classes are seen often; with several
/// cases each patch first draws its case, so a batch may mix them. Deterministic from its
/// seed, and can go back to any earlier position ([`PatchSampler::seek`]). It only ever sees
/// the cases it was made with: validation cases are never given to it.
pub struct PatchSampler {
    edge: usize,
    foreground_fraction: f64,
    cases: Vec<SampledCase>,
    seed: u64,
    rng: StdRng,
    /// Patches drawn so far.
    drawn: usize,
}

/// What the sampler keeps of a case: its size and where its foreground is.
struct SampledCase {
    dims: [usize; 3],
    foreground: Vec<usize>,
}

impl PatchSampler {
    /// A sampler over one volume.
    pub fn new(volume: &LabelledVolume, edge: usize, foreground_fraction: f64, seed: u64) -> Self {
        Self::over(&[volume], edge, foreground_fraction, seed)
    }

    /// A sampler over several cases (at least one).
    pub fn over(
        volumes: &[&LabelledVolume],
        edge: usize,
        foreground_fraction: f64,
        seed: u64,
    ) -> Self {
        assert!(!volumes.is_empty(), "a sampler needs at least one case");
        let cases = volumes
            .iter()
            .map(|volume| SampledCase {
                dims: volume.dims,
                foreground: (0..volume.labels.len())
                    .filter(|&i| volume.labels[i] != 0)
                    .collect(),
            })
            .collect();
        Self {
            edge,
            foreground_fraction,
            cases,
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
            self.next_draw();
        }
    }

    /// The case (an index into the sampler's cases) and origin (x, y, z) of the next patch.
    /// With one case no case is drawn, so a single scan's patches are what they always were.
    fn next_draw(&mut self) -> (usize, [isize; 3]) {
        self.drawn += 1;
        let case = if self.cases.len() > 1 {
            self.rng.random_range(0..self.cases.len())
        } else {
            0
        };
        let dims = self.cases[case].dims;
        let edge = self.edge as isize;
        if dims.iter().all(|&d| d as isize <= edge) {
            // The whole volume fits in one patch: nothing to sample.
            return (case, dims.map(|d| (d as isize - edge) / 2));
        }
        let foreground = &self.cases[case].foreground;
        let on_foreground =
            !foreground.is_empty() && self.rng.random_bool(self.foreground_fraction);
        let origin = if on_foreground {
            let voxel = foreground[self.rng.random_range(0..foreground.len())];
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
        };
        (case, origin)
    }

    /// `batch` patches of the cases (the volumes the sampler was made with, in the same order),
    /// every channel of each, with their one-hot targets, on `device`.
    pub fn sample(&mut self, volumes: &[&LabelledVolume], batch: usize, device: &Device) -> Batch {
        assert_eq!(
            volumes.len(),
            self.cases.len(),
            "the sampler was made for {} cases",
            self.cases.len()
        );
        let edge = self.edge;
        let channels = volumes[0].channels;
        let mut image = Vec::with_capacity(batch * channels * edge.pow(3));
        let mut labels = Vec::with_capacity(batch * edge.pow(3));
        for _ in 0..batch {
            let (case, origin) = self.next_draw();
            let volume = volumes[case];
            assert_eq!(volume.channels, channels, "the cases' channels differ");
            for plane in volume.channel_planes() {
                image.extend(crop(plane, volume.dims, origin, [edge; 3], 0.0));
            }
            let patch = crop(&volume.labels, volume.dims, origin, [edge; 3], 0);
            labels.extend(patch.into_iter().map(f32::from));
        }
        let classes = volumes[0].classes;
        Batch {
            image: Tensor::from_data(
                TensorData::new(image, [batch, channels, edge, edge, edge]),
                device,
            ),
            target: one_hot_on_device(
                Tensor::from_data(
                    TensorData::new(labels, [batch, 1, edge, edge, edge]),
                    device,
                ),
                classes,
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
