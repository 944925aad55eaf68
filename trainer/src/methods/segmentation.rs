//! Downstream semantic segmentation as a method of the loop (METHODS.md §2.5, §4.5): fine-tuning
//! a `SegNet` (dilated ResNet + decode head + optional auxiliary FCN head) on the ring's crops with
//! per-pixel cross-entropy (ignore 255), the auxiliary loss weighted by `aux_weight`. The backbone
//! starts from `backbone` (any checkpoint of ours, a backbone record or a PyTorch-world weights file)
//! or random init; with `frozen_backbone` it stays as loaded (the linear probe). The schedule is
//! iteration-based (mmseg's IterBasedRunner): poly over exactly `trainer.max_steps`.
//!
//! Padding follows mmseg: its pixels are 0 *after* normalisation (the ring pads u8 zeros, which
//! would normalise to −2.1), and their labels are ignore.

use std::path::Path;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use config::{RunConfig, SegPhase};
use proto_shm::schemas::names;
use proto_shm::Schema;

use crate::data::StepBatch;
use crate::loss::pixel_ce::pixel_cross_entropy;
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::decoder::DecoderSlot;
use crate::nn::resnet::{Depth, ResNet};
use crate::nn::seg_heads::{resize, SegNet};

pub struct Segmentation {
    pub cfg: config::SegmentationConfig,
}

/// The (height, width) of each sample's real content, from the ring's `extent`.
pub fn extents(batch: &StepBatch) -> Vec<(usize, usize)> {
    batch
        .i32s(names::EXTENT)
        .chunks_exact(2)
        .map(|e| (e[0] as usize, e[1] as usize))
        .collect()
}

/// `[n, 1, h, w]`: 1 inside each sample's extent, 0 in its padding.
pub fn content_mask(ext: &[(usize, usize)], h: usize, w: usize, device: &Device) -> Tensor<4> {
    let mut m = vec![0f32; ext.len() * h * w];
    for (i, &(eh, ew)) in ext.iter().enumerate() {
        for y in 0..eh.min(h) {
            m[i * h * w + y * w..i * h * w + y * w + ew.min(w)].fill(1.0);
        }
    }
    Tensor::from_data(TensorData::new(m, [ext.len(), 1, h, w]), device)
}

impl Method for Segmentation {
    type Online = SegNet;
    type Target = SegNet;

    fn new(run: &RunConfig, device: &Device) -> Result<(SegNet, Segmentation)> {
        let cfg = crate::method_config!(run, Segmentation);
        let net = SegNet::new(Depth::from(run.trainer.arch), cfg, device);
        Ok((net, Segmentation { cfg: cfg.clone() }))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let c = crate::method_config!(run, Segmentation);
        let (name, (h, w), batch) = match c.phase {
            SegPhase::Finetune => ("segmentation", c.crop, run.loader.batch_size),
            SegPhase::Validate { .. } => ("segmentation-val", c.val_slot, run.loader.batch_size),
        };
        Ok(proto_shm::schemas::segmentation(name, batch, h, w).attr("classes", c.classes))
    }

    fn target_mut(&mut self) -> Option<&mut SegNet> {
        None
    }
    fn target(&self) -> Option<&SegNet> {
        None
    }
    fn target_source(online: &SegNet) -> &SegNet {
        online
    }
    fn momentum(&self, _: StepCtx) -> f64 {
        0.0
    }

    /// Uniform predictions over the classes: ln C.
    fn chance_loss(&self) -> Option<f64> {
        Some((self.cfg.classes as f64).ln())
    }

    fn loss(&mut self, net: &SegNet, batch: &StepBatch, _: StepCtx) -> (Tensor<1>, LossTerms) {
        let x = batch.image(names::VIEW0);
        let [n, _, h, w] = x.dims();
        let device = x.device();
        let x = x * content_mask(&extents(batch), h, w, &device);
        let labels: Vec<i64> = batch
            .bytes(names::SEG_LABEL)
            .iter()
            .map(|&v| v as i64)
            .collect();
        let target = Tensor::<3, Int>::from_data(TensorData::new(labels, [n, h, w]), &device);
        let out = net.forward(x);
        let logits = resize(out.decode, h, w);
        let decode = pixel_cross_entropy(logits.clone(), target.clone());
        let mut terms = LossTerms::new();
        let keep = target.clone().not_equal_elem(crate::loss::pixel_ce::IGNORE);
        let correct = logits
            .argmax(1)
            .reshape([n, h, w])
            .equal(target.clone())
            .bool_and(keep.clone())
            .int()
            .sum()
            .into_scalar::<i64>() as f64;
        let labelled = keep.int().sum().into_scalar::<i64>().max(1) as f64;
        terms.insert("pixel_accuracy", correct / labelled);
        let loss = match out.aux {
            Some(aux) => {
                let aux = pixel_cross_entropy(resize(aux, h, w), target);
                terms.insert("decode_loss", decode.clone().into_scalar::<f32>() as f64);
                terms.insert("aux_loss", aux.clone().into_scalar::<f32>() as f64);
                decode + aux.mul_scalar(self.cfg.aux_weight)
            }
            None => decode,
        };
        (loss, terms)
    }

    fn backbone(online: &SegNet) -> &ResNet {
        &online.backbone
    }
    fn backbone_mut(online: &mut SegNet) -> &mut ResNet {
        &mut online.backbone
    }

    /// The pretrained backbone to fine-tune (None: random init, the floor); heads start fresh.
    fn init_from(run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        match &run.method {
            config::MethodConfig::Segmentation(s) => s
                .backbone
                .as_deref()
                .map(|p| ("fine-tuning", p, &["decode", "aux"][..])),
            _ => None,
        }
    }

    /// The head's decoder, where the config takes a pretrained one (the classifier stays fresh).
    fn decoder_slot<'a>(run: &RunConfig, net: &'a mut SegNet) -> Option<DecoderSlot<'a>> {
        let config::MethodConfig::Segmentation(s) = &run.method else {
            return None;
        };
        if !s.pretrained_decoder {
            return None;
        }
        if let Some(h) = &mut net.decode.mocofcn {
            Some(DecoderSlot::MocoFcn(&mut h.convs))
        } else {
            net.decode
                .psp
                .as_mut()
                .map(|h| DecoderSlot::Psp(&mut h.psp))
        }
    }

    fn schedule_steps(run: &RunConfig) -> Option<usize> {
        run.trainer.max_steps
    }

    /// The linear probe: no gradient into the backbone and BN on its running statistics, so the
    /// backbone stays exactly as loaded.
    fn prepare(run: &RunConfig, mut net: SegNet) -> SegNet {
        if matches!(&run.method, config::MethodConfig::Segmentation(s) if s.frozen_backbone) {
            net.backbone = net.backbone.freeze();
        }
        net
    }
}
