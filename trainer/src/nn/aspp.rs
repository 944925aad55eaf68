//! DeepLabv3's ASPP head as mmseg builds it (`ASPPHead`, METHODS.md §4.2): an image-pooling branch
//! (global average → 1×1 conv + BN + ReLU, broadcast back) and four parallel branches (1×1, and
//! 3×3 at dilations r1, r2, r3), each `channels` wide with BN + ReLU, concatenated and fused by a
//! 3×3 conv + BN + ReLU.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::resnet::conv;

/// Conv (optionally dilated) → BN → ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    pub fn new(cin: usize, cout: usize, k: usize, dilation: usize, device: &Device) -> Self {
        ConvBnRelu {
            conv: conv(cin, cout, k, 1, dilation * (k / 2), dilation, device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct Aspp {
    pub image_pool: ConvBnRelu,
    pub branches: Vec<ConvBnRelu>,
    pub bottleneck: ConvBnRelu,
}

impl Aspp {
    pub fn new(cin: usize, channels: usize, rates: [usize; 3], device: &Device) -> Aspp {
        let mut branches = vec![ConvBnRelu::new(cin, channels, 1, 1, device)];
        branches.extend(
            rates
                .iter()
                .map(|&r| ConvBnRelu::new(cin, channels, 3, r, device)),
        );
        Aspp {
            image_pool: ConvBnRelu::new(cin, channels, 1, 1, device),
            branches,
            bottleneck: ConvBnRelu::new(5 * channels, channels, 3, 1, device),
        }
    }

    /// `[n, cin, h, w]` → `[n, channels, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        // Bilinear upsampling of a 1×1 map is a broadcast.
        let pooled = self
            .image_pool
            .forward(x.clone().mean_dim(3).mean_dim(2))
            .expand([n as i64, -1, h as i64, w as i64]);
        let mut outs = vec![pooled];
        outs.extend(self.branches.iter().map(|b| b.forward(x.clone())));
        self.bottleneck.forward(Tensor::cat(outs, 1))
    }
}
