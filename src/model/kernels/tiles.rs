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
    /// divides the layer's output channels. With 8 × [`Tiles::width`] a thread holds 64 sums,
    /// as GPU matmul kernels commonly do. 16 was 20 % faster on lavapipe (Target 32³: 1.43
    /// against 1.77 s per step) but needs 128 sums per thread, which laptop GPUs would spill;
    /// 4 × 4 was 40 % slower. Not yet measured on a GPU.
    pub channels: usize,
    /// Consecutive output voxels along x one forward thread computes: each weight load serves
    /// this many outputs (8 was 1.5× faster than 4 on lavapipe).
    pub width: usize,
    /// Threads per workgroup of the row-tiled kernels.
    pub workgroup: u32,
    /// How many threads the weight gradient aims for: enough to fill a large GPU (an H200 runs
    /// ~270 000 at once); each thread sums one chunk of output rows.
    pub weight_grad_threads: usize,
}

impl Default for Tiles {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Tiles {
    const DEFAULT: Tiles = Tiles {
        channels: 8,
        width: 8,
        workgroup: 128,
        weight_grad_threads: 1 << 17,
    };

    /// The largest value of each that the kernels are written for: the sums a thread holds live
    /// in registers, and WebGPU guarantees 256 threads per workgroup.
    const MAX_CHANNELS: usize = 16;
    const MAX_WIDTH: usize = 16;
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

/// `channels=16,width=4,workgroup=64,weight_grad_threads=65536`: any of the four, in any order;
/// the others keep their defaults.
impl FromStr for Tiles {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut tiles = Tiles::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=value"))?;
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
                "width" if (1..=Self::MAX_WIDTH).contains(&number) => tiles.width = number,
                "width" => {
                    return Err(format!(
                        "width must be 1 to {}, not {number}",
                        Self::MAX_WIDTH
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
                        "`{name}` is not one of channels, width, workgroup, weight_grad_threads"
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
            "channels={},width={},workgroup={},weight_grad_threads={}",
            self.channels, self.width, self.workgroup, self.weight_grad_threads
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
        let tiles: Tiles = " width=4, channels=16 ,workgroup=64,weight_grad_threads=65536"
            .parse()
            .unwrap();
        assert_eq!(
            tiles,
            Tiles {
                channels: 16,
                width: 4,
                workgroup: 64,
                weight_grad_threads: 65536
            }
        );
        assert_eq!(tiles.to_string().parse::<Tiles>(), Ok(tiles));
        assert_eq!("".parse::<Tiles>(), Ok(Tiles::default()));
        for (bad, says) in [
            ("channels=12", "power of two"),
            ("channels=32", "up to 16"),
            ("width=0", "1 to 16"),
            ("workgroup=100", "one of [32, 64, 128, 256]"),
            ("weight_grad_threads=10", "at least 1024"),
            ("height=3", "not one of"),
            ("width", "not name=value"),
            ("width=x", "not a whole number"),
        ] {
            let error = bad.parse::<Tiles>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
