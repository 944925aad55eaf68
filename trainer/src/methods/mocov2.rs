//! MoCo v2 (METHODS.md §1): query encoder = ResNet + MLP 2048→2048→128, key encoder = its EMA
//! (m = 0.999, updated before the key forward), a queue of 65,536 keys, InfoNCE with T = 0.2.
//! Keys are computed with single-device shuffle-BN ([`crate::shuffle_bn`]).

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
use crate::nn::heads::Mlp2;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::queue::Queue;
use crate::shuffle_bn::shuffled_sub_batches;

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
        let c5 = self.backbone.forward(x);
        let [n, c, _, _] = c5.dims();
        let pooled = c5.mean_dim(3).mean_dim(2).reshape([n, c]);
        self.head.forward(pooled)
    }
}

/// The parts of MoCo v2 that are not trained by the optimiser.
pub struct MocoV2 {
    pub cfg: MocoV2Config,
    pub key: Encoder,
    pub queue: Queue,
}

impl MocoV2 {
    pub fn build(cfg: &MocoV2Config, depth: Depth, device: &Device) -> (Encoder, MocoV2) {
        let query = Encoder::new(depth, cfg, device);
        let state = MocoV2 {
            cfg: cfg.clone(),
            key: ema::copy_of(&query, Encoder::new(depth, cfg, device)),
            queue: Queue::new(cfg.queue_size, cfg.proj_dim, device),
        };
        (query, state)
    }
}

impl Method for MocoV2 {
    type Online = Encoder;
    type Target = Encoder;

    fn new(run: &RunConfig, device: &Device) -> Result<(Encoder, MocoV2)> {
        let cfg = crate::method_config!(run, MocoV2);
        Ok(MocoV2::build(cfg, Depth::from(run.trainer.arch), device))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let size = crate::method_config!(run, MocoV2).view.size;
        Ok(proto_shm::schemas::two_crop(
            "mocov2",
            run.loader.batch_size,
            size,
        ))
    }

    fn target_mut(&mut self) -> Option<&mut Encoder> {
        Some(&mut self.key)
    }
    fn target(&self) -> Option<&Encoder> {
        Some(&self.key)
    }
    fn target_source(online: &Encoder) -> &Encoder {
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
    fn loss(&mut self, query: &Encoder, batch: &StepBatch, ctx: StepCtx) -> (Tensor<1>, LossTerms) {
        let q = l2_normalize(query.forward(batch.image(names::VIEW0)), 1);
        let k = shuffled_sub_batches(batch.image(names::VIEW1), self.cfg.key_bn, ctx.seed, |x| {
            self.key.forward(x)
        });
        let k = l2_normalize(k, 1).detach();
        let loss = info_nce(q, k.clone(), self.queue.keys.clone(), self.cfg.temperature);
        self.queue.enqueue(k);
        (loss, LossTerms::new())
    }

    fn backbone(online: &Encoder) -> &ResNet {
        &online.backbone
    }
    fn backbone_mut(online: &mut Encoder) -> &mut ResNet {
        &mut online.backbone
    }
}
