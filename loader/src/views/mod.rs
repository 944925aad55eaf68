//! Per-method view builders: each declares the batch schema it fills (before the first sample, so
//! the ring is allocated once) and writes one sample's tensors in place into a ring slot.

pub mod cp2;
pub mod patch_moco;
pub mod patch_rotation;
pub mod segmentation;
pub mod soco;
mod two_crop;

use anyhow::Result;
use config::{MethodConfig, RunConfig};
use proto_shm::{SampleTensors, SampleWriter, Schema};

pub use two_crop::TwoCrop;

use crate::worker::{ImageIo, SampleInfo};

pub trait Views: Send + Sync {
    /// The ring schema for batches of `batch_size` samples.
    fn schema(&self, batch_size: usize) -> Schema;
    /// Writes sample `info` into `out` — one sample's bytes of each schema tensor, taken by
    /// name (`proto_shm::schemas::names`) — loading images through `io`.
    fn fill(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()>;
    /// Writes sample `info` in place into its ring slot.
    fn build(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleWriter) -> Result<()> {
        self.fill(info, io, &mut out.named())
    }
}

/// The view builder of a run's method.
pub fn for_run(run: &RunConfig) -> Result<Box<dyn Views>> {
    Ok(match &run.method {
        MethodConfig::MocoV2(m) => Box::new(TwoCrop::new("mocov2", m.view.clone())),
        MethodConfig::DenseCl(d) => Box::new(TwoCrop::new("densecl", d.moco.view.clone())),
        MethodConfig::Soco(s) => Box::new(soco::Soco::open(
            s.clone(),
            run.dataset.proposals.as_deref(),
        )?),
        MethodConfig::Cp2(c) => Box::new(cp2::Cp2::new(c.clone())),
        MethodConfig::PatchRotation(p) => Box::new(patch_rotation::PatchRotation::new(p.clone())),
        MethodConfig::EdMoco(e) => Box::new(TwoCrop::new("ed-moco", e.moco.view.clone())),
        MethodConfig::PatchMoco(p) => Box::new(patch_moco::PatchMoco::new(p.clone())),
        MethodConfig::Segmentation(s) => {
            Box::new(segmentation::Segmentation::open(run, s.clone())?)
        }
    })
}
