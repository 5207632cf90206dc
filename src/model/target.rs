//! The seed's `Target3DModel`, layer for layer: conv 1→16, 16→32, 32→64 (all k3, p1, ReLU),
//! then conv 64→C (k1). Its receptive field is 7 voxels wide.

use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{PaddingConfig3d, Relu};
use burn::prelude::*;

use super::conv;

#[derive(Config, Debug)]
pub struct Target3DModelConfig {
    /// Input channels (modalities); 1 is the seed's net.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Output classes, background included.
    #[config(default = 4)]
    pub num_classes: usize,
}

#[derive(Module, Debug)]
pub struct Target3DModel {
    pub conv1: Conv3d,
    pub conv2: Conv3d,
    pub conv3: Conv3d,
    pub conv4: Conv3d,
    pub activation: Relu,
}

impl Target3DModelConfig {
    pub fn init(&self, device: &Device) -> Target3DModel {
        let k3 = |channels: [usize; 2]| {
            Conv3dConfig::new(channels, [3, 3, 3])
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                .init(device)
        };
        Target3DModel {
            conv1: k3([self.in_channels, 16]),
            conv2: k3([16, 32]),
            conv3: k3([32, 64]),
            conv4: Conv3dConfig::new([64, self.num_classes], [1, 1, 1]).init(device),
            activation: Relu::new(),
        }
    }
}

impl Target3DModel {
    /// `[batch, in_channels, z, y, x]` → `[batch, classes, z, y, x]` logits.
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        let x = self.activation.forward(conv::forward(&self.conv1, input));
        let x = self.activation.forward(conv::forward(&self.conv2, x));
        let x = self.activation.forward(conv::forward(&self.conv3, x));
        conv::forward(&self.conv4, x)
    }
}
