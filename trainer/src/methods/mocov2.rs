//! MoCo v2 (METHODS.md §1): query encoder = ResNet + MLP 2048→2048→128, key encoder = its EMA
//! (m = 0.999, updated before the key forward), a queue of 65,536 keys, InfoNCE with T = 0.2.
//!
//! Shuffle-BN on one device: the key batch is permuted and split into sub-batches that are
//! batch-normalised separately, then un-permuted — what MoCo's maintainers advise for a single
//! GPU (facebookresearch/moco#47). Keys thus never share BN statistics with their own queries.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use config::{KeyBatchNorm, MocoV2Config};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::LossTerms;
use crate::ema;
use crate::loss::{infonce::info_nce, l2_normalize};
use crate::nn::heads::Mlp2;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::queue::Queue;

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

/// Runs `f` on `x` in shuffled sub-batches and returns the outputs in the original order.
pub fn shuffled_sub_batches<const D: usize>(
    x: Tensor<4>,
    mode: KeyBatchNorm,
    seed: u64,
    f: impl Fn(Tensor<4>) -> Tensor<D>,
) -> Tensor<D> {
    let n = x.dims()[0];
    let shards = match mode {
        KeyBatchNorm::ShuffledSubBatches(s) => s.clamp(1, n),
        KeyBatchNorm::Plain => 1,
    };
    if shards == 1 {
        return f(x);
    }
    let device = x.device();
    let mut perm: Vec<i64> = (0..n as i64).collect();
    perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut inverse = vec![0i64; n];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p as usize] = i as i64;
    }
    let perm_t = Tensor::<1, Int>::from_ints(perm.as_slice(), &device);
    let x = x.select(0, perm_t);
    let per = n.div_ceil(shards);
    let outs: Vec<Tensor<D>> = (0..n)
        .step_by(per)
        .map(|s| f(x.clone().narrow(0, s, per.min(n - s))))
        .collect();
    let y = Tensor::cat(outs, 0);
    y.select(0, Tensor::<1, Int>::from_ints(inverse.as_slice(), &device))
}

/// The parts of MoCo v2 that are not trained by the optimiser.
pub struct MocoV2 {
    pub cfg: MocoV2Config,
    pub key: Encoder,
    pub queue: Queue,
}

impl MocoV2 {
    pub fn new(cfg: &MocoV2Config, depth: Depth, query: &Encoder, device: &Device) -> MocoV2 {
        MocoV2 {
            cfg: cfg.clone(),
            key: ema::copy_of(query, Encoder::new(depth, cfg, device)),
            queue: Queue::new(cfg.queue_size, cfg.proj_dim, device),
        }
    }

    /// One step's loss. Updates the key encoder first and enqueues the new keys after the loss is
    /// formed (so the loss uses the queue of earlier batches, as MoCo does).
    pub fn loss(
        &mut self,
        query: &Encoder,
        x_q: Tensor<4>,
        x_k: Tensor<4>,
        step_seed: u64,
    ) -> (Tensor<1>, LossTerms) {
        ema::update(&mut self.key, query, self.cfg.momentum as f64);
        let q = l2_normalize(query.forward(x_q), 1);
        let k = shuffled_sub_batches(x_k, self.cfg.key_bn, step_seed, |x| self.key.forward(x));
        let k = l2_normalize(k, 1).detach();
        let loss = info_nce(q, k.clone(), self.queue.keys.clone(), self.cfg.temperature);
        self.queue.enqueue(k);
        (loss, LossTerms::new())
    }
}
