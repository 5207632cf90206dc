//! A compact 3D U-Net for real segmentation (the seed's nets see only 5–7 voxels).
//!
//! Three levels, 8→16→32 channels at the default width, each block conv k3 + InstanceNorm +
//! LeakyReLU as in nnU-Net. Down-sampling is a stride-2 conv (burn has no 3D pooling);
//! up-sampling is nearest neighbour followed by a conv, because ConvTranspose3d is about 10×
//! slower on WebGPU. Input edges must be multiples of 4.

use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{InstanceNorm, InstanceNormConfig, LeakyRelu, LeakyReluConfig, PaddingConfig3d};
use burn::prelude::*;

use super::conv::{self, ConvAlgorithm};
use super::norm;

#[derive(Config, Debug)]
pub struct UNet3dConfig {
    /// Input channels (modalities).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Output classes, background included.
    #[config(default = 4)]
    pub num_classes: usize,
    /// Channels at full resolution; doubled at each level down.
    #[config(default = 8)]
    pub base_channels: usize,
}

/// conv k3 (stride 1 or 2) → InstanceNorm → LeakyReLU(0.01).
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv3d,
    pub norm: InstanceNorm,
    pub activation: LeakyRelu,
}

impl ConvBlock {
    fn new(channels: [usize; 2], stride: usize, device: &Device) -> Self {
        Self {
            conv: Conv3dConfig::new(channels, [3, 3, 3])
                .with_stride([stride; 3])
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                .init(device),
            norm: InstanceNormConfig::new(channels[1]).init(device),
            activation: LeakyReluConfig::new().init(),
        }
    }

    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        // Where the convolutions take the project's kernels, so does the norm (one operation
        // instead of ~13, norm/mod.rs), and the conv's bias, which the norm cancels, is left
        // out; burn's modules otherwise.
        let own_kernels = conv::algorithm().path() == ConvAlgorithm::Tiled;
        if own_kernels && norm::fusable(&self.norm, &self.activation) {
            let x = conv::forward_without_bias(&self.conv, input);
            norm::instance_norm_leaky_relu(&self.norm, &self.activation, x)
        } else {
            let x = conv::forward(&self.conv, input);
            self.activation.forward(self.norm.forward(x))
        }
    }
}

#[derive(Module, Debug)]
pub struct UNet3d {
    pub encode1: [ConvBlock; 2],
    pub down1: ConvBlock,
    pub encode2: ConvBlock,
    pub down2: ConvBlock,
    pub bottom: ConvBlock,
    pub up2: ConvBlock,
    pub decode2: ConvBlock,
    pub up1: ConvBlock,
    pub decode1: ConvBlock,
    pub head: Conv3d,
}

impl UNet3dConfig {
    pub fn init(&self, device: &Device) -> UNet3d {
        let [c1, c2, c3] = [1, 2, 4].map(|factor| factor * self.base_channels);
        UNet3d {
            encode1: [
                ConvBlock::new([self.in_channels, c1], 1, device),
                ConvBlock::new([c1, c1], 1, device),
            ],
            down1: ConvBlock::new([c1, c2], 2, device),
            encode2: ConvBlock::new([c2, c2], 1, device),
            down2: ConvBlock::new([c2, c3], 2, device),
            bottom: ConvBlock::new([c3, c3], 1, device),
            up2: ConvBlock::new([c3, c2], 1, device),
            decode2: ConvBlock::new([2 * c2, c2], 1, device),
            up1: ConvBlock::new([c2, c1], 1, device),
            decode1: ConvBlock::new([2 * c1, c1], 1, device),
            head: Conv3dConfig::new([c1, self.num_classes], [1, 1, 1]).init(device),
        }
    }
}

impl UNet3d {
    /// `[batch, in_channels, z, y, x]` → `[batch, classes, z, y, x]` logits; z, y, x multiples of 4.
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        let [_, _, z, y, x] = input.dims();
        assert!(
            z % 4 == 0 && y % 4 == 0 && x % 4 == 0,
            "the U-Net needs edges that are multiples of 4, got {z}×{y}×{x}"
        );
        let [first, second] = &self.encode1;
        let skip1 = second.forward(first.forward(input));
        let skip2 = self.encode2.forward(self.down1.forward(skip1.clone()));
        let bottom = self.bottom.forward(self.down2.forward(skip2.clone()));
        let up = self.up2.forward(upsample_nearest(bottom));
        let decoded = self.decode2.forward(Tensor::cat(vec![up, skip2], 1));
        let up = self.up1.forward(upsample_nearest(decoded));
        let decoded = self.decode1.forward(Tensor::cat(vec![up, skip1], 1));
        conv::forward(&self.head, decoded)
    }
}

/// Doubles each spatial edge by repeating voxels: a reshape and a broadcast, no kernel of its own.
pub fn upsample_nearest(input: Tensor<5>) -> Tensor<5> {
    let [b, c, z, y, x] = input.dims();
    input
        .reshape([b, c, z, 1, y, 1, x, 1])
        .expand([b, c, z, 2, y, 2, x, 2])
        .reshape([b, c, 2 * z, 2 * y, 2 * x])
}
