//! Slices of a volume as RGBA pixels: grayscale with window/level, class overlays in a
//! colour-blind-safe palette, a class's probability map. Pure functions, so the page only
//! copies the pixels to a canvas and the rules are tested natively.

use serde::{Deserialize, Serialize};

use crate::volume::preprocess::Preparation;

/// The Okabe–Ito palette (distinguishable with the common colour-vision deficiencies), for
/// classes 1, 2, 3, …; background is never painted.
pub const PALETTE: [[u8; 3]; 7] = [
    [230, 159, 0],   // orange
    [86, 180, 233],  // sky blue
    [0, 158, 115],   // bluish green
    [240, 228, 66],  // yellow
    [0, 114, 178],   // blue
    [213, 94, 0],    // vermillion
    [204, 121, 167], // reddish purple
];

/// The colour of `class` (≥ 1) as CSS.
pub fn class_colour(class: usize) -> String {
    let [r, g, b] = PALETTE[(class.max(1) - 1) % PALETTE.len()];
    format!("rgb({r}, {g}, {b})")
}

/// Which plane a view shows. Volumes are stored x-fastest (`x + nx·(y + ny·z)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    /// Constant z: x across, y up.
    Axial,
    /// Constant y: x across, z up.
    Coronal,
    /// Constant x: y across, z up.
    Sagittal,
}

impl Plane {
    pub const ALL: [Plane; 3] = [Plane::Axial, Plane::Coronal, Plane::Sagittal];

    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "axial",
            Plane::Coronal => "coronal",
            Plane::Sagittal => "sagittal",
        }
    }

    /// The axis held constant.
    pub fn axis(self) -> usize {
        match self {
            Plane::Axial => 2,
            Plane::Coronal => 1,
            Plane::Sagittal => 0,
        }
    }

    /// Width and height of the slice in pixels.
    pub fn size(self, dims: [usize; 3]) -> (usize, usize) {
        match self {
            Plane::Axial => (dims[0], dims[1]),
            Plane::Coronal => (dims[0], dims[2]),
            Plane::Sagittal => (dims[1], dims[2]),
        }
    }

    /// The slice through the middle of the labelled (non-zero) voxels along this plane's axis,
    /// or the middle of the volume when nothing is labelled: where a scan opens.
    pub fn foreground_centre(self, dims: [usize; 3], labels: &[u8]) -> usize {
        let [nx, ny, _] = dims;
        let axis = self.axis();
        let (mut low, mut high) = (usize::MAX, 0);
        for (index, _) in labels.iter().enumerate().filter(|(_, label)| **label > 0) {
            let coordinate = [index % nx, (index / nx) % ny, index / (nx * ny)][axis];
            low = low.min(coordinate);
            high = high.max(coordinate);
        }
        if low > high {
            dims[axis] / 2
        } else {
            (low + high) / 2
        }
    }

    /// The voxel index shown at pixel (`u`, `v`) of slice `slice`; row 0 is the top, so the
    /// second in-plane axis is flipped to point up.
    pub fn voxel(self, dims: [usize; 3], slice: usize, u: usize, v: usize) -> usize {
        let (_, height) = self.size(dims);
        let up = height - 1 - v;
        let [x, y, z] = match self {
            Plane::Axial => [u, up, slice],
            Plane::Coronal => [u, slice, up],
            Plane::Sagittal => [slice, u, up],
        };
        x + dims[0] * (y + dims[1] * z)
    }
}

/// Grayscale mapping: intensities in `[level − width/2, level + width/2]` span black to white.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub level: f32,
    pub width: f32,
}

impl Window {
    /// The 1st to 99th percentile of the non-zero voxels (all voxels if none is non-zero), which
    /// ignores the background and a few hot voxels.
    pub fn auto(image: &[f32]) -> Self {
        let mut values: Vec<f32> = image
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v != 0.0)
            .collect();
        if values.is_empty() {
            values = image.iter().copied().filter(|v| v.is_finite()).collect();
        }
        if values.is_empty() {
            return Self {
                level: 0.5,
                width: 1.0,
            };
        }
        values.sort_by(f32::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        let (low, high) = (at(0.01), at(0.99));
        Self {
            level: (low + high) / 2.0,
            width: (high - low).max(f32::EPSILON),
        }
    }

    pub fn grey(&self, value: f32) -> u8 {
        let t = (value - (self.level - self.width / 2.0)) / self.width;
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// What is painted over the grayscale image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlay {
    None,
    /// The label map, filled.
    Truth,
    /// The prediction, filled.
    Prediction,
    /// The prediction filled and the label map as an outline, to compare them.
    Both,
    /// One class's predicted probability.
    Probability,
}

impl Overlay {
    pub const ALL: [Overlay; 5] = [
        Overlay::Both,
        Overlay::Truth,
        Overlay::Prediction,
        Overlay::Probability,
        Overlay::None,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Overlay::None => "none",
            Overlay::Truth => "truth",
            Overlay::Prediction => "prediction",
            Overlay::Both => "both",
            Overlay::Probability => "probability",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Overlay::None => "image only",
            Overlay::Truth => "ground truth (fill)",
            Overlay::Prediction => "prediction (fill)",
            Overlay::Both => "prediction fill + truth outline",
            Overlay::Probability => "probability of one class",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.key() == key)
    }
}

/// Everything one slice picture depends on.
pub struct SliceInput<'a> {
    pub image: &'a [f32],
    pub dims: [usize; 3],
    pub plane: Plane,
    pub slice: usize,
    pub window: Window,
    pub overlay: Overlay,
    pub truth: &'a [u8],
    /// The latest prediction, if any (same length as `truth`).
    pub prediction: Option<&'a [u8]>,
    /// `classes` planes of probabilities, if any, on the grid `preparation` describes (the
    /// scan's own grid when there is none).
    pub probabilities: Option<&'a [f32]>,
    pub preparation: Option<&'a Preparation>,
    /// The class whose probability is shown.
    pub class: usize,
}

const FILL_ALPHA: f32 = 0.45;

/// The slice as RGBA rows (top row first), `width × height × 4` bytes.
pub fn render(input: &SliceInput<'_>) -> (usize, usize, Vec<u8>) {
    let dims = input.dims;
    let (width, height) = input.plane.size(dims);
    let slice = input.slice.min(dims[input.plane.axis()].saturating_sub(1));
    let voxels = dims.iter().product::<usize>();
    let voxel = |u: usize, v: usize| input.plane.voxel(dims, slice, u, v);
    let mut pixels = vec![0u8; width * height * 4];
    for v in 0..height {
        for u in 0..width {
            let index = voxel(u, v);
            let grey = input.window.grey(input.image[index]) as f32;
            let mut rgb = [grey; 3];
            let mut blend = |colour: [u8; 3], alpha: f32| {
                for (channel, c) in rgb.iter_mut().zip(colour) {
                    *channel = *channel * (1.0 - alpha) + c as f32 * alpha;
                }
            };
            let fill = match input.overlay {
                Overlay::Truth => Some(input.truth[index]),
                Overlay::Prediction | Overlay::Both => input.prediction.map(|p| p[index]),
                _ => None,
            };
            if let Some(class) = fill.filter(|&c| c > 0) {
                blend(PALETTE[(class as usize - 1) % PALETTE.len()], FILL_ALPHA);
            }
            let probability = |probabilities: &[f32]| match input.preparation {
                Some(preparation) => {
                    Some(preparation.probability_at(probabilities, input.class, index))
                }
                None => probabilities.get(input.class * voxels + index).copied(),
            };
            if input.overlay == Overlay::Probability
                && let Some(p) = input.probabilities.and_then(probability)
            {
                let colour = PALETTE[(input.class.max(1) - 1) % PALETTE.len()];
                blend(colour, 0.85 * p.clamp(0.0, 1.0));
            }
            if input.overlay == Overlay::Both {
                let class = input.truth[index];
                let differs = |du: isize, dv: isize| {
                    let (nu, nv) = (u as isize + du, v as isize + dv);
                    nu < 0
                        || nv < 0
                        || nu >= width as isize
                        || nv >= height as isize
                        || input.truth[voxel(nu as usize, nv as usize)] != class
                };
                let edge = differs(-1, 0) || differs(1, 0) || differs(0, -1) || differs(0, 1);
                if class > 0 && edge {
                    blend(PALETTE[(class as usize - 1) % PALETTE.len()], 1.0);
                }
            }
            let at = 4 * (u + width * v);
            for (channel, value) in rgb.iter().enumerate() {
                pixels[at + channel] = value.round() as u8;
            }
            pixels[at + 3] = 255;
        }
    }
    (width, height, pixels)
}

/// Voxel counts per class, for the class-balance bar.
pub fn class_shares(labels: &[u8], classes: usize) -> Vec<f64> {
    let mut counts = vec![0usize; classes];
    for &label in labels {
        if let Some(count) = counts.get_mut(label as usize) {
            *count += 1;
        }
    }
    let total = labels.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}
