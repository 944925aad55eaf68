//! PSPNet's pyramid pooling decoder as mmseg builds it (`PSPHead` without its classifier): the
//! input is average-pooled to 1×1, 2×2, 3×3 and 6×6 cells (PyTorch's adaptive pooling), each map
//! goes through a 1×1 conv-BN-ReLU of `channels`, is upsampled bilinearly (half-pixel centres)
//! back to the input size, and [input, the four maps] are fused by a 3×3 conv-BN-ReLU.

use burn::module::Module;
use burn::tensor::module::{adaptive_avg_pool2d, interpolate};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::aspp::ConvBnRelu;

/// mmseg's `pool_scales`.
pub const POOL_SCALES: [usize; 4] = [1, 2, 3, 6];

#[derive(Module, Debug)]
pub struct Psp {
    /// One 1×1 conv-BN-ReLU per pool scale.
    pub stages: Vec<ConvBnRelu>,
    pub bottleneck: ConvBnRelu,
}

impl Psp {
    pub fn new(cin: usize, channels: usize, device: &Device) -> Psp {
        Psp {
            stages: POOL_SCALES
                .iter()
                .map(|_| ConvBnRelu::new(cin, channels, 1, 1, device))
                .collect(),
            bottleneck: ConvBnRelu::new(cin + POOL_SCALES.len() * channels, channels, 3, 1, device),
        }
    }

    /// `[n, cin, h, w]` → `[n, channels, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let mut outs = vec![x.clone()];
        for (&s, stage) in POOL_SCALES.iter().zip(&self.stages) {
            let pooled = stage.forward(adaptive_avg_pool2d(x.clone(), [s, s]));
            outs.push(interpolate(
                pooled,
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([h, w]),
            ));
        }
        self.bottleneck.forward(Tensor::cat(outs, 1))
    }
}
