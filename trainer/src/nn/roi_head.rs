//! Fast R-CNN's "4conv1fc" box head (METHODS.md §3.4): 4 × [3×3 conv → BN → ReLU] on the 7×7
//! RoI features, then flatten and one FC → ReLU. SoCo pretrains it so detection fine-tuning starts
//! from a trained head, not a random one.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::fpn::ConvBn;

#[derive(Module, Debug)]
pub struct ConvFcHead {
    pub convs: Vec<ConvBn>,
    pub fc: Linear,
}

impl ConvFcHead {
    /// `channels` in and through the convs, `roi`² spatial, `fc` outputs.
    pub fn new(channels: usize, roi: usize, fc: usize, device: &Device) -> ConvFcHead {
        ConvFcHead {
            convs: (0..4)
                .map(|_| ConvBn::new(channels, channels, 3, device))
                .collect(),
            fc: LinearConfig::new(channels * roi * roi, fc)
                .with_initializer(Initializer::KaimingUniform {
                    gain: 1.0,
                    fan_out_only: false,
                })
                .init(device),
        }
    }

    /// `[r, c, roi, roi]` → `[r, fc]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.convs.iter().fold(x, |x, c| relu(c.forward(x)));
        relu(self.fc.forward(x.flatten(1, 3)))
    }
}
