//! Pretrained backbones in: a `backbone.record` written by one of our runs, a `last.ckpt` of any
//! of our methods (its online module is rebuilt from the config it carries and its backbone
//! taken), or a PyTorch-world file (`crate::weights::import`: torchvision, MoCo, mmselfsup, mmseg,
//! SoCo, detectron2). Used by CP²'s Quick Tuning, SSL4DP's continued pretraining and the
//! evaluation's fine-tuning.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use config::RunConfig;

use crate::method::{Method, ONLINE_BLOB};
use crate::methods::{with_method, WithMethod};
use crate::nn::decoder::{DecoderRef, DecoderSlot};
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
    if let Some(slot) = M::decoder_slot(run, online) {
        load_decoder(slot, path, device)?;
    }
    if let Some(target) = method.target_mut() {
        *target = crate::ema::copy_of(M::target_source(online), target.clone());
    }
    Ok(())
}

/// Loads the weights at `path` into `backbone` (of `depth`): one of our `.ckpt` checkpoints or
/// `.record` backbones, or any PyTorch-world file [`crate::weights::import`] reads (torchvision,
/// MoCo, mmselfsup, mmseg, SoCo, detectron2; `.pth`, `.pth.tar`, `.pkl`, `.safetensors`).
pub fn load_backbone(
    backbone: ResNet,
    path: &Path,
    depth: Depth,
    device: &Device,
) -> Result<(ResNet, LoadReport)> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let bytes = if name.ends_with(".ckpt") {
        backbone_of_checkpoint(path, depth, device)?
    } else if name.ends_with(".record") || name.ends_with(".mpk") {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        let (backbone, report) = crate::weights::import::load_backbone_file(backbone, depth, path)?;
        tracing::info!("{}", report.line(path));
        println!("{}", report.line(path));
        return Ok((
            backbone,
            LoadReport {
                loaded: report.matched,
            },
        ));
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

/// Fills `slot` with the decoder the checkpoint at `path` pretrained, where it has one of the
/// same kind and width; otherwise says why the decoder starts fresh. Files that are not our
/// checkpoints carry no decoder.
pub fn load_decoder(slot: DecoderSlot<'_>, path: &Path, device: &Device) -> Result<()> {
    let is_checkpoint = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".ckpt"));
    let fresh = |why: String| {
        tracing::info!("decoder initialised fresh: {why}");
        println!("decoder initialised fresh: {why}");
    };
    if !is_checkpoint {
        fresh(format!("{} is not a checkpoint of ours", path.display()));
        return Ok(());
    }
    let ck = crate::checkpoint::load(path)?;
    let run = RunConfig::from_str(&ck.state.config, &path.display().to_string())?;
    struct Extract<'a> {
        run: &'a RunConfig,
        online: &'a [u8],
        device: &'a Device,
    }
    impl WithMethod for Extract<'_> {
        type Output = Result<Option<(&'static str, Vec<u8>)>>;
        fn call<M: Method>(self) -> Self::Output {
            let (online, _) = M::new(self.run, self.device)?;
            let online = load_module_lenient(online, self.online)?;
            M::decoder(&online)
                .map(|d| {
                    let bytes = match &d {
                        DecoderRef::MocoFcn(convs) => record_bytes(*convs),
                        DecoderRef::Psp(psp) => record_bytes(*psp),
                    };
                    Ok((d.kind(), bytes?))
                })
                .transpose()
        }
    }
    let theirs = with_method(
        &run.method,
        Extract {
            run: &run,
            online: ck.blob(ONLINE_BLOB)?,
            device,
        },
    )?
    .with_context(|| format!("{}: reading the decoder", path.display()))?;
    let Some((kind, bytes)) = theirs else {
        fresh(format!(
            "{} ({}) pretrained no decoder",
            path.display(),
            run.method.name()
        ));
        return Ok(());
    };
    if kind != slot.kind() {
        fresh(format!(
            "{} pretrained a {kind} decoder, this head is {}",
            path.display(),
            slot.kind()
        ));
        return Ok(());
    }
    let loaded = match slot {
        DecoderSlot::MocoFcn(convs) => load_module_lenient(convs.clone(), &bytes).map(|m| {
            let n = param_tensors(&m);
            *convs = m;
            n
        }),
        DecoderSlot::Psp(psp) => load_module_lenient(psp.clone(), &bytes).map(|m| {
            let n = param_tensors(&m);
            *psp = m;
            n
        }),
    };
    match loaded {
        Ok(n) => {
            let line = format!(
                "decoder: {n} {kind} tensors loaded from {} ({}); the classifier starts fresh",
                path.display(),
                run.method.name()
            );
            tracing::info!("{line}");
            println!("{line}");
        }
        Err(e) => fresh(format!(
            "{}'s {kind} decoder does not fit this head ({e:#})",
            path.display()
        )),
    }
    Ok(())
}

/// The state dict a `format` export of one of our checkpoints holds: its backbone and, for
/// detectron2, the detection modules the method pretrained with it (SoCo's FPN and box head).
/// Returns the checkpoint's run config beside it.
pub fn checkpoint_export(
    path: &Path,
    format: crate::weights::export::Format,
    device: &Device,
) -> Result<(crate::weights::StateDict, RunConfig)> {
    let ck = crate::checkpoint::load(path)?;
    let run = RunConfig::from_str(&ck.state.config, &path.display().to_string())?;
    struct Export<'a> {
        run: &'a RunConfig,
        online: &'a [u8],
        format: crate::weights::export::Format,
        device: &'a Device,
    }
    impl WithMethod for Export<'_> {
        type Output = Result<crate::weights::StateDict>;
        fn call<M: Method>(self) -> Self::Output {
            let (online, _) = M::new(self.run, self.device)?;
            let online = load_module_lenient(online, self.online)?;
            let detector = match self.format {
                crate::weights::export::Format::Detectron2 => M::detector_parts(&online),
                _ => None,
            };
            crate::weights::export::state_dict(M::backbone(&online), detector, self.format)
        }
    }
    let sd = with_method(
        &run.method,
        Export {
            run: &run,
            online: ck.blob(ONLINE_BLOB)?,
            format,
            device,
        },
    )?
    .with_context(|| format!("{}: exporting", path.display()))?;
    Ok((sd, run))
}
