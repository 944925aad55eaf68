//! The SSL4DP draft's MoCoFCN decoder (METHODS.md §9): two 3×3 convs with dilation 6, each with
//! BN + ReLU, then a 1×1 classifier. Used by patch-level rotation (4 classes) and, as a
//! segmentation head, by the evaluation.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use super::aspp::ConvBnRelu;

/// mmseg's `conv_seg`: a 1×1 conv with bias, weights normal(0, 0.01), bias 0.
pub fn classifier(cin: usize, classes: usize, device: &Device) -> Conv2d {
    let mut c = burn::nn::conv::Conv2dConfig::new([cin, classes], [1, 1])
        .with_bias(true)
        .with_initializer(burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        })
        .init(device);
    c.bias = Some(burn::module::Param::from_tensor(Tensor::zeros(
        [classes],
        device,
    )));
    c
}

/// Dilation of the decoder's 3×3 convs.
pub const DILATION: usize = 6;

#[derive(Module, Debug)]
pub struct MocoFcn {
    pub convs: Vec<ConvBnRelu>,
    pub classifier: Conv2d,
}

/// The MoCoFCN convs: `cin` → `channels` → `channels`, 3×3 at dilation 6.
pub fn mocofcn_convs(cin: usize, channels: usize, device: &Device) -> Vec<ConvBnRelu> {
    vec![
        ConvBnRelu::new(cin, channels, 3, DILATION, device),
        ConvBnRelu::new(channels, channels, 3, DILATION, device),
    ]
}

impl MocoFcn {
    /// `cin` backbone channels → `channels` → `classes` logits.
    pub fn new(cin: usize, channels: usize, classes: usize, device: &Device) -> MocoFcn {
        MocoFcn {
            convs: mocofcn_convs(cin, channels, device),
            classifier: classifier(channels, classes, device),
        }
    }

    /// The decoder features before the classifier, `[n, channels, h, w]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.convs.iter().fold(x, |x, c| c.forward(x))
    }

    /// `[n, cin, h, w]` → logits `[n, classes, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.classifier.forward(self.features(x))
    }
}
