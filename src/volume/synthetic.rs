//! A small seeded synthetic scan: a placeholder until the brain-tumour phantom lands.
//!
//! A noisy sphere ("head") holds three nested blobs, one per foreground class. Class intensities
//! overlap through the noise, so a net must use some context, yet a 7-voxel receptive field is
//! enough to learn it within a few dozen steps.

use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::LabelledVolume;

/// Size and seed of a synthetic volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Edge length in voxels (the volume is a cube).
    pub size: usize,
    /// Classes including background; at most 4.
    pub classes: usize,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            size: 16,
            classes: 4,
            seed: 7,
        }
    }
}

/// Builds the volume described by `config`; the same config always gives the same voxels.
pub fn synthetic_volume(config: SyntheticConfig) -> LabelledVolume {
    assert!(
        config.size >= 4,
        "a synthetic volume needs at least 4 voxels per edge"
    );
    assert!(
        (2..=4).contains(&config.classes),
        "a synthetic volume has 2 to 4 classes"
    );
    let n = config.size;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let centre = |jitter: f32, rng: &mut StdRng| {
        [0, 1, 2].map(|_| (n as f32 - 1.0) / 2.0 + rng.random_range(-jitter..=jitter))
    };
    let head = centre(0.0, &mut rng);
    let tumour = centre(n as f32 * 0.12, &mut rng);
    // Radii as fractions of the edge: head, then the nested foreground blobs.
    let head_radius = 0.45 * n as f32;
    let blob_radii = [0.30, 0.20, 0.10].map(|fraction| fraction * n as f32);
    // Mean intensity of background, head, then each foreground class.
    let class_mean = [0.0, 1.0, 1.6, 2.2, 2.8];

    let mut image = Vec::with_capacity(n * n * n);
    let mut labels = Vec::with_capacity(n * n * n);
    for z in 0..n {
        for y in 0..n {
            for x in 0..n {
                let position = [x as f32, y as f32, z as f32];
                let distance = |to: [f32; 3]| {
                    position
                        .iter()
                        .zip(to)
                        .map(|(p, c)| (p - c) * (p - c))
                        .sum::<f32>()
                        .sqrt()
                };
                let in_head = distance(head) <= head_radius;
                let tumour_distance = distance(tumour);
                // The innermost blob that contains the voxel wins; classes above `classes-1` fold
                // into the last one.
                let mut label = 0u8;
                if in_head {
                    for (index, radius) in blob_radii.iter().enumerate() {
                        if tumour_distance <= *radius {
                            label = (index + 1).min(config.classes - 1) as u8;
                        }
                    }
                }
                let mean = if !in_head {
                    class_mean[0]
                } else if label == 0 {
                    class_mean[1]
                } else {
                    class_mean[label as usize + 1]
                };
                let noise: f32 = rng.random_range(-0.45..=0.45);
                image.push(mean + noise);
                labels.push(label);
            }
        }
    }
    LabelledVolume {
        dims: [n, n, n],
        image,
        labels,
        channels: 1,
        classes: config.classes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_volume_other_seed_other_volume() {
        let config = SyntheticConfig::default();
        assert_eq!(synthetic_volume(config), synthetic_volume(config));
        let other = synthetic_volume(SyntheticConfig { seed: 8, ..config });
        assert_ne!(synthetic_volume(config).image, other.image);
    }

    #[test]
    fn every_class_is_present_and_background_dominates() {
        for size in [8, 16, 32] {
            let volume = synthetic_volume(SyntheticConfig {
                size,
                ..Default::default()
            });
            let counts = volume.class_counts();
            assert_eq!(counts.iter().sum::<usize>(), volume.voxel_count());
            assert!(counts.iter().all(|&count| count > 0), "{size}³: {counts:?}");
            assert!(counts[0] > volume.voxel_count() / 2, "{size}³: {counts:?}");
        }
    }
}
