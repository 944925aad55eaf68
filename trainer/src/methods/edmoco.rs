//! SSL4DP encoder-decoder MoCo (METHODS.md §9): MoCo v2 whose encoder is the whole segmentation
//! network minus its classifier — a dilated ResNet (output stride 8 or 16) and a decoder (MoCoFCN
//! or PSP) — with the decoder output average-pooled, projected by MoCo v2's MLP and contrasted
//! with the queue. The backbone may train at a fraction of the base learning rate (the draft's
//! PSPNet row: 1/100); the pretrained decoder is handed to segmentation fine-tuning, which is the
//! method's point. Everything else is MoCo v2's ([`super::mocov2::Moco`]).

use std::path::Path;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use config::{MocoV2Config, RunConfig};

use super::mocov2::{global_pool, Moco, MocoEncoder};
use crate::nn::decoder::{Decoder, DecoderRef};
use crate::nn::heads::Mlp2;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};

#[derive(Module, Debug)]
pub struct EdEncoder {
    pub backbone: ResNet,
    pub decoder: Decoder,
    pub head: Mlp2,
}

impl EdEncoder {
    /// The decoder's output `[n, c, h, w]` → spatial mean → MLP → `[n, proj_dim]`.
    pub fn embed(&self, decoded: Tensor<4>) -> Tensor<2> {
        self.head.forward(global_pool(decoded))
    }
}

/// EDMoCo: MoCo over the encoder-decoder.
pub type EdMoco = Moco<EdEncoder>;

impl MocoEncoder for EdEncoder {
    fn moco(run: &RunConfig) -> Result<&MocoV2Config> {
        Ok(&crate::method_config!(run, EdMoco).moco)
    }

    fn build(run: &RunConfig, device: &Device) -> Result<EdEncoder> {
        let cfg = crate::method_config!(run, EdMoco);
        let depth = Depth::from(run.trainer.arch);
        Ok(EdEncoder {
            backbone: ResNetConfig::new(depth)
                .with_output_stride(cfg.output_stride)
                .init(device),
            decoder: Decoder::new(&cfg.decoder, depth.out_channels(), device),
            head: Mlp2::new(
                [
                    cfg.decoder.channels(),
                    cfg.moco.proj_hidden,
                    cfg.moco.proj_dim,
                ],
                device,
            ),
        })
    }

    /// Backbone → decoder → [`EdEncoder::embed`].
    fn project(&self, x: Tensor<4>) -> Tensor<2> {
        self.embed(self.decoder.forward(self.backbone.forward(x)))
    }

    fn backbone(&self) -> &ResNet {
        &self.backbone
    }
    fn backbone_mut(&mut self) -> &mut ResNet {
        &mut self.backbone
    }

    fn decoder(&self) -> Option<DecoderRef<'_>> {
        Some(self.decoder.as_ref())
    }

    fn encoder_lr_scale(run: &RunConfig) -> f64 {
        match &run.method {
            config::MethodConfig::EdMoco(c) => c.encoder_lr_scale,
            _ => 1.0,
        }
    }

    /// Continued pretraining ("200 + 20"): decoder and head start fresh.
    fn init_from(run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        match &run.method {
            config::MethodConfig::EdMoco(c) => c
                .init_from
                .as_deref()
                .map(|p| ("continued pretraining", p, &["decoder", "head"][..])),
            _ => None,
        }
    }
}
