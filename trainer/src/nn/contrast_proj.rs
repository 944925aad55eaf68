//! ContrastiveSeg's projection head ("convmlp", `lib/models/modules/projection_helper.py`): 1×1
//! conv → BN → ReLU → 1×1 conv to `dim`, L2-normalised per pixel — the embedding its pixel
//! contrast loss compares (METHODS.md §5.6), on the backbone's last stage.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::proto_head::default_conv1x1;
use crate::loss::l2_normalize;

#[derive(Module, Debug)]
pub struct ContrastProjection {
    pub conv1: Conv2d,
    pub bn: BatchNorm,
    pub conv2: Conv2d,
}

impl ContrastProjection {
    /// `cin` → `cin` → `dim` channels.
    pub fn new(cin: usize, dim: usize, device: &Device) -> Self {
        ContrastProjection {
            conv1: default_conv1x1(cin, cin, device),
            bn: BatchNormConfig::new(cin).init(device),
            conv2: default_conv1x1(cin, dim, device),
        }
    }

    /// `[n, cin, h, w]` → unit-length embeddings `[n, dim, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self
            .conv2
            .forward(relu(self.bn.forward(self.conv1.forward(x))));
        l2_normalize(y, 1)
    }
}
