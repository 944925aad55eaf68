//! Data parallelism on PyTorch's c10d (through the vendored burn-tch's shim): which rank this
//! process is, and the few collectives the loop and the methods need — gradients averaged once
//! per step in bucketed all-reduces (what DDP's reducer does), all-gathers for MoCo's cross-rank
//! shuffle-BN and queues, and a broadcast of rank 0's weights at the start.
//!
//! The rendezvous follows torchrun's conventions (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `MASTER_ADDR`, `MASTER_PORT`), so `launch --nproc-per-node` and torchrun-style schedulers start
//! ranks the same way. With no `WORLD_SIZE` (or 1) the run is single-process and nothing here
//! costs anything. Gloo carries the collectives on CPU; the same calls take NCCL on GPUs once the
//! CUDA build exists.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// DDP's default bucket size: big enough that a ResNet-50's ~160 gradients take a few messages.
pub const BUCKET_BYTES: usize = 25 << 20;

/// This process's place in the run.
pub struct World {
    pub rank: usize,
    pub world_size: usize,
    /// The rank on this node (its loader ring and, on GPUs, its device).
    pub local_rank: usize,
    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    group: Option<burn::backend::libtorch::c10d::ProcessGroup>,
}

impl World {
    /// One process: every collective is the identity.
    pub fn single() -> World {
        World {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            #[cfg(feature = "tch")]
            group: None,
        }
    }

    /// The rank torchrun's variables describe (single-process when `WORLD_SIZE` is absent or 1);
    /// joins the group, waiting at most `timeout` for every rank (which also bounds each
    /// collective: a rank stuck longer ends the run with an error instead of a hang).
    pub fn from_env(timeout: Duration) -> Result<World> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.parse::<usize>()
                        .with_context(|| format!("{name}={v:?} is not a non-negative integer"))
                })
                .transpose()
        };
        let world_size = number("WORLD_SIZE")?.unwrap_or(1);
        if world_size <= 1 {
            return Ok(World::single());
        }
        let rank = number("RANK")?.context("WORLD_SIZE is set but RANK is not")?;
        if rank >= world_size {
            bail!("RANK={rank} must be below WORLD_SIZE={world_size}");
        }
        let local_rank = number("LOCAL_RANK")?.unwrap_or(rank);
        let addr = var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let port: u16 = var("MASTER_PORT")
            .context("WORLD_SIZE > 1 needs MASTER_PORT (rank 0's rendezvous port)")?
            .parse()
            .context("MASTER_PORT is not a port number")?;
        World::join(&addr, port, rank, world_size, local_rank, timeout)
    }

    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    fn join(
        addr: &str,
        port: u16,
        rank: usize,
        world_size: usize,
        local_rank: usize,
        timeout: Duration,
    ) -> Result<World> {
        let group = burn::backend::libtorch::c10d::ProcessGroup::join(
            addr, port, rank, world_size, timeout,
        )
        .map_err(|e| anyhow::anyhow!("rank {rank} of {world_size} via {addr}:{port}: {e}"))?;
        Ok(World {
            rank,
            world_size,
            local_rank,
            group: Some(group),
        })
    }

    #[cfg(not(feature = "tch"))]
    fn join(_: &str, _: u16, rank: usize, world: usize, _: usize, _: Duration) -> Result<World> {
        bail!(
            "rank {rank} of {world}: data-parallel training runs on libtorch's c10d, which this \
             build lacks (build the trainer with --features tch)"
        )
    }

    pub fn is_distributed(&self) -> bool {
        self.world_size > 1
    }

    /// Rank 0 writes what the run leaves behind (metrics, checkpoints, pictures).
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Replaces every gradient in `grads` by its mean over the ranks.
    pub fn average_gradients<M: Module>(
        &self,
        grads: &mut GradientsParams,
        module: &M,
    ) -> Result<()> {
        if !self.is_distributed() {
            return Ok(());
        }
        // The visit order is the module's field order, the same on every rank, so the buckets
        // line up without exchanging names.
        let mut taken = TakeGradients {
            grads,
            ids: Vec::new(),
            tensors: Vec::new(),
            error: None,
        };
        module.visit(&mut taken);
        if let Some(e) = taken.error {
            return Err(e);
        }
        let (ids, tensors) = (taken.ids, taken.tensors);
        let reduced = self.all_reduce_mean(tensors)?;
        let mut by_id: HashMap<ParamId, FlatGrad> = ids.into_iter().zip(reduced).collect();
        module.visit(&mut PutGradients {
            grads,
            reduced: &mut by_id,
        });
        Ok(())
    }

    /// Rank 0's parameters and buffers on every rank (DDP's start), so ranks whose initialisation
    /// differed (another seed, another file) still train one model.
    pub fn broadcast_module<M: Module>(&self, module: M) -> Result<M> {
        if !self.is_distributed() {
            return Ok(module);
        }
        let mut mapper = Broadcast {
            world: self,
            error: None,
        };
        let module = module.map(&mut mapper);
        match mapper.error {
            Some(e) => Err(e),
            None => Ok(module),
        }
    }

    /// Every rank's `x` (the same shape on each) concatenated along the first axis in rank
    /// order; `x` itself on one process. Not differentiable (keys, images).
    pub fn all_gather<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
        if !self.is_distributed() {
            return Ok(x);
        }
        self.all_gather_tch(x)
    }

    /// The mean of a scalar over the ranks (the logged loss of a data-parallel step).
    pub fn mean_scalar(&self, v: f64) -> Result<f64> {
        if !self.is_distributed() {
            return Ok(v);
        }
        self.mean_scalar_tch(v)
    }

    /// The element-wise mean of `x` over the ranks (state that takes no gradient, such as
    /// ProtoSeg's prototypes after their momentum update). Not differentiable.
    pub fn mean<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
        if !self.is_distributed() {
            return Ok(x);
        }
        self.mean_tch(x)
    }
}

/// A gradient as the collective sees it: the backend's tensor.
#[cfg(feature = "tch")]
type FlatGrad = tch::Tensor;
#[cfg(not(feature = "tch"))]
type FlatGrad = ();

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn marks burn-tch deprecated; it is our CPU backend (see backend.rs)
mod tch_side {
    use super::*;
    use burn::backend::libtorch::{LibTorch, TchTensor};

    /// The libtorch tensor under `t` (its autodiff wrapper, if any, dropped).
    pub(super) fn to_tch<const D: usize>(t: Tensor<D>) -> Result<tch::Tensor> {
        t.inner()
            .try_into_primitive::<LibTorch>()
            .map(|p| p.tensor)
            .map_err(|e| {
                anyhow::anyhow!(
                    "data-parallel training runs on the tch backend (trainer.backend: Tch): {e:?}"
                )
            })
    }

    pub(super) fn from_tch<const D: usize>(t: tch::Tensor) -> Tensor<D> {
        Tensor::from_primitive::<LibTorch>(TchTensor::new(t))
    }

    impl World {
        fn group(&self) -> &burn::backend::libtorch::c10d::ProcessGroup {
            self.group
                .as_ref()
                .expect("a distributed world has a group")
        }

        pub(super) fn all_reduce_mean(&self, t: Vec<tch::Tensor>) -> Result<Vec<tch::Tensor>> {
            let refs: Vec<&tch::Tensor> = t.iter().collect();
            self.group()
                .all_reduce(&refs, BUCKET_BYTES, true)
                .map_err(|e| self.failed(e))
        }

        /// `op` on the libtorch tensor under `x`, its result wrapped as `x` was (autodiff or not).
        fn through_tch<const D: usize>(
            &self,
            x: Tensor<D>,
            op: impl FnOnce(&tch::Tensor) -> Result<tch::Tensor, String>,
        ) -> Result<Tensor<D>> {
            let autodiff = x.is_autodiff();
            let out = from_tch::<D>(op(&to_tch(x)?).map_err(|e| self.failed(e))?);
            Ok(if autodiff {
                Tensor::from_inner(out)
            } else {
                out
            })
        }

        pub(super) fn all_gather_tch<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
            self.through_tch(x, |t| self.group().all_gather(t))
        }

        pub(super) fn broadcast_tch<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
            self.through_tch(x, |t| self.group().broadcast(t, 0))
        }

        pub(super) fn mean_tch<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
            self.through_tch(x, |t| {
                let mut r = self.group().all_reduce(&[t], BUCKET_BYTES, true)?;
                Ok(r.remove(0))
            })
        }

        pub(super) fn mean_scalar_tch(&self, v: f64) -> Result<f64> {
            let t = tch::Tensor::from_slice(&[v]);
            let r = self.all_reduce_mean(vec![t])?;
            Ok(r[0].double_value(&[0]))
        }

        /// A collective's failure, with the context a person needs: which rank saw it.
        fn failed(&self, e: String) -> anyhow::Error {
            anyhow::anyhow!(
                "rank {} of {}: {e} (another rank died or stalled?)",
                self.rank,
                self.world_size
            )
        }
    }
}

#[cfg(not(feature = "tch"))]
impl World {
    fn all_reduce_mean(&self, _: Vec<FlatGrad>) -> Result<Vec<FlatGrad>> {
        unreachable!("a world without tch is never distributed")
    }
    fn all_gather_tch<const D: usize>(&self, _: Tensor<D>) -> Result<Tensor<D>> {
        unreachable!("a world without tch is never distributed")
    }
    fn broadcast_tch<const D: usize>(&self, _: Tensor<D>) -> Result<Tensor<D>> {
        unreachable!("a world without tch is never distributed")
    }
    fn mean_scalar_tch(&self, _: f64) -> Result<f64> {
        unreachable!("a world without tch is never distributed")
    }
    fn mean_tch<const D: usize>(&self, _: Tensor<D>) -> Result<Tensor<D>> {
        unreachable!("a world without tch is never distributed")
    }
}

/// Takes each parameter's gradient out of `grads`, in visit order.
struct TakeGradients<'a> {
    grads: &'a mut GradientsParams,
    ids: Vec<ParamId>,
    tensors: Vec<FlatGrad>,
    error: Option<anyhow::Error>,
}

impl ModuleVisitor for TakeGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        let Some(g) = self.grads.remove::<D>(param.id) else {
            return;
        };
        #[cfg(feature = "tch")]
        match tch_side::to_tch(g) {
            Ok(t) => {
                self.ids.push(param.id);
                self.tensors.push(t);
            }
            Err(e) => self.error = Some(e),
        }
        #[cfg(not(feature = "tch"))]
        {
            let _ = g;
            self.error = Some(anyhow::anyhow!("no collectives without the tch backend"));
        }
    }
}

/// Puts the averaged gradients back under their parameters' ids.
struct PutGradients<'a> {
    grads: &'a mut GradientsParams,
    reduced: &'a mut HashMap<ParamId, FlatGrad>,
}

impl ModuleVisitor for PutGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        #[cfg(feature = "tch")]
        if let Some(t) = self.reduced.remove(&param.id) {
            self.grads
                .register::<D>(param.id, tch_side::from_tch::<D>(t));
        }
        #[cfg(not(feature = "tch"))]
        let _ = (&self.grads, &self.reduced, param);
    }
}

/// Replaces every float parameter and buffer by rank 0's.
struct Broadcast<'a> {
    world: &'a World,
    error: Option<anyhow::Error>,
}

impl ModuleMapper for Broadcast<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let world = self.world;
        let mut error = None;
        let param = param.map(|t| {
            let require_grad = t.is_require_grad();
            match world.broadcast_tch(t.clone()) {
                Ok(b) => {
                    if require_grad {
                        b.require_grad()
                    } else {
                        b
                    }
                }
                Err(e) => {
                    error = Some(e);
                    t
                }
            }
        });
        self.error = error;
        param
    }
}
