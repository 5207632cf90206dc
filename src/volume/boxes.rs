//! Boxes inside an x-fastest volume: where a box overlaps it, and copying a box out (patches,
//! prediction windows, the crop to the head).

/// The overlap of the box `origin .. origin + size` with `0 .. dims`, per axis, as ranges in
/// volume coordinates; `None` when they do not meet.
pub fn overlap(
    dims: [usize; 3],
    origin: [isize; 3],
    size: [usize; 3],
) -> Option<[std::ops::Range<usize>; 3]> {
    let range = |axis: usize| {
        let low = origin[axis].max(0);
        let high = (origin[axis] + size[axis] as isize).min(dims[axis] as isize);
        (low < high).then_some(low as usize..high.max(0) as usize)
    };
    Some([range(0)?, range(1)?, range(2)?])
}

/// Copies the box `origin .. origin + size` (x, y, z) out of an x-fastest array of `dims`; the
/// part outside the volume reads as `fill`. Whole rows are copied at once.
pub fn crop<T: Copy>(
    data: &[T],
    dims: [usize; 3],
    origin: [isize; 3],
    size: [usize; 3],
    fill: T,
) -> Vec<T> {
    let mut out = vec![fill; size.iter().product()];
    let Some([xs, ys, zs]) = overlap(dims, origin, size) else {
        return out;
    };
    let local = |p: usize, axis: usize| (p as isize - origin[axis]) as usize;
    for z in zs {
        for y in ys.clone() {
            let source = xs.start + dims[0] * (y + dims[1] * z);
            let target = local(xs.start, 0) + size[0] * (local(y, 1) + size[1] * local(z, 2));
            out[target..target + xs.len()].copy_from_slice(&data[source..source + xs.len()]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_reads_x_fastest_and_pads_outside() {
        let dims = [3, 2, 2];
        let data: Vec<u8> = (0..12).collect();
        // The 2³ cube at (1, 0, 0): x ∈ {1, 2}, y ∈ {0, 1}, z ∈ {0, 1}.
        assert_eq!(
            crop(&data, dims, [1, 0, 0], [2; 3], 99),
            vec![1, 2, 4, 5, 7, 8, 10, 11]
        );
        // Starting one voxel before the volume on every axis.
        assert_eq!(
            crop(&data, dims, [-1, -1, -1], [2; 3], 99),
            vec![99, 99, 99, 99, 99, 99, 99, 0]
        );
    }
}
