//! ResNet-18/50 with torchvision's structure and parameter names (`conv1`, `bn1`,
//! `layer{1..4}.{i}.{conv,bn}{1..3}`, `downsample.{conv,bn}` ↔ torchvision's `downsample.{0,1}`),
//! so weights move to and from PyTorch with a two-key rename. "PyTorch style": the stride sits on
//! the 3×3 conv of a bottleneck (ResNet v1.5), as in every method we implement (METHODS.md §0).
//! Options: zero-init of each block's last BN γ, and torchvision's replace-stride-with-dilation
//! for output stride 16 or 8.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Which ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    R18,
    R50,
}

impl Depth {
    fn blocks(self) -> [usize; 4] {
        match self {
            Depth::R18 => [2, 2, 2, 2],
            Depth::R50 => [3, 4, 6, 3],
        }
    }

    fn expansion(self) -> usize {
        match self {
            Depth::R18 => 1,
            Depth::R50 => 4,
        }
    }

    /// Channels of C2..C5.
    pub fn stage_channels(self) -> [usize; 4] {
        let e = self.expansion();
        [64 * e, 128 * e, 256 * e, 512 * e]
    }

    /// Channels of the final feature map (2048 for R50, 512 for R18).
    pub fn out_channels(self) -> usize {
        self.stage_channels()[3]
    }
}

impl From<config::Arch> for Depth {
    fn from(a: config::Arch) -> Self {
        match a {
            config::Arch::ResNet18 => Depth::R18,
            config::Arch::ResNet50 => Depth::R50,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResNetConfig {
    pub depth: Depth,
    /// Zero-init the last BN γ of every residual block (each block starts as identity).
    pub zero_init_residual: bool,
    /// torchvision's `replace_stride_with_dilation` for layer2..4.
    pub dilate: [bool; 3],
}

impl ResNetConfig {
    pub fn new(depth: Depth) -> Self {
        ResNetConfig {
            depth,
            zero_init_residual: true,
            dilate: [false; 3],
        }
    }

    /// Output stride 16 (layer4 dilated) or 8 (layer3 and layer4 dilated); 32 otherwise.
    pub fn with_output_stride(mut self, os: usize) -> Self {
        self.dilate = match os {
            8 => [false, true, true],
            16 => [false, false, true],
            _ => [false; 3],
        };
        self
    }

    pub fn init(&self, device: &Device) -> ResNet {
        let conv1 = conv(3, 64, 7, 2, 3, 1, device);
        let bn1 = BatchNormConfig::new(64).init(device);
        let mut inplanes = 64;
        let mut dilation = 1;
        let mut layers = Vec::new();
        for (i, (&n, planes)) in self
            .depth
            .blocks()
            .iter()
            .zip([64, 128, 256, 512])
            .enumerate()
        {
            let mut stride = if i == 0 { 1 } else { 2 };
            let previous_dilation = dilation;
            if i > 0 && self.dilate[i - 1] {
                dilation *= stride;
                stride = 1;
            }
            let mut blocks = Vec::with_capacity(n);
            for b in 0..n {
                let (s, d) = if b == 0 {
                    (stride, previous_dilation)
                } else {
                    (1, dilation)
                };
                blocks.push(Block::new(
                    self.depth,
                    inplanes,
                    planes,
                    s,
                    d,
                    self.zero_init_residual,
                    device,
                ));
                inplanes = planes * self.depth.expansion();
            }
            layers.push(blocks);
        }
        let mut it = layers.into_iter();
        ResNet {
            conv1,
            bn1,
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: it.next().unwrap(),
            layer2: it.next().unwrap(),
            layer3: it.next().unwrap(),
            layer4: it.next().unwrap(),
        }
    }
}

/// torchvision's conv init: Kaiming normal, fan-out, ReLU gain; no bias.
pub(crate) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device)
}

#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// A residual block: BasicBlock (conv1, conv2) for R18, Bottleneck (conv1..conv3) for R50.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

fn zero_gamma(bn: BatchNorm) -> BatchNorm {
    // `zeros_like` makes a fresh leaf: mark it trainable again, or γ would stay frozen at 0.
    let trainable = bn.gamma.is_require_grad();
    BatchNorm {
        gamma: bn.gamma.map(|g| g.zeros_like().set_require_grad(trainable)),
        ..bn
    }
}

impl Block {
    fn new(
        depth: Depth,
        inplanes: usize,
        planes: usize,
        stride: usize,
        dilation: usize,
        zero_last: bool,
        device: &Device,
    ) -> Block {
        let out = planes * depth.expansion();
        let downsample = (stride != 1 || inplanes != out).then(|| Downsample {
            conv: conv(inplanes, out, 1, stride, 0, 1, device),
            bn: BatchNormConfig::new(out).init(device),
        });
        let bn = |c| BatchNormConfig::new(c).init(device);
        let last = |b: BatchNorm| if zero_last { zero_gamma(b) } else { b };
        match depth {
            Depth::R18 => Block {
                conv1: conv(inplanes, planes, 3, stride, dilation, dilation, device),
                bn1: bn(planes),
                conv2: conv(planes, planes, 3, 1, dilation, dilation, device),
                bn2: last(bn(planes)),
                conv3: None,
                bn3: None,
                downsample,
            },
            Depth::R50 => Block {
                conv1: conv(inplanes, planes, 1, 1, 0, 1, device),
                bn1: bn(planes),
                conv2: conv(planes, planes, 3, stride, dilation, dilation, device),
                bn2: bn(planes),
                conv3: Some(conv(planes, out, 1, 1, 0, 1, device)),
                bn3: Some(last(bn(out))),
                downsample,
            },
        }
    }

    /// `[n, c_in, h, w]` → `[n, c_out, h/stride, w/stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let y = relu(self.bn1.forward(self.conv1.forward(x)));
        let y = self.bn2.forward(self.conv2.forward(y));
        let y = match (&self.conv3, &self.bn3) {
            (Some(c3), Some(b3)) => b3.forward(c3.forward(relu(y))),
            _ => y,
        };
        relu(y + identity)
    }
}

/// The backbone. Its `fc` is not part of it: each method attaches its own head.
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
}

/// Feature maps C2..C5 (strides 4, 8, 16, 32 without dilation).
pub struct Features {
    pub c2: Tensor<4>,
    pub c3: Tensor<4>,
    pub c4: Tensor<4>,
    pub c5: Tensor<4>,
}

impl ResNet {
    /// `[n, 3, h, w]` normalised images → C2..C5.
    pub fn forward_features(&self, x: Tensor<4>) -> Features {
        let x = self
            .maxpool
            .forward(relu(self.bn1.forward(self.conv1.forward(x))));
        let run = |blocks: &Vec<Block>, x: Tensor<4>| blocks.iter().fold(x, |x, b| b.forward(x));
        let c2 = run(&self.layer1, x);
        let c3 = run(&self.layer2, c2.clone());
        let c4 = run(&self.layer3, c3.clone());
        let c5 = run(&self.layer4, c4.clone());
        Features { c2, c3, c4, c5 }
    }

    /// `[n, 3, h, w]` → C5 only.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self
            .maxpool
            .forward(relu(self.bn1.forward(self.conv1.forward(x))));
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .fold(x, |x, layer| layer.iter().fold(x, |x, b| b.forward(x)))
    }
}
