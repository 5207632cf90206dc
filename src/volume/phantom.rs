//! The built-in demo scan: a seeded brain-tumour phantom.
//!
//! A head (scalp and skull) holds brain tissue with a smooth grey/white texture, two ventricles
//! and a tumour in one hemisphere: a necrotic core inside an enhancing rim inside oedema, with
//! an irregular outline. Labels follow BraTS after remapping: 0 background (everything that is
//! not tumour), 1 necrotic core, 2 oedema, 3 enhancing tumour. The image is blurred (partial
//! volume), multiplied by a smooth bias field and given Rician noise. Class intensities overlap
//! (necrosis ≈ ventricles ≈ skull, oedema ≈ bright white matter, rim ≈ bright oedema), so a net
//! has to use shape and context, not a threshold. Each tumour class is far below 5 % of voxels.

use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::LabelledVolume;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhantomConfig {
    /// Edge of the cubic volume, 32 to 128 voxels.
    pub size: usize,
    pub seed: u64,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self { size: 64, seed: 7 }
    }
}

pub const PHANTOM_CLASSES: [&str; 4] =
    ["background", "necrotic core", "oedema", "enhancing tumour"];

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller; rand's Normal lives in rand_distr, one more crate for two lines.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn unit_vector(rng: &mut StdRng) -> [f32; 3] {
    let v = [gaussian(rng), gaussian(rng), gaussian(rng)];
    let norm = v.iter().map(|c| c * c).sum::<f32>().sqrt().max(1e-6);
    v.map(|c| c / norm)
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The phantom for `config`; the same config always gives the same voxels.
pub fn phantom(config: PhantomConfig) -> LabelledVolume {
    let n = config.size.clamp(32, 128);
    phantom_of_dims([n; 3], config.seed)
}

/// How a modality shows each tissue of the phantom: air, scalp, skull, brain (a base and the
/// amplitude of its grey/white texture), ventricles, oedema, enhancing rim, necrotic core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhantomModality {
    /// The demo's single image: every tumour class visible, intensities overlapping.
    Demo,
    /// T1: the tumour faint.
    T1,
    /// T1 with contrast: the enhancing rim bright, the necrotic core dark, oedema invisible.
    T1ce,
    /// T2: the whole tumour bright (and the ventricles' fluid too).
    T2,
    /// FLAIR: oedema bright, fluid dark.
    Flair,
}

/// Tissues of the phantom, indices into a modality's intensities.
const AIR: u8 = 0;
const SCALP: u8 = 1;
const SKULL: u8 = 2;
const BRAIN: u8 = 3;
const VENTRICLE: u8 = 4;
const OEDEMA: u8 = 5;
const RIM: u8 = 6;
const CORE: u8 = 7;

impl PhantomModality {
    /// The modalities a BraTS case brings, in BraTS's channel order, with their file suffixes.
    pub const BRATS: [(PhantomModality, &'static str); 4] = [
        (PhantomModality::T1, "t1"),
        (PhantomModality::T1ce, "t1ce"),
        (PhantomModality::T2, "t2"),
        (PhantomModality::Flair, "flair"),
    ];

    /// The intensity of `tissue` where the brain's texture is `texture`. Brain-like tissue
    /// (and, in T1ce, oedema) carries the texture: `base + amplitude·tanh(0.8·texture)`.
    fn intensity(self, tissue: u8, texture: f32) -> f32 {
        use PhantomModality::*;
        // (brain base, texture amplitude), then scalp, skull, ventricle, oedema, rim, core.
        let (brain, scalp, skull, ventricle, oedema, rim, core) = match self {
            Demo => ((0.62, 0.08), 0.55, 0.15, 0.25, Some(0.85), 1.05, 0.35),
            T1 => ((0.62, 0.08), 0.55, 0.15, 0.25, Some(0.50), 0.56, 0.42),
            T1ce => ((0.62, 0.08), 0.55, 0.15, 0.25, None, 1.05, 0.35),
            T2 => ((0.50, 0.06), 0.45, 0.10, 1.00, Some(0.90), 0.88, 1.00),
            Flair => ((0.55, 0.06), 0.50, 0.10, 0.20, Some(1.00), 0.80, 0.60),
        };
        let textured = |(base, amplitude): (f32, f32)| base + amplitude * (0.8 * texture).tanh();
        match tissue {
            AIR => 0.0,
            SCALP => scalp,
            SKULL => skull,
            BRAIN => textured(brain),
            VENTRICLE => ventricle,
            OEDEMA => oedema.unwrap_or_else(|| textured(brain)),
            RIM => rim,
            _ => core,
        }
    }
}

/// The phantom in a volume of any shape (e.g. BraTS's 240×240×155): the head scales with the
/// shortest edge and sits in the middle, the background stays exactly zero around it.
pub fn phantom_of_dims(dims: [usize; 3], seed: u64) -> LabelledVolume {
    phantom_with(dims, seed, &[PhantomModality::Demo])
}

/// The phantom seen through each of `modalities` (one channel each, in that order): the same
/// head and tumour, the modalities' own intensities, blur, bias field and noise.
pub fn phantom_with(dims: [usize; 3], seed: u64, modalities: &[PhantomModality]) -> LabelledVolume {
    let n = *dims.iter().min().expect("three edges");
    let voxels: usize = dims.iter().product();
    let mut rng = StdRng::seed_from_u64(seed);
    let jitter = |rng: &mut StdRng, scale: f32| 1.0 + rng.random_range(-scale..scale);

    // Geometry in units of the edge, centred on the volume.
    let head = [0.44, 0.40, 0.38].map(|r: f32| r * jitter(&mut rng, 0.04));
    let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let tumour_centre = [
        side * rng.random_range(0.10..0.17),
        rng.random_range(-0.12..0.12),
        rng.random_range(-0.06..0.10),
    ];
    let oedema_radius = rng.random_range(0.14..0.18);
    // Proportions of a BraTS glioblastoma: by volume about 65 % oedema, 25 % enhancing rim and
    // 10 % necrotic core. (A thinner core, ~3 % of the tumour, was too rare to learn reliably in
    // the page's default run.)
    let rim_radius = oedema_radius * rng.random_range(0.65..0.75);
    let core_radius = rim_radius * rng.random_range(0.6..0.7);
    let lobes = [unit_vector(&mut rng), unit_vector(&mut rng)];
    let lobe_phase = [rng.random_range(0.0..6.3), rng.random_range(0.0..6.3)];
    let waves: Vec<([f32; 3], f32)> = (0..4)
        .map(|_| {
            let direction = unit_vector(&mut rng).map(|c| c * rng.random_range(10.0..18.0));
            (direction, rng.random_range(0.0..6.3f32))
        })
        .collect();
    let bias_direction = unit_vector(&mut rng);

    let mut tissues = Vec::with_capacity(voxels);
    let mut textures = Vec::with_capacity(voxels);
    let mut labels = Vec::with_capacity(voxels);
    let mut inside_head = Vec::with_capacity(voxels);
    let half = dims.map(|d| (d as f32 - 1.0) / 2.0);
    // Coordinates in units of the shortest edge, centred on the volume.
    let position = |c: [usize; 3]| [0, 1, 2].map(|a| (c[a] as f32 - half[a]) / n as f32);
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let p = position([x, y, z]);
                let ellipsoid = |radii: [f32; 3], scale: f32| {
                    (0..3)
                        .map(|i| (p[i] / (radii[i] * scale)).powi(2))
                        .sum::<f32>()
                };
                let head_level = ellipsoid(head, 1.0);
                let (mut tissue, mut label, mut texture) = (AIR, 0u8, 0.0f32);
                if head_level <= 1.0 {
                    tissue = SCALP;
                }
                if head_level <= 0.93f32.powi(2) {
                    tissue = SKULL;
                }
                if head_level <= 0.86f32.powi(2) {
                    // Brain: grey/white texture from a few smooth waves.
                    texture = waves
                        .iter()
                        .map(|(k, phase)| (dot(*k, p) + phase).sin())
                        .sum::<f32>();
                    tissue = BRAIN;
                    let ventricle = [-1.0f32, 1.0].iter().any(|&s| {
                        let q = [p[0] - s * 0.055, p[1] + 0.01, p[2] - 0.03];
                        (q[0] / 0.035).powi(2) + (q[1] / 0.11).powi(2) + (q[2] / 0.05).powi(2)
                            <= 1.0
                    });
                    if ventricle {
                        tissue = VENTRICLE;
                    }
                    let offset = [0, 1, 2].map(|i| p[i] - tumour_centre[i]);
                    let distance = dot(offset, offset).sqrt();
                    let direction = offset.map(|c| c / distance.max(1e-6));
                    let lobe = 1.0
                        + 0.18 * (4.0 * dot(direction, lobes[0]) + lobe_phase[0]).sin()
                        + 0.10 * (7.0 * dot(direction, lobes[1]) + lobe_phase[1]).sin();
                    let reach = distance / lobe;
                    if reach <= oedema_radius {
                        (tissue, label) = (OEDEMA, 2);
                    }
                    if reach <= rim_radius {
                        (tissue, label) = (RIM, 3);
                    }
                    if reach <= core_radius {
                        (tissue, label) = (CORE, 1);
                    }
                }
                tissues.push(tissue);
                textures.push(texture);
                labels.push(label);
                inside_head.push(head_level <= 1.0);
            }
        }
    }

    let mut image = Vec::with_capacity(voxels * modalities.len());
    for &modality in modalities {
        let clean: Vec<f32> = tissues
            .iter()
            .zip(&textures)
            .map(|(&tissue, &texture)| modality.intensity(tissue, texture))
            .collect();
        let mut channel = blur(&clean, dims);
        for (index, value) in channel.iter_mut().enumerate() {
            if !inside_head[index] {
                *value = 0.0;
                continue;
            }
            let p = position([
                index % dims[0],
                (index / dims[0]) % dims[1],
                index / (dims[0] * dims[1]),
            ]);
            let bias = 1.0 + 0.25 * dot(bias_direction, p) + 0.05 * (6.0 * p[0] * p[1]).sin();
            let signal = *value * bias;
            // Rician: the magnitude of a complex signal with Gaussian noise on both parts.
            let sigma = 0.05;
            let (real, imaginary) = (
                signal + sigma * gaussian(&mut rng),
                sigma * gaussian(&mut rng),
            );
            *value = (real * real + imaginary * imaginary).sqrt();
        }
        image.extend(channel);
    }
    LabelledVolume {
        dims,
        image,
        labels,
        channels: modalities.len(),
        classes: 4,
    }
}

/// Partial-volume blur: the [1 2 1]/4 kernel along each axis of an x-fastest volume.
fn blur(data: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let mut current = data.to_vec();
    for (axis, stride) in [1, dims[0], dims[0] * dims[1]].into_iter().enumerate() {
        let n = dims[axis];
        let mut next = current.clone();
        for (index, out) in next.iter_mut().enumerate() {
            let coordinate = (index / stride) % n;
            let before = if coordinate > 0 {
                current[index - stride]
            } else {
                current[index]
            };
            let after = if coordinate + 1 < n {
                current[index + stride]
            } else {
                current[index]
            };
            *out = 0.25 * before + 0.5 * current[index] + 0.25 * after;
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_phantom_other_seed_other_phantom() {
        let config = PhantomConfig { size: 32, seed: 3 };
        assert_eq!(phantom(config), phantom(config));
        assert_ne!(
            phantom(config).labels,
            phantom(PhantomConfig { seed: 4, ..config }).labels
        );
    }

    #[test]
    fn every_tumour_class_is_present_and_rare() {
        for (size, seed) in [(32, 1), (64, 7), (64, 8), (96, 2)] {
            let volume = phantom(PhantomConfig { size, seed });
            let counts = volume.class_counts();
            let total = volume.voxel_count() as f64;
            for (class, &count) in counts.iter().enumerate().skip(1) {
                let share = count as f64 / total;
                assert!(count > 0, "{size}³ seed {seed}: class {class} missing");
                assert!(
                    share < 0.05,
                    "{size}³ seed {seed}: class {class} is {share:.3}"
                );
            }
        }
    }

    /// The mean intensity of each class in channel `c` (class 0: the brain and head around the
    /// tumour, air left out).
    fn class_means(volume: &LabelledVolume, c: usize) -> [f32; 4] {
        let mut sums = [0.0f64; 4];
        let mut counts = [0usize; 4];
        for (&label, &value) in volume.labels.iter().zip(volume.channel(c)) {
            if value > 0.0 {
                sums[label as usize] += value as f64;
                counts[label as usize] += 1;
            }
        }
        [0, 1, 2, 3].map(|i| (sums[i] / counts[i].max(1) as f64) as f32)
    }

    #[test]
    fn each_modality_shows_the_tumour_as_mri_does() {
        let kinds = PhantomModality::BRATS.map(|(kind, _)| kind);
        let volume = phantom_with([64, 64, 64], 5, &kinds);
        assert_eq!(volume.channels, 4);
        let [t1, t1ce, t2, flair] = [0, 1, 2, 3].map(|c| class_means(&volume, c));
        // Classes: 0 around, 1 necrotic core, 2 oedema, 3 enhancing rim.
        // One head and one tumour per seed, whatever the modalities.
        let alone = phantom_with([64, 64, 64], 5, &[PhantomModality::T1ce]);
        assert!(
            alone.labels == volume.labels,
            "the tumour moved with the modalities"
        );
        let all = format!("T1 {t1:?}, T1ce {t1ce:?}, T2 {t2:?}, FLAIR {flair:?}");
        // T1 with contrast: the rim bright, the core darker than the oedema.
        assert!(t1ce[3] > 1.15 * t1ce[2] && t1ce[1] < t1ce[2], "{all}");
        // FLAIR: oedema the brightest; T2: the whole tumour brighter than its surroundings.
        let flair_oedema = flair[2] > 1.3 * flair[0] && flair[2] > flair[1] && flair[2] > flair[3];
        assert!(flair_oedema, "{all}");
        assert!(t2[1..].iter().all(|&m| m > 1.3 * t2[0]), "{all}");
        // T1: faint, every tumour class within 30 % of its surroundings.
        let faint = t1[1..].iter().all(|&m| (m / t1[0] - 1.0).abs() < 0.3);
        assert!(faint, "{all}");
        // In T1 with contrast oedema is brain: only FLAIR and T2 show it.
        for texture in [-2.0, 0.0, 1.5] {
            assert_eq!(
                PhantomModality::T1ce.intensity(OEDEMA, texture),
                PhantomModality::T1ce.intensity(BRAIN, texture)
            );
        }
    }

    #[test]
    fn class_intensities_overlap_so_a_threshold_cannot_segment() {
        let volume = phantom(PhantomConfig::default());
        let range = |class: u8| {
            let values: Vec<f32> = volume
                .labels
                .iter()
                .zip(&volume.image)
                .filter(|(l, _)| **l == class)
                .map(|(_, v)| *v)
                .collect();
            let min = values.iter().cloned().fold(f32::MAX, f32::min);
            let max = values.iter().cloned().fold(f32::MIN, f32::max);
            (min, max)
        };
        let (oedema, rim, core, rest) = (range(2), range(3), range(1), range(0));
        assert!(rim.0 < oedema.1, "rim {rim:?} vs oedema {oedema:?}");
        assert!(oedema.0 < rest.1, "oedema {oedema:?} vs rest {rest:?}");
        assert!(
            core.1 > rest.0 && core.0 < rest.1,
            "core {core:?} vs rest {rest:?}"
        );
    }
}
