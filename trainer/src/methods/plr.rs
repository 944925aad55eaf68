//! SSL4DP patch-level rotation (METHODS.md §9): the loader cuts each view into grid × grid patches
//! and turns each by k·90°; an encoder-decoder — ResNet at output stride 8 or 16 (dilation) and
//! the MoCoFCN decoder with a 4-way classifier — predicts k for every pixel. Logits are upsampled
//! bilinearly to the input size; the loss is the per-pixel cross-entropy against the rotation of
//! the pixel's patch. No momentum twin, no queue. Continued pretraining ("200 + 20"): `init_from`
//! starts the backbone from a checkpoint of ours (e.g. a MoCo v2 run) or torchvision weights.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use config::{PatchRotationConfig, RunConfig};
use proto_shm::schemas::names;
use proto_shm::Schema;

use crate::data::StepBatch;
use crate::loss::rotation::{rotation_loss, upsample};
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::decoder::DecoderRef;
use crate::nn::mocofcn::MocoFcn;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};

/// Rotation classes: 0°, 90°, 180°, 270°.
pub const CLASSES: usize = 4;

#[derive(Module, Debug)]
pub struct PlrNet {
    pub backbone: ResNet,
    pub decoder: MocoFcn,
}

impl PlrNet {
    pub fn new(depth: Depth, cfg: &PatchRotationConfig, device: &Device) -> PlrNet {
        PlrNet {
            backbone: ResNetConfig::new(depth)
                .with_output_stride(cfg.output_stride)
                .init(device),
            decoder: MocoFcn::new(depth.out_channels(), cfg.decoder_channels, CLASSES, device),
        }
    }

    /// `[n, 3, s, s]` → rotation logits `[n, 4, s/os, s/os]` at feature resolution.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(self.backbone.forward(x))
    }

    /// `[n, 3, s, s]` → rotation logits `[n, 4, s, s]` (upsampled bilinearly, half-pixel centres).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let size = x.dims()[2];
        upsample(self.logits(x), size)
    }
}

pub use crate::loss::rotation::pixel_targets;

pub struct PatchRotation {
    pub cfg: PatchRotationConfig,
}

impl Method for PatchRotation {
    type Online = PlrNet;
    type Target = PlrNet;

    fn new(run: &RunConfig, device: &Device) -> Result<(PlrNet, PatchRotation)> {
        let cfg = crate::method_config!(run, PatchRotation);
        let net = PlrNet::new(Depth::from(run.trainer.arch), cfg, device);
        Ok((net, PatchRotation { cfg: cfg.clone() }))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let p = crate::method_config!(run, PatchRotation);
        Ok(proto_shm::schemas::patch_rotation(
            run.loader.batch_size,
            p.view.size,
            p.grid,
        ))
    }

    fn target_mut(&mut self) -> Option<&mut PlrNet> {
        None
    }
    fn target(&self) -> Option<&PlrNet> {
        None
    }
    fn target_source(online: &PlrNet) -> &PlrNet {
        online
    }
    fn momentum(&self, _: StepCtx) -> f64 {
        0.0
    }

    /// Four rotation classes: ln 4.
    fn chance_loss(&self) -> Option<f64> {
        Some((CLASSES as f64).ln())
    }

    fn loss(
        &mut self,
        net: &PlrNet,
        batch: &StepBatch,
        _: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)> {
        let x = batch.image(names::VIEW0);
        let size = x.dims()[2];
        let (loss, accuracy) = rotation_loss(
            net.logits(x),
            batch.bytes(names::ROTATION),
            self.cfg.grid,
            size,
        );
        let mut terms = LossTerms::new();
        terms.insert("pixel_accuracy", accuracy);
        Ok((loss, terms))
    }

    fn backbone(online: &PlrNet) -> &ResNet {
        &online.backbone
    }
    fn backbone_mut(online: &mut PlrNet) -> &mut ResNet {
        &mut online.backbone
    }

    /// `plr_predictions.png`: the last batch's rotated views with the true and predicted
    /// rotation of every patch.
    fn end_of_run_pictures(
        &self,
        net: &PlrNet,
        batch: &StepBatch,
        out: &Path,
    ) -> Result<Vec<PathBuf>> {
        let x = batch.image(names::VIEW0);
        let n = x.dims()[0].min(crate::rotation_sheet::MAX_IMAGES);
        let x = x.narrow(0, 0, n);
        let predicted =
            crate::rotation_sheet::patch_predictions(net.forward(x.clone()), self.cfg.grid)?;
        let path = out.join("plr_predictions.png");
        let g2 = self.cfg.grid * self.cfg.grid;
        crate::rotation_sheet::draw(
            x,
            &batch.bytes(names::ROTATION)[..n * g2],
            &predicted,
            self.cfg.grid,
            &path,
        )?;
        Ok(vec![path])
    }

    fn decoder(online: &PlrNet) -> Option<DecoderRef<'_>> {
        Some(DecoderRef::MocoFcn(&online.decoder.convs))
    }

    /// Continued pretraining ("200 + 20"): the decoder starts fresh.
    fn init_from(run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        match &run.method {
            config::MethodConfig::PatchRotation(p) => p
                .init_from
                .as_deref()
                .map(|p| ("continued pretraining", p, &["decoder"][..])),
            _ => None,
        }
    }
}
