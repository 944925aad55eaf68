//! The method base: what every pretraining method declares, and the one training step that runs
//! any of them. A method says what it trains (`Online`), its momentum twin (`Target`, the EMA of
//! a part of `Online`) and the momentum of each step, its named non-gradient state (queues) for
//! checkpoints, its loss on a batch read by tensor name, its ring schema and its backbone.
//! Everything common — the EMA update, backward, the optimiser step, schedules, checkpoints and
//! metrics — is written once, here and in `train`.
//!
//! Adding a method: a `config::MethodConfig` variant, a views file in `loader/src/views/`, a
//! method file in `methods/`, a loss file in `loss/`, and one line in [`crate::methods::with_method`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::module::Module;
use burn::module::ParamGroup;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use config::RunConfig;
use proto_shm::Schema;

use crate::checkpoint::Checkpoint;
use crate::data::StepBatch;
use crate::dist::World;
use crate::nn::decoder::{DecoderRef, DecoderSlot};
use crate::nn::resnet::ResNet;
use crate::queue::Queue;
use crate::record::{load_module, record_bytes};

/// Named scalar loss terms of a step, for the metrics log.
pub type LossTerms = BTreeMap<&'static str, f64>;

/// Where a step sits in the run, for schedules that depend on it, and the ranks it runs on.
#[derive(Clone, Copy)]
pub struct StepCtx<'a> {
    pub step: usize,
    pub total: usize,
    /// A seed for this step's randomness (shuffle-BN permutations); the same on every rank.
    pub seed: u64,
    /// The data-parallel world (one process unless `launch --nproc-per-node`).
    pub world: &'a World,
}

/// Checkpoint blob names. They are the names checkpoints have always used, so files written
/// before the method base still resume.
pub const ONLINE_BLOB: &str = "query";
pub const TARGET_BLOB: &str = "key";
pub const OPTIM_BLOB: &str = "optim";

/// One pretraining method. `Self` holds the state the optimiser does not train.
pub trait Method: Sized {
    /// The module the optimiser trains.
    type Online: Module;
    /// The momentum twin: an EMA of [`Method::target_source`]'s part of the online module.
    type Target: Module;

    /// Builds the online module and the method's state for `run` (whose method is this one).
    fn new(run: &RunConfig, device: &Device) -> Result<(Self::Online, Self)>;

    /// The ring schema this method reads, as the loader writes it for `run`.
    fn schema(run: &RunConfig) -> Result<Schema>;

    /// The momentum twin, updated by the loop before each loss (None: the method has none).
    fn target_mut(&mut self) -> Option<&mut Self::Target>;
    fn target(&self) -> Option<&Self::Target>;
    /// The part of the online module the twin follows.
    fn target_source(online: &Self::Online) -> &Self::Target;
    /// The EMA momentum at this step.
    fn momentum(&self, ctx: StepCtx) -> f64;

    /// Queues (and other non-gradient tensors) by checkpoint name.
    fn queues(&self) -> Vec<(&'static str, &Queue)> {
        Vec::new()
    }
    fn queues_mut(&mut self) -> Vec<(&'static str, &mut Queue)> {
        Vec::new()
    }

    /// This step's loss (and its named terms) on `batch`, with the twin already updated.
    fn loss(
        &mut self,
        online: &Self::Online,
        batch: &StepBatch,
        ctx: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)>;

    /// State changes that take no gradient and must land in the online module after the
    /// optimiser's step (ProtoSeg's momentum update of its prototypes, computed in `loss`).
    fn after_step(&mut self, _online: &mut Self::Online) {}

    /// The loss of a network that has learnt nothing (uniform predictions), once any queue is
    /// full of real keys; None where there is no such level (BYOL-style losses).
    fn chance_loss(&self) -> Option<f64> {
        None
    }

    /// The backbone's learning rate relative to the rest of the online module (the SSL4DP
    /// draft trains the encoder at 1/100 of the decoder's rate).
    fn encoder_lr_scale(&self) -> f64 {
        1.0
    }

    /// The backbone being pretrained.
    fn backbone(online: &Self::Online) -> &ResNet;
    fn backbone_mut(online: &mut Self::Online) -> &mut ResNet;

    /// Detection modules pretrained with the backbone (SoCo's FPN and box head), which the
    /// detectron2 export carries so detection fine-tuning starts from them too.
    fn detector_parts(_online: &Self::Online) -> Option<crate::weights::export::DetectorParts<'_>> {
        None
    }

    /// A decoder pretrained with the backbone (EDMoCo, PLEDMoCo, patch rotation), which
    /// segmentation fine-tuning with the same head kind starts from.
    fn decoder(_online: &Self::Online) -> Option<DecoderRef<'_>> {
        None
    }

    /// The part of the online module a pretrained decoder fills, when `run` asks for one to be
    /// taken from the checkpoint it starts from (segmentation fine-tuning).
    fn decoder_slot<'a>(
        _run: &RunConfig,
        _online: &'a mut Self::Online,
    ) -> Option<DecoderSlot<'a>> {
        None
    }

    /// Pictures of what the network predicts, drawn from the run's last batch into `out` when the
    /// run ends (patch rotation's prediction sheet); returns the files written.
    fn end_of_run_pictures(
        &self,
        _online: &Self::Online,
        _batch: &StepBatch,
        _out: &Path,
    ) -> Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }

    /// The number of steps the learning-rate schedule spans, where the method fixes it (an
    /// iteration-based schedule); None: the run's epochs of the loader's stream.
    fn schedule_steps(_run: &RunConfig) -> Option<usize> {
        None
    }

    /// Last touches to the online module once its weights are in place (loaded, restored or
    /// fresh): e.g. freezing a part that must not train.
    fn prepare(_run: &RunConfig, online: Self::Online) -> Self::Online {
        online
    }

    /// A trained backbone to start from, if the config names one: (what to call the start in
    /// messages, the file, the parts of the online module that start fresh). The loop loads it
    /// (`crate::pretrained::init_online`), so methods never depend on the method registry.
    fn init_from(_run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        None
    }
}

/// One training step of any method: the EMA update of the twin, the loss, backward, the
/// gradients averaged over the ranks (data parallelism; nothing on one process), and one
/// optimiser step. Returns the loss read back from the device (its mean over the ranks) and its
/// terms (this rank's).
pub fn train_step<M: Method>(
    online: &mut M::Online,
    method: &mut M,
    optim: &mut ModuleOptimizer,
    lr: f64,
    batch: &StepBatch,
    ctx: StepCtx,
) -> Result<(f64, LossTerms)> {
    let momentum = method.momentum(ctx);
    if let Some(target) = method.target_mut() {
        crate::ema::update(target, M::target_source(online), momentum);
    }
    let (loss, terms) = method.loss(online, batch, ctx)?;
    let value = ctx
        .world
        .mean_scalar(loss.clone().into_scalar::<f32>() as f64)?;
    let mut grads = GradientsParams::from_grads(loss.backward(), online);
    ctx.world.average_gradients(&mut grads, online)?;
    let lr = learning_rates::<M>(online, lr, method.encoder_lr_scale());
    // The optimiser takes the module by value and no clone of it may stay behind: parameters
    // with no other owner are updated in place by libtorch (R-50: −8 ms and −60 MiB per step,
    // BENCHMARKS.md). A panic inside the step aborts.
    replace_with::replace_with_or_abort(online, |q| optim.step(lr, q, grads));
    method.after_step(online);
    Ok((value, terms))
}

/// `lr` for every parameter, the backbone's scaled by `encoder_scale`.
fn learning_rates<M: Method>(
    online: &M::Online,
    lr: f64,
    encoder_scale: f64,
) -> ModuleLearningRate {
    if encoder_scale == 1.0 {
        return lr.into();
    }
    // The group is matched by parameter id, which the optimiser's step keeps; the clone is of
    // tensor handles and is dropped before the step (which updates parameters in place only
    // where nothing else holds them).
    let encoder = ParamGroup::ids_from_module(M::backbone(online).clone());
    ModuleLrScheduler::new(lr)
        .with_group(encoder, lr * encoder_scale)
        .step()
}

/// Queue pointers by name, for the checkpoint header.
pub fn queue_cursors<M: Method>(method: &M) -> BTreeMap<String, (usize, usize)> {
    method
        .queues()
        .into_iter()
        .map(|(n, q)| (n.to_string(), (q.ptr, q.filled)))
        .collect()
}

/// Everything of a run that a checkpoint stores as blobs.
pub fn state_blobs<M: Method>(
    online: &M::Online,
    method: &M,
    optim: &ModuleOptimizer,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut b = vec![(ONLINE_BLOB, record_bytes(online)?)];
    if let Some(t) = method.target() {
        b.push((TARGET_BLOB, record_bytes(t)?));
    }
    b.push((
        OPTIM_BLOB,
        optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_vec(),
    ));
    for (name, q) in method.queues() {
        b.push((name, queue_bytes(q)?));
    }
    Ok(b)
}

/// Restores what [`state_blobs`] saved (the optimiser is restored by the caller).
pub fn restore<M: Method>(online: &mut M::Online, method: &mut M, ck: &Checkpoint) -> Result<()> {
    *online = load_module(online.clone(), ck.blob(ONLINE_BLOB)?)?;
    if let Some(t) = method.target_mut() {
        *t = load_module(t.clone(), ck.blob(TARGET_BLOB)?)?.no_grad();
    }
    for (name, q) in method.queues_mut() {
        let cursor = *ck.state.queues.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "checkpoint has no cursor for queue {name:?} (written by another method?)"
            )
        })?;
        load_queue(q, ck.blob(name)?, cursor)?;
    }
    Ok(())
}

fn queue_bytes(q: &Queue) -> Result<Vec<u8>> {
    let v = q
        .keys
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn load_queue(q: &mut Queue, bytes: &[u8], (ptr, filled): (usize, usize)) -> Result<()> {
    let [len, dim] = q.keys.dims();
    if bytes.len() != len * dim * 4 {
        anyhow::bail!(
            "checkpoint queue holds {} bytes, this config's queue {len}×{dim} needs {}",
            bytes.len(),
            len * dim * 4
        );
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    q.keys = Tensor::<2>::from_data(TensorData::new(v, [len, dim]), &q.keys.device());
    q.ptr = ptr;
    q.filled = filled;
    Ok(())
}
