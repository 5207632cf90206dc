//! Segmentation nets. Each takes `[batch, channels, z, y, x]` intensities (one channel per
//! modality; with one they are exactly the seed's nets) and returns `[batch, classes, z, y, x]`
//! logits.

#[cfg(engine)]
pub mod conv;
#[cfg(engine)]
pub mod kernel_choice;
#[cfg(engine)]
pub mod kernels;
#[cfg(engine)]
pub mod norm;
#[cfg(engine)]
pub mod simple;
#[cfg(engine)]
pub mod target;
#[cfg(engine)]
pub mod unet;
#[cfg(engine)]
pub mod weights;
#[cfg(engine)]
pub mod weights_info;
#[cfg(engine)]
pub mod widen;

#[cfg(engine)]
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(engine)]
pub use simple::{Simple3DModel, Simple3DModelConfig};
#[cfg(engine)]
pub use target::{Target3DModel, Target3DModelConfig};
#[cfg(engine)]
pub use unet::{UNet3d, UNet3dConfig};
#[cfg(engine)]
pub use widen::widen_simple_to_target;

/// Which net to train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The seed's small net (conv 1→8→16→C).
    Simple,
    /// The seed's target net (conv 1→16→32→64→C).
    Target,
    /// A compact 3-level 3D U-Net.
    #[default]
    Unet,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [ModelKind::Simple, ModelKind::Target, ModelKind::Unet];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Simple => "simple",
            ModelKind::Target => "target",
            ModelKind::Unet => "unet",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ModelKind::Simple => "the seed's Simple3DModel: conv 1→8→16 (k3, ReLU), 16→C (k1)",
            ModelKind::Target => "the seed's Target3DModel: conv 1→16→32→64 (k3, ReLU), 64→C (k1)",
            ModelKind::Unet => {
                "3D U-Net, 3 levels 8→16→32, InstanceNorm + LeakyReLU, strided-conv down, \
                 nearest-up + conv"
            }
        }
    }

    /// Channels of the net's widest activation at full resolution (the U-Net's is the
    /// concatenation of its up-sampled features and the first skip connection), classes aside.
    pub fn widest_full_resolution_channels(self) -> usize {
        match self {
            ModelKind::Simple => 16,
            ModelKind::Target => 64,
            ModelKind::Unet => 16,
        }
    }

    /// Edge lengths the net accepts must be multiples of this.
    pub fn edge_multiple(self) -> usize {
        match self {
            ModelKind::Unet => 4,
            _ => 1,
        }
    }

    #[cfg(engine)]
    /// A freshly initialised net for one input channel.
    pub fn init(self, num_classes: usize, device: &Device) -> SegmentationNet {
        self.init_for(1, num_classes, device)
    }

    #[cfg(engine)]
    /// A freshly initialised net for `in_channels` input channels (modalities).
    pub fn init_for(
        self,
        in_channels: usize,
        num_classes: usize,
        device: &Device,
    ) -> SegmentationNet {
        match self {
            ModelKind::Simple => SegmentationNet::Simple(
                Simple3DModelConfig::new()
                    .with_in_channels(in_channels)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            ModelKind::Target => SegmentationNet::Target(
                Target3DModelConfig::new()
                    .with_in_channels(in_channels)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            ModelKind::Unet => SegmentationNet::Unet(
                UNet3dConfig::new()
                    .with_in_channels(in_channels)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
        }
    }
}

/// Any of the nets, so a session can hold whichever the user picked.
// A session holds exactly one net, so the variants' size difference costs nothing.
#[cfg(engine)]
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum SegmentationNet {
    Simple(Simple3DModel),
    Target(Target3DModel),
    Unet(UNet3d),
}

#[cfg(engine)]
impl SegmentationNet {
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        match self {
            SegmentationNet::Simple(net) => net.forward(input),
            SegmentationNet::Target(net) => net.forward(input),
            SegmentationNet::Unet(net) => net.forward(input),
        }
    }

    /// Input channels of the net's first convolution.
    pub fn in_channels(&self) -> usize {
        let first = match self {
            SegmentationNet::Simple(net) => &net.conv1,
            SegmentationNet::Target(net) => &net.conv1,
            SegmentationNet::Unet(net) => &net.encode1[0].conv,
        };
        first.weight.dims()[1]
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            SegmentationNet::Simple(_) => ModelKind::Simple,
            SegmentationNet::Target(_) => ModelKind::Target,
            SegmentationNet::Unet(_) => ModelKind::Unet,
        }
    }
}
