//! Projection heads, described as in lightly: a list of (in, out, activation) blocks.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Linear → ReLU → Linear (MoCo v2's `fc`, DenseCL's global branch). No BN (METHODS.md §1.2).
#[derive(Module, Debug)]
pub struct Mlp2 {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp2 {
    pub fn new(dims: [usize; 3], device: &Device) -> Mlp2 {
        let init = Initializer::KaimingUniform {
            gain: 1.0 / 3f64.sqrt(),
            fan_out_only: false,
        };
        Mlp2 {
            fc1: LinearConfig::new(dims[0], dims[1])
                .with_initializer(init.clone())
                .init(device),
            fc2: LinearConfig::new(dims[1], dims[2])
                .with_initializer(init)
                .init(device),
        }
    }

    /// `[n, in]` → `[n, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

/// 1×1 conv → ReLU → 1×1 conv (DenseCL's dense branch, METHODS.md §2.2).
#[derive(Module, Debug)]
pub struct DenseMlp {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
}

impl DenseMlp {
    pub fn new(dims: [usize; 3], device: &Device) -> DenseMlp {
        let c = |a, b| {
            Conv2dConfig::new([a, b], [1, 1])
                .with_initializer(Initializer::KaimingNormal {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: false,
                })
                .init(device)
        };
        DenseMlp {
            conv1: c(dims[0], dims[1]),
            conv2: c(dims[1], dims[2]),
        }
    }

    /// `[n, in, h, w]` → `[n, out, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv2.forward(relu(self.conv1.forward(x)))
    }
}

/// Linear → BN1d → ReLU → Linear: BYOL's projector and predictor as SoCo uses them (§3.4).
#[derive(Module, Debug)]
pub struct MlpBn {
    pub fc1: Linear,
    pub bn: burn::nn::BatchNorm,
    pub fc2: Linear,
}

impl MlpBn {
    pub fn new(dims: [usize; 3], device: &Device) -> MlpBn {
        let init = Initializer::KaimingUniform {
            gain: 1.0 / 3f64.sqrt(),
            fan_out_only: false,
        };
        MlpBn {
            fc1: LinearConfig::new(dims[0], dims[1])
                .with_initializer(init.clone())
                .init(device),
            bn: burn::nn::BatchNormConfig::new(dims[1]).init(device),
            fc2: LinearConfig::new(dims[1], dims[2])
                .with_initializer(init)
                .init(device),
        }
    }

    /// `[n, in]` → `[n, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.bn.forward(self.fc1.forward(x))))
    }
}
