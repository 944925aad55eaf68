//! The decoder an SSL4DP method pretrains with the backbone (METHODS.md §9): MoCoFCN's two
//! dilated 3×3 convs or PSPNet's pyramid pooling, without a classifier. Segmentation fine-tuning
//! with the same head kind takes these weights over (`crate::pretrained::load_decoder`).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use config::DecoderConfig;

use super::aspp::ConvBnRelu;
use super::mocofcn::mocofcn_convs;
use super::psp::Psp;

/// Exactly one of the fields is set (burn derives modules for structs, not enums).
#[derive(Module, Debug)]
pub struct Decoder {
    /// MoCoFCN: two 3×3 conv-BN-ReLU at dilation 6 (the `convs` of [`super::mocofcn::MocoFcn`]).
    pub mocofcn: Option<Vec<ConvBnRelu>>,
    pub psp: Option<Psp>,
}

/// A pretrained decoder's weights, by kind, for handing over to a segmentation head.
pub enum DecoderRef<'a> {
    MocoFcn(&'a Vec<ConvBnRelu>),
    Psp(&'a Psp),
}

impl DecoderRef<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            DecoderRef::MocoFcn(_) => "MoCoFCN",
            DecoderRef::Psp(_) => "PSP",
        }
    }
}

/// Where a segmentation head holds the decoder part a pretrained one can fill.
pub enum DecoderSlot<'a> {
    MocoFcn(&'a mut Vec<ConvBnRelu>),
    Psp(&'a mut Psp),
}

impl DecoderSlot<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            DecoderSlot::MocoFcn(_) => "MoCoFCN",
            DecoderSlot::Psp(_) => "PSP",
        }
    }
}

impl Decoder {
    pub fn new(cfg: &DecoderConfig, cin: usize, device: &Device) -> Decoder {
        match *cfg {
            DecoderConfig::MocoFcn { channels } => Decoder {
                mocofcn: Some(mocofcn_convs(cin, channels, device)),
                psp: None,
            },
            DecoderConfig::Psp { channels } => Decoder {
                mocofcn: None,
                psp: Some(Psp::new(cin, channels, device)),
            },
        }
    }

    /// `[n, cin, h, w]` → `[n, channels, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match (&self.mocofcn, &self.psp) {
            (Some(convs), _) => convs.iter().fold(x, |x, c| c.forward(x)),
            (None, Some(psp)) => psp.forward(x),
            (None, None) => unreachable!("a decoder kind is set"),
        }
    }

    pub fn as_ref(&self) -> DecoderRef<'_> {
        match (&self.mocofcn, &self.psp) {
            (Some(convs), _) => DecoderRef::MocoFcn(convs),
            (None, Some(psp)) => DecoderRef::Psp(psp),
            (None, None) => unreachable!("a decoder kind is set"),
        }
    }
}
