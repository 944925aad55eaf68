//! CP² (METHODS.md §4.2–4.4): a segmentation model — ResNet at output stride 16, DeepLabv3 ASPP,
//! and a 1×1 projection 512→512→128 — trained on copy-paste composites. Per-cell embeddings are
//! L2-normalised on the OS16 grid; the instance loss compares foreground-pooled query and key
//! vectors against a queue (MoCo), the dense loss matches foreground cells of the query composite
//! to foreground cells of the key composite. Key network: EMA (m 0.999) of the whole model,
//! keys computed in shuffled sub-batches (single-device Shuffle-BN, as for MoCo v2).
//!
//! Quick Tuning: `init_from` loads a backbone trained by another run (a MoCo v2 run's
//! `backbone.record` or its `last.ckpt`, see [`crate::pretrained`]), the ASPP head and projection
//! start at random.

use std::path::Path;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use config::{Cp2Config, RunConfig};
use proto_shm::schemas::names;
use proto_shm::Schema;

use crate::data::StepBatch;
use crate::ema;
use crate::loss::cp2::{dense_loss, instance_loss};
use crate::loss::l2_normalize;
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::aspp::Aspp;
use crate::nn::heads::DenseMlp;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::queue::Queue;
use crate::shuffle_bn::shuffled_sub_batches;

#[derive(Module, Debug)]
pub struct Segmentor {
    pub backbone: ResNet,
    pub aspp: Aspp,
    pub projection: DenseMlp,
}

impl Segmentor {
    pub fn new(depth: Depth, cfg: &Cp2Config, device: &Device) -> Segmentor {
        let (r1, r2, r3) = cfg.aspp_rates;
        Segmentor {
            backbone: ResNetConfig::new(depth)
                .with_output_stride(cfg.output_stride)
                .init(device),
            aspp: Aspp::new(
                depth.out_channels(),
                cfg.aspp_channels,
                [r1, r2, r3],
                device,
            ),
            projection: DenseMlp::new([cfg.aspp_channels, cfg.aspp_channels, cfg.proj_dim], device),
        }
    }

    /// `[n, 3, s, s]` → per-cell embeddings `[n, d, (s/16)²]`, L2-normalised per cell.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let y = self
            .projection
            .forward(self.aspp.forward(self.backbone.forward(x)));
        let [n, d, h, w] = y.dims();
        l2_normalize(y.reshape([n, d, h * w]), 1)
    }
}

/// The parts of CP² that the optimiser does not train.
pub struct Cp2 {
    pub cfg: Cp2Config,
    pub key: Segmentor,
    pub queue: Queue,
}

impl Cp2 {
    pub fn build(cfg: &Cp2Config, depth: Depth, device: &Device) -> (Segmentor, Cp2) {
        let query = Segmentor::new(depth, cfg, device);
        let state = Cp2 {
            cfg: cfg.clone(),
            key: ema::copy_of(&query, Segmentor::new(depth, cfg, device)),
            queue: Queue::new(cfg.queue_size, cfg.proj_dim, device),
        };
        (query, state)
    }
}

impl Method for Cp2 {
    type Online = Segmentor;
    type Target = Segmentor;

    fn new(run: &RunConfig, device: &Device) -> Result<(Segmentor, Cp2)> {
        let cfg = crate::method_config!(run, Cp2);
        let depth = Depth::from(run.trainer.arch);
        Ok(Cp2::build(cfg, depth, device))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let c = crate::method_config!(run, Cp2);
        Ok(proto_shm::schemas::cp2(
            run.loader.batch_size,
            c.view.size,
            c.output_stride,
        ))
    }

    fn target_mut(&mut self) -> Option<&mut Segmentor> {
        Some(&mut self.key)
    }
    fn target(&self) -> Option<&Segmentor> {
        Some(&self.key)
    }
    fn target_source(online: &Segmentor) -> &Segmentor {
        online
    }
    fn momentum(&self, _: StepCtx) -> f64 {
        self.cfg.momentum as f64
    }

    fn queues(&self) -> Vec<(&'static str, &Queue)> {
        vec![("queue", &self.queue)]
    }
    fn queues_mut(&mut self) -> Vec<(&'static str, &mut Queue)> {
        vec![("queue", &mut self.queue)]
    }

    /// Composites `view0` (queries) and `view1` (keys) with their OS16 grid masks.
    fn loss(
        &mut self,
        query: &Segmentor,
        batch: &StepBatch,
        ctx: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)> {
        let (x_q, x_k) = (batch.image(names::VIEW0), batch.image(names::VIEW1));
        let n = x_q.dims()[0];
        let device = x_q.device();
        let (mq, mk) = (
            batch.mask(names::GRID0, n, &device),
            batch.mask(names::GRID1, n, &device),
        );
        let q = query.forward(x_q);
        let k = shuffled_sub_batches(x_k, self.cfg.key_bn, ctx.seed, ctx.world, |x| {
            self.key.forward(x)
        })?
        .detach();
        let (ins, kbar) = instance_loss(
            q.clone(),
            k.clone(),
            mq.clone(),
            mk.clone(),
            self.queue.keys.clone(),
            self.cfg.temperature,
        );
        let dense = dense_loss(q, k, mq, mk);
        let mut terms = LossTerms::new();
        terms.insert("instance", ins.clone().into_scalar::<f32>() as f64);
        terms.insert("dense", dense.clone().into_scalar::<f32>() as f64);
        self.queue.enqueue_from_all_ranks(kbar, ctx.world)?;
        Ok((ins + dense.mul_scalar(self.cfg.dense_weight), terms))
    }

    fn backbone(online: &Segmentor) -> &ResNet {
        &online.backbone
    }
    fn backbone_mut(online: &mut Segmentor) -> &mut ResNet {
        &mut online.backbone
    }

    /// Quick Tuning: the backbone of another run; ASPP and projection start fresh.
    fn init_from(run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        match &run.method {
            config::MethodConfig::Cp2(c) => c
                .init_from
                .as_deref()
                .map(|p| ("quick tuning", p, &["aspp", "projection"][..])),
            _ => None,
        }
    }
}
