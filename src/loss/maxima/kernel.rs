//! The kernels, two launches: each workgroup of the first keeps eight running maxima per thread
//! over the voxels `thread`, `thread + threads`, … (neighbouring threads read neighbouring
//! voxels), combines its threads' in workgroup memory and writes one row of `partial`
//! `[groups, 8]`; one workgroup of the second does the same over those rows. Every loop stays
//! short (a thread's share of the voxels, ~16 of them up to 4 M values): lavapipe, the GPU of
//! CI, ends any shader loop after 65 535 iterations, which is why burn's `max_dim` over the
//! 262 144 rows of a first version lost values there (BENCHMARKS.md).
//!
//! Every read is below its count, every write inside its tensor, so they launch unchecked.

use cubecl::prelude::*;

use super::{LOWEST, MAXIMA};

/// Writes the maxima of every thread's `maxima` over the workgroup (of `cube_size` threads, a
/// power of 4) to row `row` of `out`, from thread 0. Two barriers: √n threads combine √n
/// threads' values each, then thread 0 those (SwiftShader, the browser's WebGPU without a GPU,
/// switches every thread at each barrier, so a binary tree's log₂ n of them cost more).
#[cube]
fn write_workgroup_maxima<F: Float>(
    maxima: &Array<F>,
    out: &mut Tensor<F>,
    row: usize,
    #[comptime] cube_size: usize,
) {
    let fan = comptime!(1usize << (cube_size.trailing_zeros() / 2));
    let mut values = Shared::<[F]>::new_slice(comptime!(MAXIMA * cube_size));
    let mut firsts = Shared::<[F]>::new_slice(comptime!(MAXIMA * fan));
    let unit = UNIT_POS_X as usize;
    #[unroll]
    for k in 0..MAXIMA {
        values[unit * MAXIMA + k] = maxima[k];
    }
    sync_cube();
    if unit < fan {
        #[unroll]
        for k in 0..MAXIMA {
            let mut most = F::new(LOWEST);
            #[unroll]
            for j in 0..fan {
                most = F::max(most, values[(unit * fan + j) * MAXIMA + k]);
            }
            firsts[unit * MAXIMA + k] = most;
        }
    }
    sync_cube();
    if unit == 0 {
        #[unroll]
        for k in 0..MAXIMA {
            let mut most = F::new(LOWEST);
            #[unroll]
            for j in 0..fan {
                most = F::max(most, firsts[j * MAXIMA + k]);
            }
            out[row * MAXIMA + k] = most;
        }
    }
}

/// The statistics of `p` and `g` (`count` values each): one row of `partial` per workgroup.
#[cube(launch_unchecked)]
pub(super) fn volume_maxima_kernel<F: Float>(
    p: &Tensor<F>,
    g: &Tensor<F>,
    partial: &mut Tensor<F>,
    count: usize,
    #[comptime] cube_size: usize,
    #[define(F)] _dtype: ElemType,
) {
    let threads = CUBE_COUNT_X as usize * cube_size;
    let mut voxel = CUBE_POS_X as usize * cube_size + UNIT_POS_X as usize;
    let zero = F::new(0.0);
    let one = F::new(1.0);
    let mut maxima = Array::<F>::new(MAXIMA);
    #[unroll]
    for k in 0..MAXIMA {
        maxima[k] = F::new(LOWEST);
    }
    while voxel < count {
        let pv = p[voxel];
        let gv = g[voxel];
        maxima[0] = F::max(maxima[0], -pv);
        maxima[1] = F::max(maxima[1], pv);
        maxima[2] = F::max(maxima[2], -gv);
        maxima[3] = F::max(maxima[3], gv);
        maxima[4] = F::max(maxima[4], F::abs(gv - F::round(gv)));
        maxima[5] = select(gv != zero, F::max(maxima[5], -gv), maxima[5]);
        maxima[6] = F::max(maxima[6], select(gv == F::new(3.0), one, zero));
        maxima[7] = F::max(maxima[7], select(gv == F::new(4.0), one, zero));
        voxel += threads;
    }
    write_workgroup_maxima(&maxima, partial, CUBE_POS_X as usize, cube_size);
}

/// The maxima of each column of `partial` `[rows, 8]`, into `out` `[8]`, by one workgroup.
#[cube(launch_unchecked)]
pub(super) fn combine_maxima_kernel<F: Float>(
    partial: &Tensor<F>,
    out: &mut Tensor<F>,
    rows: usize,
    #[comptime] cube_size: usize,
    #[define(F)] _dtype: ElemType,
) {
    let mut row = UNIT_POS_X as usize;
    let mut maxima = Array::<F>::new(MAXIMA);
    #[unroll]
    for k in 0..MAXIMA {
        maxima[k] = F::new(LOWEST);
    }
    while row < rows {
        #[unroll]
        for k in 0..MAXIMA {
            maxima[k] = F::max(maxima[k], partial[row * MAXIMA + k]);
        }
        row += cube_size;
    }
    write_workgroup_maxima(&maxima, out, 0, cube_size);
}
