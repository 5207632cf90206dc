//! Which convolution kernels a GPU trains with: the project's tiled kernels at some tile sizes,
//! or im2col + matmul. The tuning pass (`engine/tuning.rs`) times a short list of them on the
//! user's own GPU; the choice is process-wide, like the two settings it sets
//! ([`set_tiles`], [`set_algorithm`]), because a process trains one session at a time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::conv::{ConvAlgorithm, set_algorithm};
use super::kernels::tiles::{Along, Tiles, WeightGrad, set_tiles};

/// One set of kernels: `tiled` with its tile sizes, or `gemm`. Written as text
/// (`tiled:channels=16,…` or `gemm`) so that a stored choice stays readable and a choice from a
/// build that no longer knows it is refused, not misread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum KernelChoice {
    Tiled(Tiles),
    Gemm,
}

impl Default for KernelChoice {
    fn default() -> Self {
        Self::Tiled(Tiles::default())
    }
}

impl KernelChoice {
    /// What the tuning pass times, the defaults first: tile sizes that `bench/tiles.py` found
    /// competitive on lavapipe (16 channels per thread; both memory-friendly variants, which only
    /// a GPU can judge), 4 channels per thread for GPUs with small register files, and im2col +
    /// matmul (burn's matmul: the H200's fastest path at 96³ and above, BENCHMARKS.md, "GPU").
    pub fn candidates() -> Vec<KernelChoice> {
        let tiled = |text: &str| Self::Tiled(text.parse().expect("a valid tile setting"));
        vec![
            Self::default(),
            tiled("channels=16"),
            tiled("along=y"),
            tiled("weight_grad=lanes"),
            tiled("along=y,weight_grad=lanes"),
            tiled("channels=4"),
            Self::Gemm,
        ]
    }

    /// Makes every convolution launched from now on use these kernels.
    pub fn apply(self) {
        match self {
            Self::Tiled(sizes) => {
                set_algorithm(ConvAlgorithm::Auto);
                set_tiles(sizes);
            }
            Self::Gemm => {
                set_algorithm(ConvAlgorithm::Gemm);
                set_tiles(Tiles::default());
            }
        }
    }

    /// Puts back what a GPU's choice changed for the CPU: im2col + matmul would also take flex's
    /// convolutions off gdl-lab's CPU kernels (tile sizes do not touch the CPU). Anything else,
    /// such as a benchmark's `--conv burn`, is left as it is.
    pub fn leave_the_cpu_its_kernels() {
        if super::conv::algorithm() == ConvAlgorithm::Gemm {
            set_algorithm(ConvAlgorithm::Auto);
        }
    }

    /// For the device panel: "tiles 16×8, lanes weight gradient", "the default kernels",
    /// "im2col + matmul".
    pub fn describe(self) -> String {
        let Self::Tiled(tiles) = self else {
            return "im2col + matmul".into();
        };
        if tiles == Tiles::default() {
            return "the default kernels".into();
        }
        let default = Tiles::default();
        let mut parts = vec![format!("tiles {}×{}", tiles.channels, tiles.voxels)];
        if tiles.along == Along::Y {
            parts.push("voxels along y".into());
        }
        if tiles.weight_grad == WeightGrad::Lanes {
            parts.push("lanes weight gradient".into());
        }
        if tiles.workgroup != default.workgroup {
            parts.push(format!("workgroups of {}", tiles.workgroup));
        }
        if tiles.weight_grad_threads != default.weight_grad_threads {
            parts.push(format!(
                "{} weight-gradient threads",
                tiles.weight_grad_threads
            ));
        }
        parts.join(", ")
    }
}

impl fmt::Display for KernelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tiled(tiles) => write!(f, "tiled:{tiles}"),
            Self::Gemm => f.write_str("gemm"),
        }
    }
}

impl FromStr for KernelChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None if text == "gemm" => Ok(Self::Gemm),
            Some(("tiled", tiles)) => tiles.parse().map(Self::Tiled),
            _ => Err(format!("`{text}` is neither tiled:… nor gemm")),
        }
    }
}

impl From<KernelChoice> for String {
    fn from(choice: KernelChoice) -> String {
        choice.to_string()
    }
}

impl TryFrom<String> for KernelChoice {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_reads_back_what_it_writes_and_says_what_it_is() {
        for choice in KernelChoice::candidates() {
            let text = serde_json::to_string(&choice).unwrap();
            assert_eq!(serde_json::from_str::<KernelChoice>(&text).unwrap(), choice);
        }
        assert!(serde_json::from_str::<KernelChoice>("\"tiled:height=3\"").is_err());
        assert!(serde_json::from_str::<KernelChoice>("\"winograd\"").is_err());
        let described: Vec<String> = KernelChoice::candidates()
            .into_iter()
            .map(KernelChoice::describe)
            .collect();
        assert_eq!(
            described,
            [
                "the default kernels",
                "tiles 16×8",
                "tiles 8×8, voxels along y",
                "tiles 8×8, lanes weight gradient",
                "tiles 8×8, voxels along y, lanes weight gradient",
                "tiles 4×8",
                "im2col + matmul"
            ]
        );
    }
}
