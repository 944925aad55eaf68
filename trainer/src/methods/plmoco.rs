//! SSL4DP patch-level MoCo, and patch-level encoder-decoder MoCo (METHODS.md §9). Every cell of
//! the stride-16 (or 8) feature map — the backbone's, or with a decoder the decoder's — is
//! embedded by a 1×1 projection head (MoCo v2's MLP as 1×1 convs) and L2-normalised. A view-0
//! cell's positive is the key view's cell showing the same image point (the loader's `match`,
//! from the crop geometry); cells of view 0 with no such cell are left out.
//!
//! Negatives: a queue of cell embeddings, one key cell per image per step drawn at random. Not
//! the key view's other cells: at stride 16 a ResNet's receptive field covers most of the view,
//! so neighbouring cells of the same image are near-duplicates and would be false negatives; the
//! queue holds cells of other images, as MoCo's holds other images. The loss is then MoCo's
//! InfoNCE per matched cell, with chance level ln(1 + K).

use std::path::Path;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use config::{PatchMocoConfig, RunConfig};
use proto_shm::schemas::names;
use proto_shm::Schema;
use rand::{Rng, SeedableRng};

use crate::data::StepBatch;
use crate::ema;
use crate::loss::l2_normalize;
use crate::loss::patch_infonce::{cell_rows, matched_cell_info_nce};
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::decoder::{Decoder, DecoderRef};
use crate::nn::heads::DenseMlp;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::queue::Queue;
use crate::shuffle_bn::shuffled_sub_batches;

#[derive(Module, Debug)]
pub struct CellEncoder {
    pub backbone: ResNet,
    /// PLEDMoCo's decoder; None for PLMoCo.
    pub decoder: Option<Decoder>,
    pub head: DenseMlp,
}

impl CellEncoder {
    pub fn new(depth: Depth, cfg: &PatchMocoConfig, device: &Device) -> CellEncoder {
        let c = depth.out_channels();
        let decoder = cfg.decoder.as_ref().map(|d| Decoder::new(d, c, device));
        let width = cfg.decoder.as_ref().map_or(c, |d| d.channels());
        CellEncoder {
            backbone: ResNetConfig::new(depth)
                .with_output_stride(cfg.cell_stride)
                .init(device),
            decoder,
            head: DenseMlp::new([width, cfg.moco.proj_hidden, cfg.moco.proj_dim], device),
        }
    }

    /// `[n, 3, s, s]` → cell embeddings `[n, proj_dim, (s/stride)²]` (not normalised).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let mut f = self.backbone.forward(x);
        if let Some(d) = &self.decoder {
            f = d.forward(f);
        }
        let e = self.head.forward(f);
        let [n, d, h, w] = e.dims();
        e.reshape([n, d, h * w])
    }
}

pub struct PatchMoco {
    pub cfg: PatchMocoConfig,
    pub key: CellEncoder,
    pub queue: Queue,
}

impl Method for PatchMoco {
    type Online = CellEncoder;
    type Target = CellEncoder;

    fn new(run: &RunConfig, device: &Device) -> Result<(CellEncoder, PatchMoco)> {
        let cfg = crate::method_config!(run, PatchMoco);
        let depth = Depth::from(run.trainer.arch);
        let query = CellEncoder::new(depth, cfg, device);
        let state = PatchMoco {
            key: ema::copy_of(&query, CellEncoder::new(depth, cfg, device)),
            queue: Queue::new(cfg.moco.queue_size, cfg.moco.proj_dim, device),
            cfg: cfg.clone(),
        };
        Ok((query, state))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let p = crate::method_config!(run, PatchMoco);
        Ok(proto_shm::schemas::patch_moco(
            run.loader.batch_size,
            p.moco.view.size,
            p.cell_stride,
        ))
    }

    fn target_mut(&mut self) -> Option<&mut CellEncoder> {
        Some(&mut self.key)
    }
    fn target(&self) -> Option<&CellEncoder> {
        Some(&self.key)
    }
    fn target_source(online: &CellEncoder) -> &CellEncoder {
        online
    }
    fn momentum(&self, _: StepCtx) -> f64 {
        self.cfg.moco.momentum as f64
    }

    /// InfoNCE over 1 positive and K negatives per matched cell: ln(1 + K).
    fn chance_loss(&self) -> Option<f64> {
        Some((1.0 + self.queue.len() as f64).ln())
    }

    fn queues(&self) -> Vec<(&'static str, &Queue)> {
        vec![("queue", &self.queue)]
    }
    fn queues_mut(&mut self) -> Vec<(&'static str, &mut Queue)> {
        vec![("queue", &mut self.queue)]
    }

    fn loss(
        &mut self,
        query: &CellEncoder,
        batch: &StepBatch,
        ctx: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)> {
        let q = l2_normalize(query.forward(batch.image(names::VIEW0)), 1);
        let k = shuffled_sub_batches(
            batch.image(names::VIEW1),
            self.cfg.moco.key_bn,
            ctx.seed,
            ctx.world,
            |x| self.key.forward(x),
        )?;
        let k = l2_normalize(k, 1).detach();
        let [n, _, cells] = k.dims();
        let matches = batch.i32s(names::MATCH);
        let mut terms = LossTerms::new();
        let loss = match matched_cell_info_nce(
            q.clone(),
            k.clone(),
            &matches,
            self.queue.keys.clone(),
            self.cfg.moco.temperature,
        ) {
            Some((loss, matched)) => {
                terms.insert("matched_cells", matched as f64 / (n * cells) as f64);
                loss
            }
            // No two views of the batch overlap: nothing to learn from, and no gradient.
            None => {
                terms.insert("matched_cells", 0.0);
                q.sum().mul_scalar(0.0)
            }
        };
        // One key cell per image joins the queue, drawn from this step's seed (so a resumed
        // run enqueues what the uninterrupted one did); every rank's draws, gathered, are what
        // one process would draw for the whole global batch.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x5eed_ce11);
        let draws: Vec<usize> = (0..n * ctx.world.world_size)
            .map(|_| rng.random_range(0..cells))
            .collect();
        let rows: Vec<i64> = (0..n)
            .map(|i| (i * cells + draws[ctx.world.rank * n + i]) as i64)
            .collect();
        let device = k.device();
        let picked = cell_rows(k).select(0, Tensor::<1, Int>::from_ints(rows.as_slice(), &device));
        self.queue.enqueue_from_all_ranks(picked, ctx.world)?;
        Ok((loss, terms))
    }

    fn encoder_lr_scale(&self) -> f64 {
        self.cfg.encoder_lr_scale
    }

    fn backbone(online: &CellEncoder) -> &ResNet {
        &online.backbone
    }
    fn backbone_mut(online: &mut CellEncoder) -> &mut ResNet {
        &mut online.backbone
    }

    fn decoder(online: &CellEncoder) -> Option<DecoderRef<'_>> {
        online.decoder.as_ref().map(Decoder::as_ref)
    }

    /// Continued pretraining (the draft's "200 + 2"): decoder and head start fresh.
    fn init_from(run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        match &run.method {
            config::MethodConfig::PatchMoco(p) => p
                .init_from
                .as_deref()
                .map(|p| ("continued pretraining", p, &["decoder", "head"][..])),
            _ => None,
        }
    }
}
