//! Writing a backbone (and SoCo's FPN and box head) for the frameworks users fine-tune in.

use std::path::Path;

use anyhow::{bail, Result};

use super::import::{self, ImportReport};
use super::{backbone_state_dict, detectron2, module_state_dict, torch_file, Entry, StateDict};
use crate::nn::fpn::Fpn;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::nn::roi_head::ConvFcHead;

/// Who will read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A plain ResNet state dict: `torchvision.models.resnet50().load_state_dict(...)`
    /// (`.pth` or `.safetensors`).
    Torchvision,
    /// detectron2's `.pkl` (MoCo's / SoCo's converter layout, `matching_heuristics`).
    Detectron2,
    /// mmsegmentation / mmengine: `{"meta", "state_dict": {"backbone.*"}}` in a `.pth`.
    Mmseg,
}

/// SoCo's detection modules, exported beside the backbone for detectron2.
pub struct DetectorParts<'a> {
    pub fpn: &'a Fpn,
    pub box_head: &'a ConvFcHead,
}

/// The state dict `format` wants, in its names.
pub fn state_dict(
    backbone: &ResNet,
    detector: Option<DetectorParts<'_>>,
    format: Format,
) -> Result<StateDict> {
    let tv = backbone_state_dict(backbone)?;
    Ok(match format {
        Format::Torchvision => tv,
        Format::Mmseg => tv
            .into_iter()
            .map(|e| Entry {
                name: format!("backbone.{}", e.name),
                ..e
            })
            .collect(),
        Format::Detectron2 => {
            let mut out: StateDict = tv
                .into_iter()
                .map(|e| Entry {
                    name: detectron2::from_torchvision(&e.name),
                    ..e
                })
                .collect();
            if let Some(parts) = detector {
                for e in module_state_dict(parts.fpn, "")? {
                    let name = detectron2::fpn_name(&e.name).ok_or_else(|| {
                        anyhow::anyhow!("FPN tensor {} has no detectron2 name", e.name)
                    })?;
                    out.push(Entry { name, ..e });
                }
                for e in module_state_dict(parts.box_head, "")? {
                    let name = detectron2::box_head_name(&e.name).ok_or_else(|| {
                        anyhow::anyhow!("box head tensor {} has no detectron2 name", e.name)
                    })?;
                    out.push(Entry { name, ..e });
                }
            }
            out
        }
    })
}

/// What [`write`] wrote.
#[derive(Debug)]
pub struct Written {
    pub tensors: usize,
    pub bytes: usize,
}

/// Writes `sd` (from [`state_dict`] for `format`) to `out`; the extension picks the container
/// where the format has two. `meta` goes into mmseg's `meta`; `author` into detectron2's.
pub fn write(
    sd: &StateDict,
    format: Format,
    out: &Path,
    meta: &[(&str, String)],
) -> Result<Written> {
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("");
    let bytes = match (format, ext) {
        (Format::Torchvision, "pth" | "pt") => {
            torch_file::pth_bytes(torch_file::Root::StateDict(sd))?
        }
        (Format::Torchvision, "safetensors") => safetensors_bytes(sd)?,
        (Format::Mmseg, "pth") => torch_file::pth_bytes(torch_file::Root::WithMeta {
            meta,
            state_dict: sd,
        })?,
        (Format::Detectron2, "pkl") => detectron2::pkl_bytes(sd, "densepre"),
        (f, _) => bail!(
            "{}: a {f:?} export is written as {}; give the output that extension",
            out.display(),
            match f {
                Format::Torchvision => ".pth or .safetensors",
                Format::Mmseg => ".pth",
                Format::Detectron2 => ".pkl",
            }
        ),
    };
    super::write_atomically(out, &bytes)?;
    Ok(Written {
        tensors: sd.len(),
        bytes: bytes.len(),
    })
}

fn safetensors_bytes(sd: &StateDict) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let data: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = sd
        .iter()
        .map(|e| {
            let dt = match e.values {
                super::Values::F32(_) => Dtype::F32,
                super::Values::I64(_) => Dtype::I64,
            };
            (e.name.clone(), e.values.le_bytes(), dt, e.shape.clone())
        })
        .collect();
    let views: Vec<(String, TensorView)> = data
        .iter()
        .map(|(n, b, dt, s)| Ok((n.clone(), TensorView::new(*dt, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// The backbone of a PyTorch-world weights file in `format`'s names. It is loaded into our ResNet
/// on the way, so a file lacking any backbone tensor is refused rather than half exported.
pub fn from_weights_file(
    path: &Path,
    format: Format,
    device: &burn::tensor::Device,
) -> Result<(StateDict, ImportReport)> {
    let what = path.display().to_string();
    let sd = import::read_file(path)?;
    let found = import::find_backbone(&sd, &what)?;
    let depth = match found.depth {
        18 => Depth::R18,
        50 => Depth::R50,
        d => bail!("{what}: a ResNet-{d}; this project builds ResNet-18 and ResNet-50"),
    };
    let entries = import::backbone_entries(&sd, &found);
    let (backbone, report) = import::load_entries(
        ResNetConfig::new(depth).init(device),
        &entries,
        sd.len(),
        found,
        &what,
    )?;
    Ok((state_dict(&backbone, None, format)?, report))
}
