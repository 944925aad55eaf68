//! DenseCL (METHODS.md §2): MoCo v2 plus a dense branch on C5 (1×1 conv 2048→2048→128), dense
//! positives found by argmax cosine between *backbone* features of the two views, a second queue
//! of pooled dense keys, and total = (1 − λ)·global + λ·dense with λ = 0.5.

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use config::{DenseClConfig, RunConfig};
use proto_shm::schemas::names;
use proto_shm::Schema;

use crate::data::StepBatch;
use crate::ema;
use crate::loss::densecl::{dense_loss, match_locations};
use crate::loss::{infonce::info_nce, l2_normalize};
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::heads::{DenseMlp, Mlp2};
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::queue::Queue;
use crate::shuffle_bn::shuffled_sub_batches;

#[derive(Module, Debug)]
pub struct Encoder {
    pub backbone: ResNet,
    pub head: Mlp2,
    pub dense_head: DenseMlp,
}

/// What one encoder pass yields: global projection `[n, d]`, dense projection `[n, d, S²]`,
/// backbone C5 flattened `[n, C, S²]`.
pub struct Outputs {
    pub global: Tensor<2>,
    pub dense: Tensor<3>,
    pub backbone: Tensor<3>,
}

impl Encoder {
    pub fn new(depth: Depth, cfg: &DenseClConfig, device: &Device) -> Encoder {
        let c = depth.out_channels();
        Encoder {
            backbone: ResNetConfig::new(depth).init(device),
            head: Mlp2::new([c, cfg.moco.proj_hidden, cfg.moco.proj_dim], device),
            dense_head: DenseMlp::new([c, cfg.moco.proj_hidden, cfg.moco.proj_dim], device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Outputs {
        let c5 = self.backbone.forward(x);
        let [n, c, h, w] = c5.dims();
        let pooled = c5.clone().mean_dim(3).mean_dim(2).reshape([n, c]);
        let global = self.head.forward(pooled);
        let dense = self.dense_head.forward(c5.clone());
        let d = dense.dims()[1];
        Outputs {
            global,
            dense: dense.reshape([n, d, h * w]),
            backbone: c5.reshape([n, c, h * w]),
        }
    }

    /// Everything concatenated along the last axis, for running through shuffled sub-batches:
    /// `[n, d + d·S² + C·S²]` (split again by [`Outputs::unpack`]).
    fn packed(&self, x: Tensor<4>) -> Tensor<2> {
        let o = self.forward(x);
        let n = o.global.dims()[0];
        Tensor::cat(
            vec![
                o.global,
                o.dense.reshape([n as i32, -1]),
                o.backbone.reshape([n as i32, -1]),
            ],
            1,
        )
    }
}

impl Outputs {
    fn unpack(p: Tensor<2>, d: usize, c: usize, s2: usize) -> Outputs {
        let n = p.dims()[0];
        Outputs {
            global: p.clone().narrow(1, 0, d),
            dense: p.clone().narrow(1, d, d * s2).reshape([n, d, s2]),
            backbone: p.narrow(1, d + d * s2, c * s2).reshape([n, c, s2]),
        }
    }
}

pub struct DenseCl {
    pub cfg: DenseClConfig,
    pub key: Encoder,
    pub queue: Queue,
    pub dense_queue: Queue,
}

impl DenseCl {
    pub fn build(cfg: &DenseClConfig, depth: Depth, device: &Device) -> (Encoder, DenseCl) {
        let query = Encoder::new(depth, cfg, device);
        let state = DenseCl {
            cfg: cfg.clone(),
            key: ema::copy_of(&query, Encoder::new(depth, cfg, device)),
            queue: Queue::new(cfg.moco.queue_size, cfg.moco.proj_dim, device),
            dense_queue: Queue::new(cfg.moco.queue_size, cfg.moco.proj_dim, device),
        };
        (query, state)
    }
}

impl Method for DenseCl {
    type Online = Encoder;
    type Target = Encoder;

    fn new(run: &RunConfig, device: &Device) -> Result<(Encoder, DenseCl)> {
        let cfg = crate::method_config!(run, DenseCl);
        Ok(DenseCl::build(cfg, Depth::from(run.trainer.arch), device))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let size = crate::method_config!(run, DenseCl).moco.view.size;
        Ok(proto_shm::schemas::two_crop(
            "densecl",
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
        self.cfg.moco.momentum as f64
    }

    /// Both terms are InfoNCE over 1 positive and K negatives: ln(1 + K) for any λ.
    fn chance_loss(&self) -> Option<f64> {
        Some((1.0 + self.queue.len() as f64).ln())
    }

    fn queues(&self) -> Vec<(&'static str, &Queue)> {
        vec![("queue", &self.queue), ("dense_queue", &self.dense_queue)]
    }
    fn queues_mut(&mut self) -> Vec<(&'static str, &mut Queue)> {
        vec![
            ("queue", &mut self.queue),
            ("dense_queue", &mut self.dense_queue),
        ]
    }

    fn loss(
        &mut self,
        query: &Encoder,
        batch: &StepBatch,
        ctx: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)> {
        let m = &self.cfg.moco;
        let q = query.forward(batch.image(names::VIEW0));
        let (d, c, s2) = (
            q.global.dims()[1],
            q.backbone.dims()[1],
            q.backbone.dims()[2],
        );
        let packed = shuffled_sub_batches(
            batch.image(names::VIEW1),
            m.key_bn,
            ctx.seed,
            ctx.world,
            |x| self.key.packed(x),
        )?;
        let k = Outputs::unpack(packed.detach(), d, c, s2);
        let q_global = l2_normalize(q.global, 1);
        let k_global = l2_normalize(k.global, 1);
        let loss_global = info_nce(
            q_global,
            k_global.clone(),
            self.queue.keys.clone(),
            m.temperature,
        );

        let matches = match_locations(q.backbone.detach(), k.backbone);
        // k2: the dense key map averaged over locations, one vector per image.
        let k2 = l2_normalize(
            k.dense.clone().mean_dim(2).reshape([k.dense.dims()[0], d]),
            1,
        );
        let loss_dense = dense_loss(
            q.dense,
            k.dense,
            matches,
            self.dense_queue.keys.clone(),
            m.temperature,
        );

        let lambda = if ctx.step < self.cfg.dense_warmup_iters {
            0.0
        } else {
            self.cfg.dense_weight as f64
        };
        let mut terms = LossTerms::new();
        terms.insert(
            "loss_global",
            loss_global.clone().into_scalar::<f32>() as f64,
        );
        terms.insert("loss_dense", loss_dense.clone().into_scalar::<f32>() as f64);
        let loss = loss_global.mul_scalar(1.0 - lambda) + loss_dense.mul_scalar(lambda);
        self.queue.enqueue_from_all_ranks(k_global, ctx.world)?;
        self.dense_queue.enqueue_from_all_ranks(k2, ctx.world)?;
        Ok((loss, terms))
    }

    fn backbone(online: &Encoder) -> &ResNet {
        &online.backbone
    }
    fn backbone_mut(online: &mut Encoder) -> &mut ResNet {
        &mut online.backbone
    }
}
