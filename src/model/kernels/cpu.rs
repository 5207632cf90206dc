//! The 3D convolution and both its gradients on the CPU (flex): im2col in cache-sized tiles,
//! each tile one call of the `gemm` crate's matrix product, the tiles spread over rayon's threads.
//!
//! Why by hand: burn-flex 0.22's `conv3d` copies the input to channels-last and gathers each
//! 512-voxel tile with a scalar loop, and its backward passes are burn's generic ones: the input
//! gradient a transposed convolution that scatters, the weight gradient a convolution of the
//! input by the whole output gradient as a kernel (one matmul with an inner dimension of every
//! voxel and an outer one of 27). At 64³ that put flex at 3× PyTorch's step (BENCHMARKS.md,
//! section a). Here every pass is a well-shaped matrix product on NCDHW data, with no layout
//! copies:
//!
//! - forward: `Y[Cout, tile] = W[Cout, C·k³] × columns[C·k³, tile]`, where a tile is a run of
//!   output rows and its columns are copied row by row from the input (a `k = 1` layer reads the
//!   input itself);
//! - input gradient, stride 1: the forward pass over the output gradient with the weights'
//!   channel axes swapped and every spatial axis flipped (a gather, so the tiles never write the
//!   same voxel);
//! - input gradient, larger strides: `dcolumns = Wᵀ × dY[:, plane]` per output plane, added back
//!   onto the input (col2im), in phases of planes far enough apart not to touch the same input
//!   plane;
//! - weight gradient: `dW += dY[:, tile] × columns[tile]ᵀ`, summed per fixed group of tiles and
//!   the groups added in order, so the result does not depend on the thread count or on which
//!   thread ran what (flex's bit-for-bit repeatability for a seed).

use gemm::{Parallelism, gemm};

/// The largest column buffer of one forward or weight-gradient tile: a quarter of a laptop core's
/// L2 (1 MiB on recent x86 and Apple cores), so the columns stay there while `gemm` packs them.
const COLUMN_TILE_BYTES: usize = 256 << 10;

/// How many partial weight gradients a layer's tiles are summed into (then added in order): a
/// fixed number, so the sum is the same on any thread count; enough for 16 threads.
const WEIGHT_GRAD_GROUPS: usize = 16;

/// One convolution (groups 1, dilation 1, the same stride and zero padding on every axis) of
/// `[batch, channels, d, h, w]` by `[channels_out, channels, k, k, k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub channels: usize,
    pub channels_out: usize,
    pub input: [usize; 3],
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvShape {
    /// `None` where the padded input is smaller than the kernel, or a size is 0.
    pub fn output(&self) -> Option<[usize; 3]> {
        let valid = self.kernel > 0 && self.stride > 0;
        let edge = |n: usize| {
            (valid && n + 2 * self.padding >= self.kernel)
                .then(|| (n + 2 * self.padding - self.kernel) / self.stride + 1)
        };
        let [d, h, w] = self.input;
        Some([edge(d)?, edge(h)?, edge(w)?])
    }

    fn output_dims(&self) -> [usize; 3] {
        self.output()
            .expect("a convolution whose kernel fits its padded input")
    }

    fn taps(&self) -> usize {
        self.kernel.pow(3)
    }

    /// The rows of the column matrix, `C·k³`, ordered (channel, kd, kh, kw) as the weights are.
    fn column_rows(&self) -> usize {
        self.channels * self.taps()
    }

    fn input_voxels(&self) -> usize {
        self.input.iter().product()
    }

    fn output_voxels(&self) -> usize {
        self.output_dims().iter().product()
    }

    /// A `k = 1` layer with stride 1 and no padding: its columns are its input.
    fn pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }
}

/// `input` `[B, C, D, H, W]` convolved with `weight` `[Cout, C, k, k, k]`: `[B, Cout, D', H', W']`.
pub fn forward(input: &[f32], weight: &[f32], shape: ConvShape) -> Vec<f32> {
    let (k_rows, voxels_in, voxels_out) = (
        shape.column_rows(),
        shape.input_voxels(),
        shape.output_voxels(),
    );
    assert_eq!(input.len(), shape.batch * shape.channels * voxels_in);
    assert_eq!(weight.len(), shape.channels_out * k_rows);
    let mut output = vec![0.0; shape.batch * shape.channels_out * voxels_out];
    let out = SharedOutput(output.as_mut_ptr());
    let tiles = row_tiles(shape);
    let width = shape.output_dims()[2];
    for_each_tile(&tiles, Vec::new, |columns: &mut Vec<f32>, tile| {
        let batch_input = &input[tile.batch * shape.channels * voxels_in..];
        let (first, voxels) = (tile.first_row * width, tile.rows * width);
        let (rhs, rhs_row_stride) = if shape.pointwise() {
            (batch_input[first..].as_ptr(), voxels_in)
        } else {
            im2col(batch_input, shape, *tile, columns);
            (columns.as_ptr(), voxels)
        };
        // SAFETY: the tile writes columns `first..first + voxels` of every output channel of its
        // batch item, which no other tile writes; every pointer stays inside its buffer (the
        // lengths are asserted above and the tiles lie within the output).
        unsafe {
            gemm(
                shape.channels_out,
                voxels,
                k_rows,
                out.at(tile.batch * shape.channels_out * voxels_out + first),
                1,
                voxels_out as isize,
                false,
                weight.as_ptr(),
                1,
                k_rows as isize,
                rhs,
                1,
                rhs_row_stride as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
    output
}

/// The gradient with respect to the weights, `[Cout, C, k, k, k]`, given the layer's `input` and
/// its output gradient `output_grad` `[B, Cout, D', H', W']`.
pub fn weight_grad(input: &[f32], output_grad: &[f32], shape: ConvShape) -> Vec<f32> {
    let (k_rows, voxels_in, voxels_out) = (
        shape.column_rows(),
        shape.input_voxels(),
        shape.output_voxels(),
    );
    assert_eq!(input.len(), shape.batch * shape.channels * voxels_in);
    assert_eq!(
        output_grad.len(),
        shape.batch * shape.channels_out * voxels_out
    );
    let tiles = row_tiles(shape);
    let width = shape.output_dims()[2];
    let groups: Vec<&[Tile]> = tiles
        .chunks(tiles.len().div_ceil(WEIGHT_GRAD_GROUPS))
        .collect();
    let partials = map_groups(&groups, |group| {
        let mut partial = vec![0.0; shape.channels_out * k_rows];
        let mut columns = Vec::new();
        for (index, tile) in group.iter().enumerate() {
            let batch_input = &input[tile.batch * shape.channels * voxels_in..];
            let (first, voxels) = (tile.first_row * width, tile.rows * width);
            // The columns as a [voxels, C·k³] matrix: element (v, r) at r·stride + v.
            let (columns_ptr, column_stride) = if shape.pointwise() {
                (batch_input[first..].as_ptr(), voxels_in)
            } else {
                im2col(batch_input, shape, *tile, &mut columns);
                (columns.as_ptr(), voxels)
            };
            let grad = &output_grad[tile.batch * shape.channels_out * voxels_out + first..];
            // SAFETY: `partial` is this group's own; the reads stay inside the tile's rows of
            // `grad` and of the columns (lengths asserted above).
            unsafe {
                gemm(
                    shape.channels_out,
                    k_rows,
                    voxels,
                    partial.as_mut_ptr(),
                    1,
                    k_rows as isize,
                    index > 0,
                    grad.as_ptr(),
                    1,
                    voxels_out as isize,
                    columns_ptr,
                    column_stride as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        }
        partial
    });
    let mut partials = partials.into_iter();
    let mut sum = partials.next().unwrap_or_default();
    for partial in partials {
        sum.iter_mut().zip(&partial).for_each(|(s, p)| *s += p);
    }
    sum
}

/// The gradient with respect to the input, `[B, C, D, H, W]`, given the weights and the output
/// gradient.
pub fn input_grad(weight: &[f32], output_grad: &[f32], shape: ConvShape) -> Vec<f32> {
    if shape.stride == 1 && shape.padding < shape.kernel {
        // A convolution of the output gradient by the flipped, transposed weights.
        let gathered = ConvShape {
            channels: shape.channels_out,
            channels_out: shape.channels,
            input: shape.output_dims(),
            padding: shape.kernel - 1 - shape.padding,
            ..shape
        };
        debug_assert_eq!(gathered.output(), Some(shape.input));
        forward(
            output_grad,
            &flipped_transposed(weight, shape.channels_out, shape.channels, shape.kernel),
            gathered,
        )
    } else {
        input_grad_scattered(weight, output_grad, shape)
    }
}

/// `weight` `[a, b, k, k, k]` as `[b, a, k, k, k]` with every spatial axis reversed: the kernel
/// whose forward convolution is the transposed (stride-1) convolution by `weight`.
pub fn flipped_transposed(weight: &[f32], a: usize, b: usize, kernel: usize) -> Vec<f32> {
    let taps = kernel.pow(3);
    assert_eq!(weight.len(), a * b * taps);
    let mut flipped = vec![0.0; weight.len()];
    for i in 0..a {
        for j in 0..b {
            let source = &weight[(i * b + j) * taps..][..taps];
            let target = &mut flipped[(j * a + i) * taps..][..taps];
            // Reversing the flat kd·kh·kw index reverses all three axes at once.
            target
                .iter_mut()
                .zip(source.iter().rev())
                .for_each(|(t, s)| *t = *s);
        }
    }
    flipped
}

/// The input gradient of a strided layer: per output plane `dcolumns = Wᵀ × dY[:, plane]`,
/// scattered back onto the input planes it came from.
fn input_grad_scattered(weight: &[f32], output_grad: &[f32], shape: ConvShape) -> Vec<f32> {
    let (k_rows, voxels_in, voxels_out) = (
        shape.column_rows(),
        shape.input_voxels(),
        shape.output_voxels(),
    );
    assert_eq!(weight.len(), shape.channels_out * k_rows);
    assert_eq!(
        output_grad.len(),
        shape.batch * shape.channels_out * voxels_out
    );
    let out_w = shape.output_dims()[2];
    let mut input_grad = vec![0.0; shape.batch * shape.channels * voxels_in];
    let out = SharedOutput(input_grad.as_mut_ptr());
    for planes in scatter_phases(shape) {
        for_each_tile(&planes, Vec::new, |columns: &mut Vec<f32>, plane| {
            let voxels = plane.rows * out_w;
            columns.resize(k_rows * voxels, 0.0);
            let first = plane.first_row * out_w;
            let grad = &output_grad[plane.batch * shape.channels_out * voxels_out + first..];
            // SAFETY: `columns` is this task's own buffer of k_rows × voxels; the reads stay in
            // the plane's voxels of `grad` and in `weight` (lengths asserted above).
            unsafe {
                gemm(
                    k_rows,
                    voxels,
                    shape.channels_out,
                    columns.as_mut_ptr(),
                    1,
                    voxels as isize,
                    false,
                    weight.as_ptr(),
                    k_rows as isize,
                    1,
                    grad.as_ptr(),
                    1,
                    voxels_out as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            // SAFETY: this plane adds only into input planes z·stride − p … + k − 1 of its batch
            // item, which no other plane of this phase touches (`scatter_phases`); the slice is
            // that batch item's gradient.
            let batch_grad = unsafe {
                std::slice::from_raw_parts_mut(
                    out.at(plane.batch * shape.channels * voxels_in),
                    shape.channels * voxels_in,
                )
            };
            col2im(columns, shape, *plane, batch_grad);
        });
    }
    input_grad
}

/// The output planes of every batch item, in phases whose planes add onto disjoint input planes:
/// output planes `gap` apart read input planes `z·stride − p … + k − 1` that never overlap when
/// `gap · stride ≥ k`, so a phase's planes can be added in parallel.
fn scatter_phases(shape: ConvShape) -> Vec<Vec<Tile>> {
    let [out_d, out_h, _] = shape.output_dims();
    let gap = shape.kernel.div_ceil(shape.stride);
    (0..gap)
        .map(|phase| {
            (0..shape.batch)
                .flat_map(|batch| {
                    (phase..out_d).step_by(gap).map(move |z| Tile {
                        batch,
                        first_row: z * out_h,
                        rows: out_h,
                    })
                })
                .collect()
        })
        .collect()
}

/// A run of output rows (one row: fixed z and y, every x) of one batch item.
#[derive(Clone, Copy, Debug)]
struct Tile {
    batch: usize,
    /// `z · out_h + y` of its first row.
    first_row: usize,
    rows: usize,
}

/// The output's rows cut into tiles whose columns fit [`COLUMN_TILE_BYTES`] (at least one row).
fn row_tiles(shape: ConvShape) -> Vec<Tile> {
    let [out_d, out_h, out_w] = shape.output_dims();
    let rows = out_d * out_h;
    let row_bytes = 4
        * out_w
        * if shape.pointwise() {
            1
        } else {
            shape.column_rows()
        };
    let per_tile = (COLUMN_TILE_BYTES / row_bytes.max(1)).clamp(1, rows);
    (0..shape.batch)
        .flat_map(|batch| {
            (0..rows).step_by(per_tile).map(move |first_row| Tile {
                batch,
                first_row,
                rows: per_tile.min(rows - first_row),
            })
        })
        .collect()
}

/// The tile's columns, `[C·k³, rows · out_w]`, from one batch item's input `[C, D, H, W]`.
fn im2col(input: &[f32], shape: ConvShape, tile: Tile, columns: &mut Vec<f32>) {
    let (width, out_w) = (shape.input[2], shape.output_dims()[2]);
    columns.resize(shape.column_rows() * tile.rows * out_w, 0.0);
    for_each_column_row(shape, tile, |start, kw, input_row| {
        let segment = &mut columns[start..start + out_w];
        match input_row {
            Some(first) => copy_row(&input[first..first + width], segment, shape, kw),
            None => segment.fill(0.0),
        }
    });
}

/// Adds a plane's `[C·k³, rows · out_w]` column gradients back onto the input `[C, D, H, W]`.
fn col2im(columns: &[f32], shape: ConvShape, tile: Tile, input_grad: &mut [f32]) {
    let (width, out_w) = (shape.input[2], shape.output_dims()[2]);
    for_each_column_row(shape, tile, |start, kw, input_row| {
        let Some(first) = input_row else { return };
        let target = &mut input_grad[first..first + width];
        for (x, value) in columns[start..start + out_w].iter().enumerate() {
            let ix = (x * shape.stride + kw).wrapping_sub(shape.padding);
            if let Some(t) = target.get_mut(ix) {
                *t += value;
            }
        }
    });
}

/// Every output row of every column row of a tile, in the columns' order (channel, kd, kh, kw,
/// then the tile's rows): where its `out_w` values start in the columns, its `kw`, and where the
/// input row it reads starts in the batch item's input (`None` in the padding above or below).
fn for_each_column_row(
    shape: ConvShape,
    tile: Tile,
    mut visit: impl FnMut(usize, usize, Option<usize>),
) {
    let [_, out_h, out_w] = shape.output_dims();
    let [depth, height, width] = shape.input;
    let (k, s, p) = (shape.kernel, shape.stride, shape.padding);
    let mut start = 0;
    for channel in 0..shape.channels {
        let plane = channel * depth * height * width;
        for kd in 0..k {
            for kh in 0..k {
                for kw in 0..k {
                    for row in tile.first_row..tile.first_row + tile.rows {
                        let (z, y) = (row / out_h, row % out_h);
                        let (iz, iy) = ((z * s + kd).wrapping_sub(p), (y * s + kh).wrapping_sub(p));
                        let inside = iz < depth && iy < height;
                        visit(
                            start,
                            kw,
                            inside.then(|| plane + (iz * height + iy) * width),
                        );
                        start += out_w;
                    }
                }
            }
        }
    }
}

/// `target[x] = source[x·stride + kw − p]`, 0 where that lies outside the row.
fn copy_row(source: &[f32], target: &mut [f32], shape: ConvShape, kw: usize) {
    let (stride, p) = (shape.stride, shape.padding);
    if stride == 1 {
        // The x whose source index lies in the row: [p − kw, width + p − kw) ∩ [0, out_w).
        let first = p.saturating_sub(kw).min(target.len());
        let end = (source.len() + p)
            .saturating_sub(kw)
            .clamp(first, target.len());
        target[..first].fill(0.0);
        target[first..end].copy_from_slice(&source[first + kw - p..end + kw - p]);
        target[end..].fill(0.0);
    } else {
        for (x, value) in target.iter_mut().enumerate() {
            let ix = (x * stride + kw).wrapping_sub(p);
            *value = source.get(ix).copied().unwrap_or(0.0);
        }
    }
}

/// The output buffer, shared by tasks that each write their own part of it.
#[derive(Clone, Copy)]
struct SharedOutput(*mut f32);

// SAFETY: the tasks given one write disjoint elements (each caller says why).
unsafe impl Send for SharedOutput {}
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// A method, not the field, so that closures capture the whole (Sync) wrapper.
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers pass offsets inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// Runs `work` on every tile, on rayon's threads natively (each thread with its own scratch
/// from `scratch`); in order in the browser's single-threaded wasm.
fn for_each_tile<S, F>(tiles: &[Tile], scratch: fn() -> S, work: F)
where
    S: Send,
    F: Fn(&mut S, &Tile) + Sync + Send,
{
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        tiles.par_iter().for_each_init(scratch, work);
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut own = scratch();
        tiles.iter().for_each(|tile| work(&mut own, tile));
    }
}

/// `work` on every group, in parallel natively, the results in the groups' order.
fn map_groups<F>(groups: &[&[Tile]], work: F) -> Vec<Vec<f32>>
where
    F: Fn(&[Tile]) -> Vec<f32> + Sync + Send,
{
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        groups.par_iter().map(|group| work(group)).collect()
    }
    #[cfg(target_arch = "wasm32")]
    {
        groups.iter().map(|group| work(group)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, voxel by voxel: the slow reference these kernels are checked against.
    fn direct(input: &[f32], weight: &[f32], shape: ConvShape) -> Vec<f32> {
        let [od, oh, ow] = shape.output().unwrap();
        let [d, h, w] = shape.input;
        let (k, s, p) = (shape.kernel, shape.stride, shape.padding);
        let mut output = vec![0.0f64; shape.batch * shape.channels_out * od * oh * ow];
        for b in 0..shape.batch {
            for co in 0..shape.channels_out {
                for (z, y, x) in
                    (0..od).flat_map(|z| (0..oh).flat_map(move |y| (0..ow).map(move |x| (z, y, x))))
                {
                    let mut sum = 0.0f64;
                    for c in 0..shape.channels {
                        for (a, bb, cc) in (0..k).flat_map(|a| {
                            (0..k).flat_map(move |bb| (0..k).map(move |cc| (a, bb, cc)))
                        }) {
                            let (iz, iy, ix) = (
                                (z * s + a).wrapping_sub(p),
                                (y * s + bb).wrapping_sub(p),
                                (x * s + cc).wrapping_sub(p),
                            );
                            if iz < d && iy < h && ix < w {
                                let xi = (((b * shape.channels + c) * d + iz) * h + iy) * w + ix;
                                let wi = (((co * shape.channels + c) * k + a) * k + bb) * k + cc;
                                sum += input[xi] as f64 * weight[wi] as f64;
                            }
                        }
                    }
                    output[(((b * shape.channels_out + co) * od + z) * oh + y) * ow + x] = sum;
                }
            }
        }
        output.into_iter().map(|v| v as f32).collect()
    }

    fn ramp(n: usize, phase: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * 0.37 + phase).sin()).collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    fn shapes() -> Vec<ConvShape> {
        let shape = |batch, channels, channels_out, input, kernel, stride, padding| ConvShape {
            batch,
            channels,
            channels_out,
            input,
            kernel,
            stride,
            padding,
        };
        vec![
            shape(2, 3, 5, [9, 8, 7], 3, 1, 1),
            shape(1, 4, 6, [9, 8, 6], 3, 2, 1),
            shape(1, 5, 4, [7, 5, 9], 1, 1, 0),
            shape(2, 2, 4, [7, 6, 9], 3, 1, 0),
            shape(1, 3, 4, [9, 7, 10], 3, 2, 0),
            shape(1, 2, 3, [5, 6, 7], 1, 2, 0),
        ]
    }

    #[test]
    fn the_forward_pass_is_the_definition() {
        for shape in shapes() {
            let input = ramp(shape.batch * shape.channels * shape.input_voxels(), 0.1);
            let weight = ramp(shape.channels_out * shape.column_rows(), 0.7);
            let ours = forward(&input, &weight, shape);
            let reference = direct(&input, &weight, shape);
            assert_eq!(ours.len(), reference.len(), "{shape:?}");
            for (a, b) in ours.iter().zip(&reference) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{shape:?}: {a} vs {b}"
                );
            }
        }
    }

    /// Both gradients satisfy ⟨Y(x, w), g⟩ = ⟨x, ∂/∂x⟩ = ⟨w, ∂/∂w⟩, the conv being bilinear.
    #[test]
    fn the_gradients_are_the_adjoints_of_the_forward_pass() {
        for shape in shapes() {
            let input = ramp(shape.batch * shape.channels * shape.input_voxels(), 0.1);
            let weight = ramp(shape.channels_out * shape.column_rows(), 0.7);
            let grad = ramp(
                shape.batch * shape.channels_out * shape.output_voxels(),
                1.3,
            );
            let value = dot(&direct(&input, &weight, shape), &grad);
            let by_input = dot(&input, &input_grad(&weight, &grad, shape));
            let by_weight = dot(&weight, &weight_grad(&input, &grad, shape));
            let close = |a: f64| (a - value).abs() <= 1e-4 * (1.0 + value.abs());
            assert!(close(by_input), "{shape:?}: input {by_input} vs {value}");
            assert!(close(by_weight), "{shape:?}: weight {by_weight} vs {value}");
        }
    }

    /// The strided input gradient adds planes in parallel: within a phase no two planes of one
    /// batch item may touch the same input plane (a data race otherwise, which small tests
    /// rarely show), and every output plane is in exactly one phase.
    #[test]
    fn the_scatter_phases_never_share_an_input_plane() {
        for (kernel, stride, padding) in [(3, 2, 1), (3, 2, 0), (3, 1, 1), (1, 2, 0), (5, 2, 2)] {
            let shape = ConvShape {
                batch: 2,
                channels: 1,
                channels_out: 1,
                input: [17, 4, 4],
                kernel,
                stride,
                padding,
            };
            let [out_d, out_h, _] = shape.output().unwrap();
            let phases = scatter_phases(shape);
            let mut seen = vec![0; 2 * out_d];
            for phase in &phases {
                let mut touched = std::collections::HashSet::new();
                for plane in phase {
                    let z = plane.first_row / out_h;
                    seen[plane.batch * out_d + z] += 1;
                    for input_plane in
                        (z * stride..z * stride + kernel).map(|i| i as isize - padding as isize)
                    {
                        assert!(
                            touched.insert((plane.batch, input_plane)),
                            "k{kernel} s{stride} p{padding}: input plane {input_plane} twice in a phase"
                        );
                    }
                }
            }
            assert!(
                seen.iter().all(|n| *n == 1),
                "k{kernel} s{stride}: {seen:?}"
            );
        }
    }

    /// The passes give the same bits on any number of threads: each output element is one
    /// tile's `gemm`, the scatter adds its planes in a fixed order, and the weight gradient's
    /// groups are fixed and added in order (partials per thread would fail this).
    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn every_pass_gives_the_same_bits_on_any_thread_count() {
        let shapes = [(1, 3), (2, 2)].map(|(stride, batch)| ConvShape {
            batch,
            channels: 24,
            channels_out: 8,
            input: [12, 11, 10],
            kernel: 3,
            stride,
            padding: 1,
        });
        for shape in shapes {
            // Enough tiles for every weight-gradient group (stride 1), or several scatter planes
            // per phase (stride 2).
            let enough = if shape.stride == 1 {
                WEIGHT_GRAD_GROUPS
            } else {
                2
            };
            assert!(row_tiles(shape).len() > enough, "{shape:?}: too few tiles");
            let input = ramp(shape.batch * shape.channels * shape.input_voxels(), 0.1);
            let weight = ramp(shape.channels_out * shape.column_rows(), 0.7);
            let grad = ramp(
                shape.batch * shape.channels_out * shape.output_voxels(),
                1.3,
            );
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool");
                pool.install(|| {
                    [
                        forward(&input, &weight, shape),
                        input_grad(&weight, &grad, shape),
                        weight_grad(&input, &grad, shape),
                    ]
                })
            };
            let bits = |passes: [Vec<f32>; 3]| {
                passes.map(|p| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            };
            let one = bits(on(1));
            for threads in [2, 3, 5] {
                assert!(
                    one == bits(on(threads)),
                    "{shape:?}: {threads} threads give other bits"
                );
            }
        }
    }

    #[test]
    fn the_tiles_cover_every_output_row_once() {
        let shape = ConvShape {
            batch: 2,
            channels: 32,
            channels_out: 64,
            input: [20, 20, 20],
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let tiles = row_tiles(shape);
        assert!(tiles.len() > 2, "a large layer takes several tiles");
        for batch in 0..2 {
            let mut next = 0;
            for tile in tiles.iter().filter(|t| t.batch == batch) {
                assert_eq!(tile.first_row, next);
                next += tile.rows;
            }
            assert_eq!(next, 400);
        }
    }
}
