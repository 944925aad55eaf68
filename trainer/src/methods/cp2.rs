//! CP² (METHODS.md §4.2–4.4): a segmentation model — ResNet at output stride 16, DeepLabv3 ASPP,
//! and a 1×1 projection 512→512→128 — trained on copy-paste composites. Per-cell embeddings are
//! L2-normalised on the OS16 grid; the instance loss compares foreground-pooled query and key
//! vectors against a queue (MoCo), the dense loss matches foreground cells of the query composite
//! to foreground cells of the key composite. Key network: EMA (m 0.999) of the whole model,
//! keys computed in shuffled sub-batches (single-device Shuffle-BN, as for MoCo v2).
//!
//! Quick Tuning: `init_from` loads a backbone trained by another run (a MoCo v2 run's
//! `backbone.record` or its `last.ckpt`), the ASPP head and projection start at random.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use config::Cp2Config;

use super::mocov2::shuffled_sub_batches;
use super::LossTerms;
use crate::data::StepBatch;
use crate::ema;
use crate::loss::cp2::{dense_loss, instance_loss};
use crate::loss::l2_normalize;
use crate::nn::aspp::Aspp;
use crate::nn::heads::DenseMlp;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::queue::Queue;

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

struct CountParams(usize);

impl ModuleVisitor for CountParams {
    fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
        self.0 += 1;
    }
}

/// Number of parameter tensors of a module (BN running statistics are buffers, not counted).
pub fn param_tensors<M: Module>(m: &M) -> usize {
    let mut c = CountParams(0);
    m.visit(&mut c);
    c.0
}

/// What Quick Tuning loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub loaded: usize,
    pub fresh: Vec<&'static str>,
}

/// Loads a backbone into `model`: a `backbone.record` written by one of our runs, a MoCo v2 /
/// DenseCL `last.ckpt` of ours, or a torchvision-layout `.safetensors` state dict (e.g. MoCo's
/// released weights converted; `module.encoder_q.` prefixes are stripped).
pub fn init_backbone(
    model: Segmentor,
    path: &Path,
    depth: Depth,
    device: &Device,
) -> Result<(Segmentor, InitReport)> {
    let bytes = if path.extension().is_some_and(|e| e == "ckpt") {
        let ck = crate::checkpoint::load(path)?;
        // The checkpoint carries its run's config: rebuild that run's encoder to read it.
        let run = config::RunConfig::from_str(&ck.state.config, &path.display().to_string())?;
        let theirs = Depth::from(run.trainer.arch);
        if theirs != depth {
            bail!(
                "{}: the checkpoint's backbone is {theirs:?}, this run's is {depth:?}",
                path.display()
            );
        }
        let query = ck.blob("query")?;
        let backbone = match &run.method {
            config::MethodConfig::MocoV2(m) => {
                let enc = crate::methods::mocov2::Encoder::new(depth, m, device);
                crate::train::load_module_lenient(enc, query)?.backbone
            }
            config::MethodConfig::DenseCl(m) => {
                let enc = crate::methods::densecl::Encoder::new(depth, m, device);
                crate::train::load_module_lenient(enc, query)?.backbone
            }
            other => bail!(
                "{}: Quick Tuning starts from a MoCo v2 or DenseCL checkpoint, this one is {}",
                path.display(),
                other.name()
            ),
        };
        crate::train::record_bytes(&backbone)?
    } else if path.extension().is_some_and(|e| e == "safetensors") {
        let (backbone, loaded) = crate::nn::resnet::load_torchvision(model.backbone, path)?;
        return Ok((
            Segmentor { backbone, ..model },
            InitReport {
                loaded,
                fresh: vec!["aspp", "projection"],
            },
        ));
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    let backbone = crate::train::load_module_lenient(model.backbone, &bytes)
        .with_context(|| format!("{}: not a {depth:?} backbone record", path.display()))?;
    let loaded = param_tensors(&backbone);
    Ok((
        Segmentor { backbone, ..model },
        InitReport {
            loaded,
            fresh: vec!["aspp", "projection"],
        },
    ))
}

/// The parts of CP² that the optimiser does not train.
pub struct Cp2 {
    pub cfg: Cp2Config,
    pub key: Segmentor,
    pub queue: Queue,
}

impl Cp2 {
    pub fn new(cfg: &Cp2Config, depth: Depth, query: &Segmentor, device: &Device) -> Cp2 {
        Cp2 {
            cfg: cfg.clone(),
            key: ema::copy_of(query, Segmentor::new(depth, cfg, device)),
            queue: Queue::new(cfg.queue_size, cfg.proj_dim, device),
        }
    }

    /// One step: composites `view0` (queries) and `view1` (keys) with their OS16 grid masks.
    pub fn loss(
        &mut self,
        query: &Segmentor,
        batch: &StepBatch,
        seed: u64,
    ) -> (Tensor<1>, LossTerms) {
        ema::update(&mut self.key, query, self.cfg.momentum as f64);
        let n = batch.views[0].dims()[0];
        let device = batch.views[0].device();
        let (mq, mk) = (
            batch.mask("grid0", n, &device),
            batch.mask("grid1", n, &device),
        );
        let q = query.forward(batch.views[0].clone());
        let k = shuffled_sub_batches(batch.views[1].clone(), self.cfg.key_bn, seed, |x| {
            self.key.forward(x)
        })
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
        self.queue.enqueue(kbar.detach());
        (ins + dense.mul_scalar(self.cfg.dense_weight), terms)
    }
}
