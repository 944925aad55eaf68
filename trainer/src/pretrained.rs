//! Pretrained backbones in: a `backbone.record` written by one of our runs, a `last.ckpt` of any
//! of our methods (its online module is rebuilt from the config it carries and its backbone
//! taken), or a torchvision-layout `.safetensors` state dict (MoCo's released weights converted;
//! `module.encoder_q.` / `backbone.` prefixes are stripped). Used by CP²'s Quick Tuning and by
//! anything else that starts from a trained backbone.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use config::RunConfig;

use crate::method::{Method, ONLINE_BLOB};
use crate::methods::{with_method, WithMethod};
use crate::nn::resnet::{Depth, ResNet};
use crate::record::{load_module_lenient, param_tensors, record_bytes};

/// What a backbone load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Float tensors of the backbone taken from the file (weights and BN statistics).
    pub loaded: usize,
}

impl LoadReport {
    /// Logs and prints what was loaded into `model` and what starts fresh (`fresh` names them).
    pub fn print<M: Module>(&self, what: &str, path: &Path, model: &M, fresh: &[&str]) {
        let total = param_tensors(model);
        tracing::info!(
            "{what}: loaded {} of {total} tensors (the whole backbone) from {}; initialised fresh: {}",
            self.loaded,
            path.display(),
            fresh.join(", ")
        );
        println!(
            "{what}: {} backbone tensors loaded (weights and BN statistics) from {}, {} fresh ({})",
            self.loaded,
            path.display(),
            total - self.loaded,
            fresh.join(", ")
        );
    }
}

/// Starts `online`'s backbone from the file `M::init_from` names, if any, and the momentum twin
/// from the loaded online module (so the key encoder starts where the query does).
pub fn init_online<M: Method>(
    run: &RunConfig,
    online: &mut M::Online,
    method: &mut M,
    device: &Device,
) -> Result<()> {
    let Some((what, path, fresh)) = M::init_from(run) else {
        return Ok(());
    };
    let depth = Depth::from(run.trainer.arch);
    let (loaded, report) = load_backbone(M::backbone(online).clone(), path, depth, device)?;
    *M::backbone_mut(online) = loaded;
    report.print(what, path, online, fresh);
    if let Some(target) = method.target_mut() {
        *target = crate::ema::copy_of(M::target_source(online), target.clone());
    }
    Ok(())
}

/// Loads the weights at `path` into `backbone` (of `depth`).
pub fn load_backbone(
    backbone: ResNet,
    path: &Path,
    depth: Depth,
    device: &Device,
) -> Result<(ResNet, LoadReport)> {
    let bytes = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => {
            let (backbone, loaded) = crate::nn::resnet::load_torchvision(backbone, path)?;
            return Ok((backbone, LoadReport { loaded }));
        }
        Some("ckpt") => backbone_of_checkpoint(path, depth, device)?,
        _ => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    };
    let backbone = load_module_lenient(backbone, &bytes)
        .with_context(|| format!("{}: not a {depth:?} backbone record", path.display()))?;
    let loaded = param_tensors(&backbone);
    Ok((backbone, LoadReport { loaded }))
}

/// The backbone record inside one of our checkpoints, of any method.
fn backbone_of_checkpoint(path: &Path, depth: Depth, device: &Device) -> Result<Vec<u8>> {
    let ck = crate::checkpoint::load(path)?;
    // The checkpoint carries its run's config: rebuild that run's online module to read it.
    let run = RunConfig::from_str(&ck.state.config, &path.display().to_string())?;
    let theirs = Depth::from(run.trainer.arch);
    if theirs != depth {
        bail!(
            "{}: the checkpoint's backbone is {theirs:?}, this run's is {depth:?}",
            path.display()
        );
    }
    struct Extract<'a> {
        run: &'a RunConfig,
        online: &'a [u8],
        device: &'a Device,
    }
    impl WithMethod for Extract<'_> {
        type Output = Result<Vec<u8>>;
        fn call<M: Method>(self) -> Result<Vec<u8>> {
            let (online, _) = M::new(self.run, self.device)?;
            let online = load_module_lenient(online, self.online)?;
            record_bytes(M::backbone(&online))
        }
    }
    with_method(
        &run.method,
        Extract {
            run: &run,
            online: ck.blob(ONLINE_BLOB)?,
            device,
        },
    )?
    .with_context(|| format!("{}: reading the backbone", path.display()))
}
