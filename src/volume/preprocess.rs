//! Optional preprocessing before training: crop to the head, and integer downsampling.
//! (Z-score normalisation happens in `sample::normalise_nonzero`, every session.)

use super::LabelledVolume;
use super::boxes::crop;

/// The bounding box (min and max corner, inclusive, x/y/z) of the non-zero voxels, or `None`
/// for an all-zero image.
pub fn nonzero_bounds(volume: &LabelledVolume) -> Option<([usize; 3], [usize; 3])> {
    let [nx, ny, _] = volume.dims;
    let mut bounds: Option<([usize; 3], [usize; 3])> = None;
    for (index, _) in volume.image.iter().enumerate().filter(|(_, v)| **v != 0.0) {
        let p = [index % nx, (index / nx) % ny, index / (nx * ny)];
        let (low, high) = bounds.get_or_insert((p, p));
        for axis in 0..3 {
            low[axis] = low[axis].min(p[axis]);
            high[axis] = high[axis].max(p[axis]);
        }
    }
    bounds
}

/// The volume cropped to its non-zero region (the head) plus `margin` voxels on every side.
/// Labels outside the head are kept only if they fall in the margin; an all-zero image is
/// returned unchanged.
pub fn crop_to_foreground(volume: &LabelledVolume, margin: usize) -> LabelledVolume {
    let Some((low, high)) = nonzero_bounds(volume) else {
        return volume.clone();
    };
    let low = low.map(|v| v.saturating_sub(margin));
    let high = [0, 1, 2].map(|a| (high[a] + margin).min(volume.dims[a] - 1));
    let size = [0, 1, 2].map(|a| high[a] - low[a] + 1);
    LabelledVolume {
        dims: size,
        image: crop(
            &volume.image,
            volume.dims,
            low.map(|v| v as isize),
            size,
            0.0,
        ),
        labels: crop(
            &volume.labels,
            volume.dims,
            low.map(|v| v as isize),
            size,
            0,
        ),
        classes: volume.classes,
    }
}

/// Every `factor`-th voxel's block averaged (image) or voted (labels: the most frequent class).
/// A trailing partial block is dropped.
pub fn downsample(volume: &LabelledVolume, factor: usize) -> LabelledVolume {
    if factor <= 1 {
        return volume.clone();
    }
    let [nx, ny, nz] = volume.dims;
    let out = [nx, ny, nz].map(|d| (d / factor).max(1));
    let mut image = Vec::with_capacity(out.iter().product());
    let mut labels = Vec::with_capacity(out.iter().product());
    for z in 0..out[2] {
        for y in 0..out[1] {
            for x in 0..out[0] {
                let mut sum = 0.0f64;
                let mut votes = vec![0usize; volume.classes];
                let mut count = 0;
                for dz in 0..factor.min(nz) {
                    for dy in 0..factor.min(ny) {
                        for dx in 0..factor.min(nx) {
                            let p = [x * factor + dx, y * factor + dy, z * factor + dz];
                            if p[0] >= nx || p[1] >= ny || p[2] >= nz {
                                continue;
                            }
                            let index = p[0] + nx * (p[1] + ny * p[2]);
                            sum += volume.image[index] as f64;
                            votes[volume.labels[index] as usize] += 1;
                            count += 1;
                        }
                    }
                }
                image.push((sum / count.max(1) as f64) as f32);
                let winner = (0..volume.classes).max_by_key(|&c| (votes[c], std::cmp::Reverse(c)));
                labels.push(winner.unwrap_or(0) as u8);
            }
        }
    }
    LabelledVolume {
        dims: out,
        image,
        labels,
        classes: volume.classes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube() -> LabelledVolume {
        // 4×4×4, non-zero only at x,y,z ∈ {1, 2}.
        let mut image = vec![0.0; 64];
        let mut labels = vec![0u8; 64];
        for z in 1..3 {
            for y in 1..3 {
                for x in 1..3 {
                    image[x + 4 * (y + 4 * z)] = 2.0;
                    labels[x + 4 * (y + 4 * z)] = 1;
                }
            }
        }
        LabelledVolume {
            dims: [4, 4, 4],
            image,
            labels,
            classes: 2,
        }
    }

    #[test]
    fn crop_keeps_the_head_and_the_margin() {
        let cropped = crop_to_foreground(&cube(), 0);
        assert_eq!(cropped.dims, [2, 2, 2]);
        assert!(cropped.image.iter().all(|&v| v == 2.0));
        assert_eq!(crop_to_foreground(&cube(), 1).dims, [4, 4, 4]);
        assert_eq!(crop_to_foreground(&cube(), 5).dims, [4, 4, 4]);
    }

    #[test]
    fn downsampling_averages_the_image_and_votes_the_labels() {
        let small = downsample(&cube(), 2);
        assert_eq!(small.dims, [2, 2, 2]);
        // Each 2³ block holds exactly one of the 8 bright voxels.
        assert!(small.image.iter().all(|&v| (v - 0.25).abs() < 1e-6));
        assert!(small.labels.iter().all(|&l| l == 0));
    }
}
