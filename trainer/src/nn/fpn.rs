//! Feature pyramid (mmdet's FPN as SoCo configures it, METHODS.md §3.4): C2..C5 → P2..P5 at
//! `channels`, a 1×1 lateral conv + BN per level, top-down sums with nearest upsampling, then a
//! 3×3 output conv + BN per level; no activation and no extra levels.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::resnet::{conv, Features};

/// A conv followed by BN (mmcv's ConvModule with `norm_cfg` and no activation; no conv bias).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    pub fn new(cin: usize, cout: usize, k: usize, device: &Device) -> ConvBn {
        ConvBn {
            conv: conv(cin, cout, k, 1, k / 2, 1, device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct Fpn {
    pub lateral: Vec<ConvBn>,
    pub output: Vec<ConvBn>,
}

impl Fpn {
    /// `in_channels`: C2..C5 widths (256/512/1024/2048 for ResNet-50).
    pub fn new(in_channels: [usize; 4], channels: usize, device: &Device) -> Fpn {
        Fpn {
            lateral: in_channels
                .iter()
                .map(|&c| ConvBn::new(c, channels, 1, device))
                .collect(),
            output: (0..4)
                .map(|_| ConvBn::new(channels, channels, 3, device))
                .collect(),
        }
    }

    /// C2..C5 → [P2, P3, P4, P5] (strides 4, 8, 16, 32).
    pub fn forward(&self, f: Features) -> Vec<Tensor<4>> {
        let c = [f.c2, f.c3, f.c4, f.c5];
        let mut inner: Vec<Tensor<4>> = c
            .into_iter()
            .zip(&self.lateral)
            .map(|(x, l)| l.forward(x))
            .collect();
        for i in (0..3).rev() {
            let [_, _, h, w] = inner[i].dims();
            let up = interpolate(
                inner[i + 1].clone(),
                InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h, w]),
            );
            inner[i] = inner[i].clone() + up;
        }
        inner
            .into_iter()
            .zip(&self.output)
            .map(|(x, o)| o.forward(x))
            .collect()
    }
}
