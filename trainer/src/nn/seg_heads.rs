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
//! With ProtoSeg's prototype head (`prototypes`), the head's classifier slot becomes the first
//! 1×1 conv of the projection (`D → D`, D the head's width) and [`ProtoHead`] follows it.
//!
//! Dropout is mmseg's `Dropout2d` (whole channels), active only where autodiff is (training).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Distribution, Tensor};
use config::{SegHead, SegmentationConfig};

use super::aspp::{Aspp, ConvBnRelu};
use super::contrast_proj::ContrastProjection;
use super::mocofcn::{classifier, MocoFcn};
use super::proto_head::{default_conv1x1, ProtoHead, ProtoOut};
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

    /// The width of the features the classifier reads, for a head of kind `head` on `cin`.
    pub fn width(head: &SegHead, cin: usize) -> usize {
        match *head {
            SegHead::Fcn { channels, .. }
            | SegHead::MocoFcn { channels }
            | SegHead::Psp { channels }
            | SegHead::DeepLabV3 { channels, .. } => channels,
            SegHead::Linear => cin,
        }
    }

    /// The classifier slot (`conv_seg`).
    pub fn classifier_mut(&mut self) -> &mut Conv2d {
        if let Some(h) = &mut self.fcn {
            &mut h.conv_seg
        } else if let Some(h) = &mut self.mocofcn {
            &mut h.classifier
        } else if let Some(h) = &mut self.psp {
            &mut h.conv_seg
        } else if let Some(h) = &mut self.aspp {
            &mut h.conv_seg
        } else {
            self.linear.as_mut().expect("a decode head is set")
        }
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
    /// ProtoSeg's prototype head after the decode head's classifier slot.
    pub proto: Option<ProtoHead>,
    /// ContrastiveSeg's projection of C5 for the pixel contrast loss (training only).
    pub contrast: Option<ContrastProjection>,
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
        let (decode, proto) = match &cfg.prototypes {
            None => (
                DecodeHead::new(&cfg.head, stages[3], cfg.classes, device),
                None,
            ),
            Some(p) => {
                let dim = DecodeHead::width(&cfg.head, stages[3]);
                let mut decode = DecodeHead::new(&cfg.head, stages[3], dim, device);
                *decode.classifier_mut() = default_conv1x1(dim, dim, device);
                let proto = ProtoHead::new(dim, cfg.classes, p.per_class, device);
                (decode, Some(proto))
            }
        };
        SegNet {
            backbone: rc.init(device),
            decode,
            aux: (cfg.aux_weight > 0.0)
                .then(|| FcnHead::new(stages[2], cfg.aux_channels, 1, false, cfg.classes, device)),
            proto,
            contrast: cfg
                .pixel_contrast
                .as_ref()
                .map(|c| ContrastProjection::new(stages[3], c.proj_dim, device)),
            dropout: cfg.dropout,
        }
    }

    /// `[n, 3, h, w]` normalised images → logits at the backbone's output stride.
    pub fn forward(&self, x: Tensor<4>) -> SegLogits {
        self.forward_full(x).0
    }

    /// [`SegNet::forward`], with the prototype head's similarities and embeddings where it has one.
    pub fn forward_full(&self, x: Tensor<4>) -> (SegLogits, Option<ProtoOut>) {
        let (logits, proto, _) = self.forward_train(x, false);
        (logits, proto)
    }

    /// Everything a training step needs: logits, the prototype head's outputs and, when
    /// `contrast` and the net has the projection, ContrastiveSeg's embeddings `[n, D, h, w]`.
    pub fn forward_train(
        &self,
        x: Tensor<4>,
        contrast: bool,
    ) -> (SegLogits, Option<ProtoOut>, Option<Tensor<4>>) {
        let f = self.backbone.forward_features(x);
        let aux = self.aux.as_ref().map(|a| {
            a.conv_seg
                .forward(dropout2d(a.features(f.c4), self.dropout))
        });
        let embedding = match (&self.contrast, contrast) {
            (Some(c), true) => Some(c.forward(f.c5.clone())),
            _ => None,
        };
        let decode = self.decode.forward(f.c5, self.dropout);
        match &self.proto {
            None => (SegLogits { decode, aux }, None, embedding),
            Some(p) => {
                let out = p.forward(decode);
                (
                    SegLogits {
                        decode: out.logits.clone(),
                        aux,
                    },
                    Some(out),
                    embedding,
                )
            }
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
