//! Segmentation networks for downstream evaluation (METHODS.md §2.5, §4.5, §9): a dilated ResNet
//! (output stride 8 or 16) with a decode head on C5 and an optional auxiliary FCN head on C4, as
//! mmseg builds them:
//! - FCN (`FCNHead`): `convs` 3×3 conv-BN-ReLU of `channels`; with `concat_input` a 3×3
//!   conv-BN-ReLU over [C5, features]; dropout; 1×1 classifier (`conv_seg`).
//! - MoCoFCN (SSL4DP): two 3×3 conv-BN-ReLU at dilation 6, dropout, classifier.
//! - DeepLabv3 (`ASPPHead`): image pooling + 1×1 + three dilated 3×3 branches, 3×3 fusion,
//!   dropout, classifier.
//! - PSPNet (`PSPHead`): pyramid pooling (1, 2, 3, 6), 3×3 fusion, dropout, classifier.
//! - Linear: dropout, classifier (the dense linear probe on frozen features).
//!
//! Dropout is mmseg's `Dropout2d` (whole channels), active only where autodiff is (training).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Distribution, Tensor};
use config::{SegHead, SegmentationConfig};

use super::aspp::{Aspp, ConvBnRelu};
use super::mocofcn::{classifier, MocoFcn};
use super::psp::Psp;
use super::resnet::{Depth, ResNet, ResNetConfig};

/// mmseg's FCNHead.
#[derive(Module, Debug)]
pub struct FcnHead {
    pub convs: Vec<ConvBnRelu>,
    pub conv_cat: Option<ConvBnRelu>,
    pub conv_seg: Conv2d,
}

impl FcnHead {
    pub fn new(
        cin: usize,
        channels: usize,
        convs: usize,
        concat_input: bool,
        classes: usize,
        device: &Device,
    ) -> FcnHead {
        FcnHead {
            convs: (0..convs)
                .map(|i| {
                    ConvBnRelu::new(if i == 0 { cin } else { channels }, channels, 3, 1, device)
                })
                .collect(),
            conv_cat: concat_input.then(|| ConvBnRelu::new(cin + channels, channels, 3, 1, device)),
            conv_seg: classifier(channels, classes, device),
        }
    }

    fn features(&self, x: Tensor<4>) -> Tensor<4> {
        let f = self.convs.iter().fold(x.clone(), |f, c| c.forward(f));
        match &self.conv_cat {
            Some(cat) => cat.forward(Tensor::cat(vec![x, f], 1)),
            None => f,
        }
    }
}

/// DeepLabv3's head: ASPP then the classifier.
#[derive(Module, Debug)]
pub struct AsppHead {
    pub aspp: Aspp,
    pub conv_seg: Conv2d,
}

/// PSPNet's head: pyramid pooling then the classifier.
#[derive(Module, Debug)]
pub struct PspHead {
    pub psp: Psp,
    pub conv_seg: Conv2d,
}

/// The decode head: exactly one of the fields is set (burn derives modules for structs).
#[derive(Module, Debug)]
pub struct DecodeHead {
    pub fcn: Option<FcnHead>,
    pub mocofcn: Option<MocoFcn>,
    pub aspp: Option<AsppHead>,
    pub psp: Option<PspHead>,
    pub linear: Option<Conv2d>,
}

/// Whole channels zeroed with probability `p`, the rest scaled by 1/(1−p); identity without
/// autodiff (inference).
pub fn dropout2d(x: Tensor<4>, p: f64) -> Tensor<4> {
    if p <= 0.0 || !x.device().is_autodiff() {
        return x;
    }
    let [n, c, _, _] = x.dims();
    let keep = Tensor::<4>::random([n, c, 1, 1], Distribution::Bernoulli(1.0 - p), &x.device());
    x * keep.div_scalar(1.0 - p)
}

impl DecodeHead {
    pub fn new(head: &SegHead, cin: usize, classes: usize, device: &Device) -> DecodeHead {
        let mut d = DecodeHead {
            fcn: None,
            mocofcn: None,
            aspp: None,
            psp: None,
            linear: None,
        };
        match *head {
            SegHead::Fcn {
                convs,
                channels,
                concat_input,
            } => {
                d.fcn = Some(FcnHead::new(
                    cin,
                    channels,
                    convs,
                    concat_input,
                    classes,
                    device,
                ))
            }
            SegHead::MocoFcn { channels } => {
                d.mocofcn = Some(MocoFcn::new(cin, channels, classes, device))
            }
            SegHead::Psp { channels } => {
                d.psp = Some(PspHead {
                    psp: Psp::new(cin, channels, device),
                    conv_seg: classifier(channels, classes, device),
                })
            }
            SegHead::DeepLabV3 { channels, rates } => {
                d.aspp = Some(AsppHead {
                    aspp: Aspp::new(cin, channels, [rates.0, rates.1, rates.2], device),
                    conv_seg: classifier(channels, classes, device),
                })
            }
            SegHead::Linear => d.linear = Some(classifier(cin, classes, device)),
        }
        d
    }

    /// `[n, cin, h, w]` → logits `[n, classes, h, w]`.
    pub fn forward(&self, x: Tensor<4>, dropout: f64) -> Tensor<4> {
        if let Some(h) = &self.fcn {
            h.conv_seg.forward(dropout2d(h.features(x), dropout))
        } else if let Some(h) = &self.mocofcn {
            h.classifier.forward(dropout2d(h.features(x), dropout))
        } else if let Some(h) = &self.psp {
            h.conv_seg.forward(dropout2d(h.psp.forward(x), dropout))
        } else if let Some(h) = &self.aspp {
            h.conv_seg.forward(dropout2d(h.aspp.forward(x), dropout))
        } else {
            let c = self.linear.as_ref().expect("a decode head is set");
            c.forward(dropout2d(x, dropout))
        }
    }
}

/// Backbone + decode head + optional auxiliary head.
#[derive(Module, Debug)]
pub struct SegNet {
    pub backbone: ResNet,
    pub decode: DecodeHead,
    pub aux: Option<FcnHead>,
    pub dropout: f64,
}

/// Logits of both heads, at feature resolution.
pub struct SegLogits {
    pub decode: Tensor<4>,
    pub aux: Option<Tensor<4>>,
}

impl SegNet {
    pub fn new(depth: Depth, cfg: &SegmentationConfig, device: &Device) -> SegNet {
        // mmseg's ResNet starts without zero-initialised residual γ.
        let mut rc = ResNetConfig::new(depth).with_output_stride(cfg.output_stride);
        rc.zero_init_residual = false;
        let stages = depth.stage_channels();
        SegNet {
            backbone: rc.init(device),
            decode: DecodeHead::new(&cfg.head, stages[3], cfg.classes, device),
            aux: (cfg.aux_weight > 0.0)
                .then(|| FcnHead::new(stages[2], cfg.aux_channels, 1, false, cfg.classes, device)),
            dropout: cfg.dropout,
        }
    }

    /// `[n, 3, h, w]` normalised images → logits at the backbone's output stride.
    pub fn forward(&self, x: Tensor<4>) -> SegLogits {
        let f = self.backbone.forward_features(x);
        SegLogits {
            aux: self.aux.as_ref().map(|a| {
                a.conv_seg
                    .forward(dropout2d(a.features(f.c4), self.dropout))
            }),
            decode: self.decode.forward(f.c5, self.dropout),
        }
    }

    /// Decode logits upsampled (bilinear, half-pixel centres) to `[n, classes, h, w]` of the input.
    pub fn predict(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        resize(self.forward(x).decode, h, w)
    }
}

/// Bilinear resize with half-pixel centres (mmseg's `resize(..., align_corners=False)`).
pub fn resize(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h, w]),
    )
}
