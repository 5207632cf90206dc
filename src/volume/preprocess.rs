//! Preprocessing before training, and its undoing after prediction: crop to the head, then
//! resample to a working grid that fits a voxel budget. A prediction made on the working grid
//! goes back to the scan's own grid with [`Preparation::labels_to_original`] and
//! [`Preparation::probabilities_to_original`].
//!
//! (Z-score normalisation happens in `sample::normalise_nonzero`, every session.)

use serde::{Deserialize, Serialize};

use super::LabelledVolume;
use super::boxes::crop;

/// What preprocessing may do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrepareOptions {
    /// Crop to the foreground box (plus [`Self::margin`]).
    pub crop: bool,
    /// Resample to a coarser isotropic grid when the cropped volume has more than
    /// [`Self::max_voxels`] voxels.
    pub resample: bool,
    pub max_voxels: usize,
    /// Voxels kept around the foreground box on every side.
    pub margin: usize,
}

/// What preprocessing did: enough to say it in a sentence and to map a prediction back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preparation {
    pub original_dims: [usize; 3],
    pub original_spacing: [f64; 3],
    /// The crop box in the original grid: its first voxel and its size.
    pub crop_origin: [usize; 3],
    pub crop_dims: [usize; 3],
    /// The grid the net trains and predicts on (the crop box, resampled).
    pub working_dims: [usize; 3],
    pub working_spacing: [f64; 3],
}

fn format_dims(dims: [usize; 3]) -> String {
    format!("{}×{}×{}", dims[0], dims[1], dims[2])
}

fn format_spacing(spacing: [f64; 3]) -> String {
    let same = spacing
        .iter()
        .all(|s| (s - spacing[0]).abs() <= 0.01 * spacing[0].abs());
    if same {
        format!("{:.2} mm", spacing[0])
    } else {
        format!("{:.2}×{:.2}×{:.2} mm", spacing[0], spacing[1], spacing[2])
    }
}

impl Preparation {
    /// Nothing done: the working grid is the scan's grid.
    pub fn identity(dims: [usize; 3], spacing: [f64; 3]) -> Self {
        Self {
            original_dims: dims,
            original_spacing: spacing,
            crop_origin: [0; 3],
            crop_dims: dims,
            working_dims: dims,
            working_spacing: spacing,
        }
    }

    pub fn cropped(&self) -> bool {
        self.crop_dims != self.original_dims
    }

    pub fn resampled(&self) -> bool {
        self.working_dims != self.crop_dims
    }

    pub fn working_voxels(&self) -> usize {
        self.working_dims.iter().product()
    }

    /// One sentence: "Cropped 240×240×155 → 142×178×139, resampled to 1.60 mm: 89×111×87."
    pub fn summary(&self) -> String {
        match (self.cropped(), self.resampled()) {
            (false, false) => format!(
                "Trained on the scan's own grid, {} at {}.",
                format_dims(self.original_dims),
                format_spacing(self.original_spacing)
            ),
            (true, false) => format!(
                "Cropped {} → {} to the head; not resampled ({}).",
                format_dims(self.original_dims),
                format_dims(self.crop_dims),
                format_spacing(self.working_spacing)
            ),
            (false, true) => format!(
                "Not cropped; resampled {} to {}: {}.",
                format_dims(self.original_dims),
                format_spacing(self.working_spacing),
                format_dims(self.working_dims)
            ),
            (true, true) => format!(
                "Cropped {} → {} to the head, resampled to {}: {}.",
                format_dims(self.original_dims),
                format_dims(self.crop_dims),
                format_spacing(self.working_spacing),
                format_dims(self.working_dims)
            ),
        }
    }

    /// A working-grid label map in the original grid: nearest neighbour inside the crop box,
    /// background (0) outside it.
    pub fn labels_to_original(&self, working: &[u8]) -> Vec<u8> {
        let cropped = resample_nearest(working, self.working_dims, self.crop_dims);
        self.uncrop(&cropped, 0)
    }

    /// The probability of `class` at voxel `index` of the original grid, from the working
    /// grid's class planes: trilinear inside the crop box; outside it, certain background
    /// (class 0 at 1, the others at 0). Per voxel, so that a view draws a slice without the
    /// whole volume's planes being mapped back.
    pub fn probability_at(&self, working: &[f32], class: usize, index: usize) -> f32 {
        let [nx, ny, _] = self.original_dims;
        let p = [index % nx, (index / nx) % ny, index / (nx * ny)];
        let local = [0, 1, 2].map(|a| p[a].checked_sub(self.crop_origin[a]));
        let inside = (0..3).all(|a| local[a].is_some_and(|l| l < self.crop_dims[a]));
        let background = if class == 0 { 1.0 } else { 0.0 };
        if !inside {
            return background;
        }
        let taps = [0, 1, 2].map(|a| {
            linear_tap(
                local[a].unwrap_or(0),
                self.crop_dims[a],
                self.working_dims[a],
            )
        });
        let [wx, wy, _] = self.working_dims;
        let plane = class * self.working_voxels();
        trilinear(taps, |x, y, z| {
            working
                .get(plane + x + wx * (y + wy * z))
                .copied()
                .unwrap_or(background)
        })
    }

    /// The crop box's values put back at its place in the original grid, `fill` elsewhere.
    fn uncrop<T: Copy>(&self, cropped: &[T], fill: T) -> Vec<T> {
        let origin = self.crop_origin.map(|v| -(v as isize));
        crop(cropped, self.crop_dims, origin, self.original_dims, fill)
    }
}

/// Where voxel `j` of a grid of `to` voxels lies in a grid of `from` voxels spanning the same
/// extent (voxel centres, the convention of `align_corners=False`).
fn source_coordinate(j: usize, to: usize, from: usize) -> f64 {
    (j as f64 + 0.5) * from as f64 / to as f64 - 0.5
}

/// Output voxel `j` of `to` along one axis: the two source voxels (of `from`) it lies between
/// and the weight of the second.
fn linear_tap(j: usize, to: usize, from: usize) -> (usize, usize, f32) {
    let w = source_coordinate(j, to, from).clamp(0.0, (from - 1) as f64);
    let low = w.floor() as usize;
    (low, (low + 1).min(from - 1), (w - low as f64) as f32)
}

/// The source voxel nearest to output voxel `j` of `to` along one axis.
fn nearest_tap(j: usize, to: usize, from: usize) -> usize {
    (source_coordinate(j, to, from).round().max(0.0) as usize).min(from - 1)
}

/// The trilinear blend of the eight source voxels `taps` (per axis: two voxels and the
/// weight of the second) picks out of `at`.
fn trilinear(taps: [(usize, usize, f32); 3], at: impl Fn(usize, usize, usize) -> f32) -> f32 {
    let [(x0, x1, fx), (y0, y1, fy), (z0, z1, fz)] = taps;
    let along_x = |y, z| at(x0, y, z) * (1.0 - fx) + at(x1, y, z) * fx;
    let along_y = |z| along_x(y0, z) * (1.0 - fy) + along_x(y1, z) * fy;
    along_y(z0) * (1.0 - fz) + along_y(z1) * fz
}

/// Trilinear resampling of an x-fastest volume from `from` to `to` voxels over the same extent.
pub fn resample_linear(data: &[f32], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    if from == to {
        return data.to_vec();
    }
    let [tx, ty, tz] = [0, 1, 2].map(|a| {
        (0..to[a])
            .map(|j| linear_tap(j, to[a], from[a]))
            .collect::<Vec<_>>()
    });
    let at = |x: usize, y: usize, z: usize| data[x + from[0] * (y + from[1] * z)];
    let mut out = Vec::with_capacity(to.iter().product());
    for &z in &tz {
        for &y in &ty {
            for &x in &tx {
                out.push(trilinear([x, y, z], at));
            }
        }
    }
    out
}

/// Nearest-neighbour resampling (for labels) from `from` to `to` voxels over the same extent.
pub fn resample_nearest<T: Copy>(data: &[T], from: [usize; 3], to: [usize; 3]) -> Vec<T> {
    if from == to {
        return data.to_vec();
    }
    let [nx, ny, nz] = [0, 1, 2].map(|a| {
        (0..to[a])
            .map(|j| nearest_tap(j, to[a], from[a]))
            .collect::<Vec<_>>()
    });
    let mut out = Vec::with_capacity(to.iter().product());
    for &z in &nz {
        for &y in &ny {
            for &x in &nx {
                out.push(data[x + from[0] * (y + from[1] * z)]);
            }
        }
    }
    out
}

/// Otsu's threshold over a 256-bin histogram: the level that best separates two classes of
/// intensity (written here because it is twenty lines; no maintained crate does it on a flat
/// `f32` slice without an image type around it).
pub fn otsu_threshold(data: &[f32]) -> f32 {
    let (low, high) = data
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if low >= high {
        return low;
    }
    const BINS: usize = 256;
    let width = (high - low) as f64 / BINS as f64;
    let mut histogram = [0u64; BINS];
    for &v in data.iter().filter(|v| v.is_finite()) {
        histogram[(((v - low) as f64 / width) as usize).min(BINS - 1)] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let weighted_total: f64 = histogram
        .iter()
        .enumerate()
        .map(|(bin, &count)| bin as f64 * count as f64)
        .sum();
    let (mut below, mut weighted_below) = (0u64, 0.0f64);
    let (mut best_bin, mut best_variance) = (0, -1.0);
    for (bin, &count) in histogram.iter().enumerate() {
        below += count;
        weighted_below += bin as f64 * count as f64;
        let above = total - below;
        if below == 0 || above == 0 {
            continue;
        }
        let mean_below = weighted_below / below as f64;
        let mean_above = (weighted_total - weighted_below) / above as f64;
        let variance = below as f64 * above as f64 * (mean_below - mean_above).powi(2);
        if variance > best_variance {
            (best_bin, best_variance) = (bin, variance);
        }
    }
    low + ((best_bin + 1) as f64 * width) as f32
}

/// The box (first voxel, size) of the voxels that are foreground: above 0 when the background
/// is exactly zero (skull-stripped MRI, as BraTS), else above Otsu's threshold (a T1 with
/// noisy air, a CT); every labelled voxel is kept too. `None` when nothing qualifies. Judged
/// on the first channel: a case's modalities share one head.
pub fn foreground_box(volume: &LabelledVolume) -> Option<([usize; 3], [usize; 3])> {
    let image = volume.channel(0);
    let zeros = image.iter().filter(|&&v| v == 0.0).count();
    let threshold = if zeros * 10 >= image.len() {
        0.0
    } else {
        otsu_threshold(image)
    };
    let [nx, ny, _] = volume.dims;
    let mut bounds: Option<([usize; 3], [usize; 3])> = None;
    let foreground = image
        .iter()
        .zip(&volume.labels)
        .enumerate()
        .filter(|(_, (v, l))| **v > threshold || **l != 0);
    for (index, _) in foreground {
        let p = [index % nx, (index / nx) % ny, index / (nx * ny)];
        let (low, high) = bounds.get_or_insert((p, p));
        for axis in 0..3 {
            low[axis] = low[axis].min(p[axis]);
            high[axis] = high[axis].max(p[axis]);
        }
    }
    bounds.map(|(low, high)| (low, [0, 1, 2].map(|a| high[a] - low[a] + 1)))
}

/// The working dims for a crop of `dims` voxels of `spacing`: unchanged when it has at most
/// `max_voxels`, else the finest isotropic spacing at which it has at most `max_voxels` (an
/// axis already coarser than that keeps its voxels: nothing is upsampled).
pub fn working_dims(dims: [usize; 3], spacing: [f64; 3], max_voxels: usize) -> [usize; 3] {
    let voxels = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if voxels.is_some_and(|n| n <= max_voxels.max(1)) {
        return dims;
    }
    let extent = [0, 1, 2].map(|a| dims[a] as f64 * spacing[a].abs().max(1e-6));
    let mut iso = (extent.iter().product::<f64>() / max_voxels.max(1) as f64).cbrt();
    loop {
        let candidate = [0, 1, 2].map(|a| ((extent[a] / iso).round() as usize).clamp(1, dims[a]));
        if candidate.iter().product::<usize>() <= max_voxels.max(1) {
            return candidate;
        }
        iso *= 1.01;
    }
}

/// Crops and resamples `volume` (voxels of `spacing`) as `options` allow; returns the working
/// volume and what was done. An image without foreground is not cropped.
pub fn prepare(
    volume: &LabelledVolume,
    spacing: [f64; 3],
    options: &PrepareOptions,
) -> (LabelledVolume, Preparation) {
    let dims = volume.dims;
    let (origin, size) = match foreground_box(volume).filter(|_| options.crop) {
        Some((low, size)) => {
            let origin = low.map(|v| v.saturating_sub(options.margin));
            let end = [0, 1, 2].map(|a| (low[a] + size[a] + options.margin).min(dims[a]));
            (origin, [0, 1, 2].map(|a| end[a] - origin[a]))
        }
        None => ([0; 3], dims),
    };
    let cropped = LabelledVolume {
        dims: size,
        image: planes_of(volume, size, |plane| {
            crop(plane, dims, origin.map(|v| v as isize), size, 0.0)
        }),
        channels: volume.channels,
        labels: crop(&volume.labels, dims, origin.map(|v| v as isize), size, 0),
        classes: volume.classes,
    };
    let working = if options.resample {
        working_dims(size, spacing, options.max_voxels)
    } else {
        size
    };
    let preparation = Preparation {
        original_dims: dims,
        original_spacing: spacing,
        crop_origin: origin,
        crop_dims: size,
        working_dims: working,
        working_spacing: [0, 1, 2].map(|a| spacing[a].abs() * size[a] as f64 / working[a] as f64),
    };
    if working == size {
        return (cropped, preparation);
    }
    let resampled = LabelledVolume {
        dims: working,
        image: planes_of(&cropped, working, |plane| {
            resample_linear(plane, size, working)
        }),
        channels: volume.channels,
        labels: resample_nearest(&cropped.labels, size, working),
        classes: volume.classes,
    };
    (resampled, preparation)
}

/// Each of `volume`'s channel planes made into a plane of `dims` by `each`, one after the
/// other, in a buffer of exactly their size (collecting a flat map would grow it by doubling:
/// up to twice the memory, and copies of it, for a full-size scan's four modalities).
fn planes_of(
    volume: &LabelledVolume,
    dims: [usize; 3],
    each: impl Fn(&[f32]) -> Vec<f32>,
) -> Vec<f32> {
    let mut planes = Vec::with_capacity(dims.iter().product::<usize>() * volume.channels);
    for plane in volume.channel_planes() {
        planes.extend_from_slice(&each(plane));
    }
    planes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dims` with a box of label 1 and intensity 2 at `low .. low + size`.
    fn with_blob(dims: [usize; 3], low: [usize; 3], size: [usize; 3]) -> LabelledVolume {
        let mut volume = LabelledVolume {
            dims,
            image: vec![0.0; dims.iter().product()],
            labels: vec![0; dims.iter().product()],
            channels: 1,
            classes: 2,
        };
        for z in low[2]..low[2] + size[2] {
            for y in low[1]..low[1] + size[1] {
                for x in low[0]..low[0] + size[0] {
                    let index = x + dims[0] * (y + dims[1] * z);
                    volume.image[index] = 2.0;
                    volume.labels[index] = 1;
                }
            }
        }
        volume
    }

    const OPTIONS: PrepareOptions = PrepareOptions {
        crop: true,
        resample: true,
        max_voxels: 1000,
        margin: 2,
    };

    #[test]
    fn crop_keeps_the_foreground_and_the_margin() {
        let volume = with_blob([21, 17, 13], [5, 4, 3], [6, 5, 4]);
        let (cropped, done) = prepare(
            &volume,
            [1.0; 3],
            &PrepareOptions {
                resample: false,
                ..OPTIONS
            },
        );
        assert_eq!(done.crop_origin, [3, 2, 1]);
        assert_eq!(done.crop_dims, [10, 9, 8]);
        assert_eq!(cropped.dims, [10, 9, 8]);
        assert_eq!(
            cropped.labels.iter().filter(|&&l| l == 1).count(),
            6 * 5 * 4
        );
        assert!(
            done.summary().starts_with("Cropped 21×17×13 → 10×9×8"),
            "{}",
            done.summary()
        );
    }

    #[test]
    fn a_prediction_on_the_working_grid_lands_on_the_same_voxels_of_the_original() {
        // Odd dims, anisotropic spacing: the blob must come back where it was.
        let volume = with_blob([41, 37, 19], [10, 8, 6], [12, 10, 6]);
        let (working, done) = prepare(&volume, [1.0, 1.0, 2.0], &OPTIONS);
        assert!(done.cropped() && done.resampled(), "{done:?}");
        assert!(done.working_voxels() <= 1000);
        // A perfect prediction on the working grid, mapped back.
        let back = done.labels_to_original(&working.labels);
        assert_eq!(back.len(), volume.labels.len());
        let wrong = back
            .iter()
            .zip(&volume.labels)
            .filter(|(a, b)| a != b)
            .count();
        // Nearest-neighbour at a coarser grid may move the blob's faces by a voxel, no more.
        let face_voxels = 2 * (12 * 10 + 12 * 6 + 10 * 6);
        assert!(wrong <= face_voxels, "{wrong} voxels moved");
        let centre = 16 + 41 * (13 + 37 * 9);
        assert_eq!(back[centre], 1);
        assert_eq!(back[0], 0);
        // Probabilities: certain background outside the crop, the blob inside.
        let mut probabilities: Vec<f32> = working.labels.iter().map(|&l| 1.0 - l as f32).collect();
        probabilities.extend(working.labels.iter().map(|&l| l as f32));
        let at = |class, index| done.probability_at(&probabilities, class, index);
        assert_eq!((at(0, 0), at(1, 0)), (1.0, 0.0));
        assert!(at(1, centre) > 0.99 && at(0, centre) < 0.01);
        // Thresholded at ½, the interpolated probability gives the same blob as the labels.
        let moved = (0..volume.labels.len())
            .filter(|&i| (at(1, i) > 0.5) != (volume.labels[i] == 1))
            .count();
        assert!(moved <= face_voxels, "{moved} voxels moved");
    }

    #[test]
    fn an_all_zero_image_is_neither_cropped_nor_lost() {
        let volume = LabelledVolume {
            dims: [9, 7, 5],
            image: vec![0.0; 315],
            labels: vec![0; 315],
            channels: 1,
            classes: 2,
        };
        let (working, done) = prepare(&volume, [1.0; 3], &OPTIONS);
        assert_eq!(working, volume);
        assert!(!done.cropped() && !done.resampled());
        assert_eq!(done.labels_to_original(&working.labels), volume.labels);
    }

    #[test]
    fn the_working_grid_fits_the_budget_without_upsampling() {
        assert_eq!(working_dims([10, 10, 10], [1.0; 3], 1000), [10, 10, 10]);
        let dims = working_dims([240, 240, 155], [1.0; 3], 1_000_000);
        assert!(dims.iter().product::<usize>() <= 1_000_000, "{dims:?}");
        assert!(dims.iter().product::<usize>() > 900_000, "{dims:?}");
        // 5 mm slices are already coarser than the ~3 mm grid: z keeps its 20 slices.
        let dims = working_dims([200, 200, 20], [1.0, 1.0, 5.0], 100_000);
        assert_eq!(dims[2], 20, "{dims:?}");
    }

    #[test]
    fn otsu_finds_the_gap_between_air_and_tissue() {
        let mut data = vec![0.1f32; 500];
        data.extend(vec![5.0f32; 300]);
        data[0] = 0.3;
        let t = otsu_threshold(&data);
        assert!(t > 0.3 && t < 5.0, "{t}");
    }

    #[test]
    fn linear_resampling_keeps_a_ramp() {
        let ramp: Vec<f32> = (0..8).map(|x| x as f32).collect();
        let half = resample_linear(&ramp, [8, 1, 1], [4, 1, 1]);
        assert_eq!(half, vec![0.5, 2.5, 4.5, 6.5]);
    }
}
