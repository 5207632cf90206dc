//! The seed's `Simple3DModel`, layer for layer: conv 1→8 (k3, p1), ReLU, conv 8→16 (k3, p1),
//! ReLU, conv 16→C (k1). Its receptive field is 5 voxels wide.

use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{PaddingConfig3d, Relu};
use burn::prelude::*;

use super::conv;

#[derive(Config, Debug)]
pub struct Simple3DModelConfig {
    /// Input channels (modalities); 1 is the seed's net.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Output classes, background included.
    #[config(default = 4)]
    pub num_classes: usize,
}

#[derive(Module, Debug)]
pub struct Simple3DModel {
    pub conv1: Conv3d,
    pub conv2: Conv3d,
    pub conv3: Conv3d,
    pub activation: Relu,
}

impl Simple3DModelConfig {
    /// A freshly initialised net (PyTorch's default Kaiming-uniform) on `device`.
    pub fn init(&self, device: &Device) -> Simple3DModel {
        let same = PaddingConfig3d::Explicit(1, 1, 1);
        Simple3DModel {
            conv1: Conv3dConfig::new([self.in_channels, 8], [3, 3, 3])
                .with_padding(same.clone())
                .init(device),
            conv2: Conv3dConfig::new([8, 16], [3, 3, 3])
                .with_padding(same)
                .init(device),
            conv3: Conv3dConfig::new([16, self.num_classes], [1, 1, 1]).init(device),
            activation: Relu::new(),
        }
    }
}

impl Simple3DModel {
    /// `[batch, in_channels, z, y, x]` → `[batch, classes, z, y, x]` logits.
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        let x = self.activation.forward(conv::forward(&self.conv1, input));
        let x = self.activation.forward(conv::forward(&self.conv2, x));
        conv::forward(&self.conv3, x)
    }
}
