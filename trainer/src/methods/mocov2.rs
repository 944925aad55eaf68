//! MoCo v2 (METHODS.md §1): query encoder = ResNet + MLP 2048→2048→128, key encoder = its EMA
//! (m = 0.999, updated before the key forward), a queue of 65,536 keys, InfoNCE with T = 0.2.
//! Keys are computed with single-device shuffle-BN ([`crate::shuffle_bn`]).
//!
//! The MoCo machinery is generic over the encoder ([`MocoEncoder`]): SSL4DP's encoder-decoder
//! MoCo (`super::edmoco`) is the same method with a decoder between backbone and projection.

use std::path::Path;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use config::{MocoV2Config, RunConfig};
use proto_shm::schemas::names;
use proto_shm::Schema;

use crate::data::StepBatch;
use crate::ema;
use crate::loss::{infonce::info_nce, l2_normalize};
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::decoder::DecoderRef;
use crate::nn::heads::Mlp2;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::queue::Queue;
use crate::shuffle_bn::shuffled_sub_batches;

/// What a MoCo encoder declares: how it is built from a run, its MoCo settings and its forward.
pub trait MocoEncoder: Module {
    /// The MoCo settings (views, head, queue, T, m) in `run`'s method config.
    fn moco(run: &RunConfig) -> Result<&MocoV2Config>;
    fn build(run: &RunConfig, device: &Device) -> Result<Self>;
    /// `[n, 3, h, w]` → projected `[n, proj_dim]` (not normalised).
    fn project(&self, x: Tensor<4>) -> Tensor<2>;
    fn backbone(&self) -> &ResNet;
    fn backbone_mut(&mut self) -> &mut ResNet;
    /// A decoder pretrained with the backbone.
    fn decoder(&self) -> Option<DecoderRef<'_>> {
        None
    }
    /// See [`Method::encoder_lr_scale`].
    fn encoder_lr_scale(_run: &RunConfig) -> f64 {
        1.0
    }
    /// See [`Method::init_from`].
    fn init_from(_run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        None
    }
}

/// Backbone plus projection head.
#[derive(Module, Debug)]
pub struct Encoder {
    pub backbone: ResNet,
    pub head: Mlp2,
}

impl Encoder {
    pub fn new(depth: Depth, cfg: &MocoV2Config, device: &Device) -> Encoder {
        Encoder {
            backbone: ResNetConfig::new(depth).init(device),
            head: Mlp2::new(
                [depth.out_channels(), cfg.proj_hidden, cfg.proj_dim],
                device,
            ),
        }
    }

    /// `[n, 3, h, w]` → projected `[n, proj_dim]` (not normalised).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(global_pool(self.backbone.forward(x)))
    }
}

impl MocoEncoder for Encoder {
    fn moco(run: &RunConfig) -> Result<&MocoV2Config> {
        Ok(crate::method_config!(run, MocoV2))
    }

    fn build(run: &RunConfig, device: &Device) -> Result<Encoder> {
        Ok(Encoder::new(
            Depth::from(run.trainer.arch),
            Self::moco(run)?,
            device,
        ))
    }

    fn project(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }

    fn backbone(&self) -> &ResNet {
        &self.backbone
    }
    fn backbone_mut(&mut self) -> &mut ResNet {
        &mut self.backbone
    }
}

/// `[n, c, h, w]` → `[n, c]`, the spatial mean.
pub fn global_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([n, c])
}

/// The parts of MoCo that are not trained by the optimiser.
pub struct Moco<E> {
    pub cfg: MocoV2Config,
    pub key: E,
    pub queue: Queue,
    encoder_lr_scale: f64,
}

/// MoCo v2 proper.
pub type MocoV2 = Moco<Encoder>;

impl<E: MocoEncoder> Method for Moco<E> {
    type Online = E;
    type Target = E;

    fn new(run: &RunConfig, device: &Device) -> Result<(E, Moco<E>)> {
        let cfg = E::moco(run)?.clone();
        let query = E::build(run, device)?;
        let state = Moco {
            key: ema::copy_of(&query, E::build(run, device)?),
            queue: Queue::new(cfg.queue_size, cfg.proj_dim, device),
            encoder_lr_scale: E::encoder_lr_scale(run),
            cfg,
        };
        Ok((query, state))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let size = E::moco(run)?.view.size;
        Ok(proto_shm::schemas::two_crop(
            run.method.name(),
            run.loader.batch_size,
            size,
        ))
    }

    fn target_mut(&mut self) -> Option<&mut E> {
        Some(&mut self.key)
    }
    fn target(&self) -> Option<&E> {
        Some(&self.key)
    }
    fn target_source(online: &E) -> &E {
        online
    }
    fn momentum(&self, _: StepCtx) -> f64 {
        self.cfg.momentum as f64
    }

    /// InfoNCE over 1 positive and K negatives: ln(1 + K).
    fn chance_loss(&self) -> Option<f64> {
        Some((1.0 + self.queue.len() as f64).ln())
    }

    fn queues(&self) -> Vec<(&'static str, &Queue)> {
        vec![("queue", &self.queue)]
    }
    fn queues_mut(&mut self) -> Vec<(&'static str, &mut Queue)> {
        vec![("queue", &mut self.queue)]
    }

    /// Enqueues the new keys after the loss is formed (so the loss uses the queue of earlier
    /// batches, as MoCo does).
    fn loss(
        &mut self,
        query: &E,
        batch: &StepBatch,
        ctx: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)> {
        let q = l2_normalize(query.project(batch.image(names::VIEW0)), 1);
        let k = shuffled_sub_batches(
            batch.image(names::VIEW1),
            self.cfg.key_bn,
            ctx.seed,
            ctx.world,
            |x| self.key.project(x),
        )?;
        let k = l2_normalize(k, 1).detach();
        let loss = info_nce(q, k.clone(), self.queue.keys.clone(), self.cfg.temperature);
        self.queue.enqueue_from_all_ranks(k, ctx.world)?;
        Ok((loss, LossTerms::new()))
    }

    fn encoder_lr_scale(&self) -> f64 {
        self.encoder_lr_scale
    }

    fn backbone(online: &E) -> &ResNet {
        online.backbone()
    }
    fn backbone_mut(online: &mut E) -> &mut ResNet {
        online.backbone_mut()
    }

    fn decoder(online: &E) -> Option<DecoderRef<'_>> {
        online.decoder()
    }

    fn init_from(run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        E::init_from(run)
    }
}
