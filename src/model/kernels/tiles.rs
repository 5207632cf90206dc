//! The convolution kernels' tile sizes: one process-wide setting, so that a single benchmark
//! run on a lent GPU, where nothing can be rebuilt, can compare several (`gdl-lab bench
//! --tiles`, `bench/gpu.sh`). CubeCL compiles a kernel per tile size at run time, so choosing
//! one costs nothing but its compilation. Training always uses the defaults.

use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

/// How the row-tiled kernels (forward, input gradient) and the weight gradient divide the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    /// The most output channels one thread computes: the largest power of two up to this that
    /// divides the layer's output channels. With 8 × [`Tiles::voxels`] a thread holds 64 sums,
    /// as GPU matmul kernels commonly do. 16 was 20 % faster on lavapipe (Target 32³: 1.43
    /// against 1.77 s per step) but needs 128 sums per thread, which laptop GPUs would spill;
    /// 4 × 4 was 40 % slower. Not yet measured on a GPU.
    pub channels: usize,
    /// Consecutive output voxels one thread computes (the forward kernel's along [`Tiles::along`],
    /// the strided input gradient's along x): each weight load serves this many outputs (8 was
    /// 1.5× faster than 4 on lavapipe).
    pub voxels: usize,
    /// The axis of a forward thread's voxels: x (`forward.rs`) or y (`forward_columns.rs`,
    /// whose loads suit a GPU's memory better and a CPU's worse; not yet measured on a GPU).
    pub along: Along,
    /// Threads per workgroup of the row-tiled kernels.
    pub workgroup: u32,
    /// How the weight gradient's threads divide the work: rows (`weight_grad.rs`) or lanes
    /// (`weight_grad_lanes.rs`, whose loads suit a GPU's memory better; not yet measured on a
    /// GPU).
    pub weight_grad: WeightGrad,
    /// How many threads the weight gradient aims for: enough to fill a large GPU (an H200 runs
    /// ~270 000 at once); each thread sums one chunk of output rows.
    pub weight_grad_threads: usize,
}

/// Which weight-gradient kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightGrad {
    Rows,
    Lanes,
}

impl fmt::Display for WeightGrad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WeightGrad::Rows => "rows",
            WeightGrad::Lanes => "lanes",
        })
    }
}

/// The axis along which a forward thread's voxels lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Along {
    X,
    Y,
}

impl fmt::Display for Along {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Along::X => "x",
            Along::Y => "y",
        })
    }
}

impl Default for Tiles {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Tiles {
    const DEFAULT: Tiles = Tiles {
        channels: 8,
        voxels: 8,
        along: Along::X,
        workgroup: 128,
        weight_grad: WeightGrad::Rows,
        weight_grad_threads: 1 << 17,
    };

    /// The largest value of each that the kernels are written for: the sums a thread holds live
    /// in registers, and WebGPU guarantees 256 threads per workgroup.
    const MAX_CHANNELS: usize = 16;
    const MAX_VOXELS: usize = 16;
    const WORKGROUPS: [u32; 4] = [32, 64, 128, 256];

    /// The output channels one thread computes for a layer with `channels_out` of them.
    pub fn channel_tile(&self, channels_out: usize) -> usize {
        let mut tile = self.channels;
        while !channels_out.is_multiple_of(tile) {
            tile /= 2;
        }
        tile
    }
}

/// `channels=16,voxels=4,along=y,workgroup=64,weight_grad=lanes,weight_grad_threads=65536`: any
/// of these, in any order; the others keep their defaults.
impl FromStr for Tiles {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut tiles = Tiles::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=value"))?;
            if name == "along" {
                tiles.along = match value {
                    "x" => Along::X,
                    "y" => Along::Y,
                    _ => return Err(format!("along must be x or y, not {value}")),
                };
                continue;
            }
            if name == "weight_grad" {
                tiles.weight_grad = match value {
                    "rows" => WeightGrad::Rows,
                    "lanes" => WeightGrad::Lanes,
                    _ => return Err(format!("weight_grad must be rows or lanes, not {value}")),
                };
                continue;
            }
            let number: usize = value
                .parse()
                .map_err(|_| format!("`{value}` ({name}) is not a whole number"))?;
            match name {
                "channels" if number.is_power_of_two() && number <= Self::MAX_CHANNELS => {
                    tiles.channels = number
                }
                "channels" => {
                    return Err(format!(
                        "channels must be a power of two up to {}, not {number}",
                        Self::MAX_CHANNELS
                    ));
                }
                "voxels" if (1..=Self::MAX_VOXELS).contains(&number) => tiles.voxels = number,
                "voxels" => {
                    return Err(format!(
                        "voxels must be 1 to {}, not {number}",
                        Self::MAX_VOXELS
                    ));
                }
                "workgroup" if Self::WORKGROUPS.contains(&(number as u32)) => {
                    tiles.workgroup = number as u32
                }
                "workgroup" => {
                    return Err(format!(
                        "workgroup must be one of {:?}, not {number}",
                        Self::WORKGROUPS
                    ));
                }
                "weight_grad_threads" if number >= 1024 => tiles.weight_grad_threads = number,
                "weight_grad_threads" => {
                    return Err(format!(
                        "weight_grad_threads must be at least 1024, not {number}"
                    ));
                }
                _ => {
                    return Err(format!(
                        "`{name}` is not one of channels, voxels, along, workgroup, \
                         weight_grad, weight_grad_threads"
                    ));
                }
            }
        }
        Ok(tiles)
    }
}

impl fmt::Display for Tiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "channels={},voxels={},along={},workgroup={},weight_grad={},weight_grad_threads={}",
            self.channels,
            self.voxels,
            self.along,
            self.workgroup,
            self.weight_grad,
            self.weight_grad_threads
        )
    }
}

static TILES: RwLock<Tiles> = RwLock::new(Tiles::DEFAULT);

/// Sets the tile sizes of every convolution launched from now on.
pub fn set_tiles(tiles: Tiles) {
    *TILES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = tiles;
}

/// The tile sizes in use.
pub fn tiles() -> Tiles {
    *TILES
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_tile_divides_the_channels() {
        let tiles = Tiles::default();
        assert_eq!(tiles.channel_tile(64), 8);
        assert_eq!(tiles.channel_tile(4), 4);
        assert_eq!(tiles.channel_tile(6), 2);
        assert_eq!(tiles.channel_tile(5), 1);
        let wide: Tiles = "channels=16".parse().unwrap();
        assert_eq!(wide.channel_tile(64), 16);
        assert_eq!(wide.channel_tile(24), 8);
    }

    #[test]
    fn tiles_read_back_what_they_print_and_refuse_what_the_kernels_cannot_take() {
        let tiles: Tiles =
            " voxels=4, channels=16 ,along=y,workgroup=64,weight_grad=lanes,weight_grad_threads=65536"
                .parse()
                .unwrap();
        assert_eq!(
            tiles,
            Tiles {
                channels: 16,
                voxels: 4,
                along: Along::Y,
                workgroup: 64,
                weight_grad: WeightGrad::Lanes,
                weight_grad_threads: 65536
            }
        );
        assert_eq!(tiles.to_string().parse::<Tiles>(), Ok(tiles));
        assert_eq!("".parse::<Tiles>(), Ok(Tiles::default()));
        for (bad, says) in [
            ("channels=12", "power of two"),
            ("channels=32", "up to 16"),
            ("voxels=0", "1 to 16"),
            ("along=z", "x or y"),
            ("weight_grad=columns", "rows or lanes"),
            ("workgroup=100", "one of [32, 64, 128, 256]"),
            ("weight_grad_threads=10", "at least 1024"),
            ("height=3", "not one of"),
            ("voxels", "not name=value"),
            ("voxels=x", "not a whole number"),
        ] {
            let error = bad.parse::<Tiles>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
