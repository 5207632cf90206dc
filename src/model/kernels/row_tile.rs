//! Which row tile a thread of the row-tiled kernels (forward, strided input gradient) computes,
//! and where the forward kernels find a weight.

use cubecl::prelude::*;

/// `channel_tile` channels from `first_channel` × `width_tile` voxels from `x0` of row (z, y) of
/// batch item `b`; `inside` is false for the threads past the last tile.
#[derive(CubeType)]
pub(super) struct RowTile {
    pub b: usize,
    pub first_channel: usize,
    pub z: usize,
    pub y: usize,
    pub x0: usize,
    pub inside: bool,
}

/// The tile of `output` `[B, C, D, H, W]` this thread computes, with the workgroups counted by
/// `cube::tile_workgroups`: x and y number the row tiles, x fastest, so neighbouring threads
/// share input rows; z is the batch and channel tile, so every weight a workgroup reads has the
/// same address in all its threads (a scalar load where the compiler sees it).
#[cube]
pub(super) fn row_tile<F: Float>(
    // `&mut` only because the kernels hold their output so (CubeCL does not reborrow it as `&`).
    output: &mut Tensor<F>,
    #[comptime] channel_tile: usize,
    #[comptime] width_tile: usize,
) -> RowTile {
    let height = output.shape(3);
    let width_tiles = output.shape(4).div_ceil(width_tile);
    let unit = ((CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X) as usize;
    let channel_tiles = output.shape(1) / channel_tile;
    RowTile {
        b: CUBE_POS_Z as usize / channel_tiles,
        first_channel: (CUBE_POS_Z as usize % channel_tiles) * channel_tile,
        z: unit / (width_tiles * height),
        y: (unit / width_tiles) % height,
        x0: (unit % width_tiles) * width_tile,
        inside: unit < output.shape(2) * height * width_tiles,
    }
}

/// The index of the weight that output channel `first_channel + o` applies to input channel `c`
/// at tap `tap` (`(kd·k + kh)·k + kw`). As stored, `weight` is `[Cout, C, k, k, k]`. With
/// `transposed` it is a layer's `[C', Cout', k, k, k]` weights read for the stride-1 input
/// gradient: channel axes swapped and every spatial axis flipped, which reverses the tap order.
/// Reading it so saves the flipped copy (one launch per layer and step).
#[cube]
pub(super) fn weight_index(
    c: usize,
    first_channel: usize,
    o: usize,
    tap: usize,
    channels: usize,
    channels_out: usize,
    #[comptime] taps: usize,
    #[comptime] transposed: bool,
) -> usize {
    if transposed {
        (c * channels_out + first_channel + o) * taps + (comptime!(taps - 1) - tap)
    } else {
        ((first_channel + o) * channels + c) * taps + tap
    }
}
