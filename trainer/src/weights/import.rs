//! Reading a backbone from a PyTorch-world file: torchvision `.pth`, MoCo `.pth.tar`
//! (`state_dict.module.encoder_q.*`), mmselfsup / mmseg (`state_dict.backbone.*`), OpenSelfSup
//! DenseCL (`state_dict.encoder_q.0.*`), SoCo (`model.module.encoder.*`), detectron2 `.pkl`
//! (`model.stem.*`, `model.res2.*`, or `backbone.bottom_up.*` in a trained detectron2 model),
//! `.safetensors` of any of these. The backbone is found by its stem conv (`…conv1.weight` of
//! shape [64, 3, 7, 7]); a momentum twin (`encoder_k`, `target`, `teacher`, EMA) is never taken.

use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use burn::store::pytorch_reader::{DType, PytorchReader};
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::TensorData;

use super::{detectron2, torchvision_to_ours, Entry, StateDict, Values};
use crate::nn::resnet::{Depth, ResNet};

/// Which naming the backbone in a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// torchvision's (also MoCo's, mmseg's, mmselfsup's, SoCo's and ours, under a prefix).
    Torchvision,
    /// detectron2's `stem` / `res2..5` / `shortcut` / `convK.norm`.
    Detectron2,
}

/// Where the backbone sits in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub layout: Layout,
    /// What precedes the backbone's own names (`state_dict.module.encoder_q.`).
    pub prefix: String,
    /// ResNet depth read off the blocks present (18, 34, 50, 101, 152).
    pub depth: usize,
}

/// What an import did, for the one line it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub found: Found,
    /// Backbone tensors taken from the file (weights and BN statistics).
    pub matched: usize,
    /// Backbone tensors the file lacked (an import with any fails).
    pub missing: usize,
    /// Tensors of the file not taken: heads, the momentum twin, optimiser state, BN counters.
    pub unexpected: usize,
}

impl ImportReport {
    pub fn line(&self, path: &Path) -> String {
        format!(
            "{}: {:?}-layout ResNet-{} under {:?}: {} tensors matched, {} missing, {} unexpected (not backbone: heads, momentum encoder, optimiser state, BN counters)",
            path.display(),
            self.found.layout,
            self.found.depth,
            self.found.prefix,
            self.matched,
            self.missing,
            self.unexpected
        )
    }
}

/// Every tensor of a weights file, named by its dotted path through the file's dicts.
pub fn read_file(path: &Path) -> Result<StateDict> {
    let what = path.display().to_string();
    ensure!(path.exists(), "{what}: no such file");
    if path.extension().and_then(|e| e.to_str()) == Some("safetensors") {
        return read_safetensors(path);
    }
    let head = {
        use std::io::Read;
        let mut b = [0u8; 4];
        let mut f = std::fs::File::open(path).with_context(|| format!("opening {what}"))?;
        let n = f.read(&mut b)?;
        b[..n].to_vec()
    };
    // A protocol-2+ pickle that is not torch's zip: detectron2's numpy pickles (torch's legacy
    // pickles hold no numpy array, so they fall through to the torch reader).
    if head.first() == Some(&0x80) {
        let bytes = std::fs::read(path).with_context(|| format!("reading {what}"))?;
        if let Some(sd) = detectron2::read_arrays(&bytes, &what)? {
            return Ok(sd);
        }
    }
    let reader = PytorchReader::new(path).map_err(|e| {
        anyhow!("{what}: not a PyTorch, numpy-pickle or safetensors weights file ({e})")
    })?;
    let mut tensors: Vec<_> = reader.into_tensors().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
        .into_iter()
        .filter_map(|(name, t)| {
            let values = match t.dtype() {
                DType::F32 | DType::F64 | DType::F16 | DType::BF16 => {
                    let bytes = match t.read() {
                        Ok(b) => b,
                        Err(e) => return Some(Err(anyhow!("{what}: reading {name}: {e}"))),
                    };
                    Values::F32(floats(&bytes, t.dtype()))
                }
                DType::I64 => match t.read() {
                    Ok(b) => Values::I64(
                        b.chunks_exact(8)
                            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                            .collect(),
                    ),
                    Err(e) => return Some(Err(anyhow!("{what}: reading {name}: {e}"))),
                },
                // Masks, indices and the like are never backbone weights.
                _ => return None,
            };
            Some(Ok(Entry {
                name,
                shape: t.shape().to_vec(),
                values,
            }))
        })
        .collect()
}

fn floats(bytes: &[u8], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    }
}

fn read_safetensors(path: &Path) -> Result<StateDict> {
    use safetensors::Dtype;
    let what = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("reading {what}"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("{what}: not a safetensors file ({e})"))?;
    let mut names: Vec<_> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut out = StateDict::new();
    for name in names {
        let t = st.tensor(&name)?;
        let values = match t.dtype() {
            Dtype::F32 => Values::F32(floats(t.data(), DType::F32)),
            Dtype::F64 => Values::F32(floats(t.data(), DType::F64)),
            Dtype::F16 => Values::F32(floats(t.data(), DType::F16)),
            Dtype::BF16 => Values::F32(floats(t.data(), DType::BF16)),
            Dtype::I64 => Values::I64(
                t.data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            _ => continue,
        };
        out.push(Entry {
            name,
            shape: t.shape().to_vec(),
            values,
        });
    }
    Ok(out)
}

/// Prefixes of a momentum twin, never the backbone to take.
const TWIN_MARKERS: [&str; 6] = ["encoder_k", "target", "teacher", "momentum", "ema", "key_"];

/// Finds the backbone in `sd` by its 7×7 stem conv, and its depth by the blocks present.
pub fn find_backbone(sd: &StateDict, what: &str) -> Result<Found> {
    let mut candidates: Vec<(Layout, String)> = Vec::new();
    for e in sd {
        if e.shape != [64, 3, 7, 7] {
            continue;
        }
        let (layout, prefix) = if let Some(p) = e.name.strip_suffix("stem.conv1.weight") {
            (Layout::Detectron2, p)
        } else if let Some(p) = e.name.strip_suffix("conv1.weight") {
            (Layout::Torchvision, p)
        } else {
            continue;
        };
        if prefix.is_empty() || prefix.ends_with('.') {
            candidates.push((layout, prefix.to_string()));
        }
    }
    let all = candidates.clone();
    candidates.retain(|(_, p)| !TWIN_MARKERS.iter().any(|m| p.to_lowercase().contains(m)));
    let (layout, prefix) = match candidates.as_slice() {
        [one] => one.clone(),
        [] if all.is_empty() => {
            let first: Vec<&str> = sd.iter().take(4).map(|e| e.name.as_str()).collect();
            bail!(
                "{what}: unknown layout: no ResNet stem (a [64, 3, 7, 7] `conv1.weight` or detectron2 `stem.conv1.weight`) among its {} tensors (first: {})",
                sd.len(),
                first.join(", ")
            )
        }
        [] => bail!(
            "{what}: the only ResNet in the file is a momentum encoder (under {:?})",
            all[0].1
        ),
        many => bail!(
            "{what}: several ResNets in the file (under {}); cannot tell which is the backbone",
            many.iter()
                .map(|(_, p)| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    // Depth from the blocks of the third stage and whether blocks are bottlenecks.
    let (stage3, first_block) = match layout {
        Layout::Torchvision => (
            format!("{prefix}layer3."),
            format!("{prefix}layer1.0.conv3.weight"),
        ),
        Layout::Detectron2 => (
            format!("{prefix}res4."),
            format!("{prefix}res2.0.conv3.weight"),
        ),
    };
    let blocks = sd
        .iter()
        .filter_map(|e| e.name.strip_prefix(&stage3))
        .filter_map(|r| r.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    let bottleneck = sd.iter().any(|e| e.name == first_block);
    let depth = match (blocks, bottleneck) {
        (2, false) => 18,
        (6, false) => 34,
        (6, true) => 50,
        (23, true) => 101,
        (36, true) => 152,
        _ => bail!(
            "{what}: a ResNet under {prefix:?} with {blocks} blocks in stage 3 ({}bottleneck): not a depth this reader knows",
            if bottleneck { "" } else { "no " }
        ),
    };
    Ok(Found {
        layout,
        prefix,
        depth,
    })
}

/// The backbone's entries of `sd`, in torchvision's names (prefix removed, detectron2 renamed).
pub fn backbone_entries(sd: &StateDict, found: &Found) -> StateDict {
    sd.iter()
        .filter_map(|e| {
            let own = e.name.strip_prefix(&found.prefix)?;
            let name = match found.layout {
                Layout::Torchvision => {
                    let stage = own.starts_with("layer")
                        || own.starts_with("conv1.")
                        || own.starts_with("bn1.");
                    stage.then(|| own.to_string())?
                }
                Layout::Detectron2 => detectron2::to_torchvision(own)?,
            };
            Some(Entry { name, ..e.clone() })
        })
        .collect()
}

pub fn depth_number(d: Depth) -> usize {
    match d {
        Depth::R18 => 18,
        Depth::R50 => 50,
    }
}

/// Loads the backbone found in the weights file at `path` into `backbone` (of `depth`): every
/// backbone tensor must be in the file with its shape, or the load fails saying which.
pub fn load_backbone_file(
    backbone: ResNet,
    depth: Depth,
    path: &Path,
) -> Result<(ResNet, ImportReport)> {
    let what = path.display().to_string();
    let sd = read_file(path)?;
    let found = find_backbone(&sd, &what)?;
    if found.depth != depth_number(depth) {
        bail!(
            "{what}: holds a ResNet-{} backbone (under {:?}); this run's is ResNet-{}",
            found.depth,
            found.prefix,
            depth_number(depth)
        );
    }
    let entries = backbone_entries(&sd, &found);
    load_entries(backbone, &entries, sd.len(), found, &what)
}

/// Applies torchvision-named `entries` to `backbone`; `total` is the file's tensor count.
pub fn load_entries(
    mut backbone: ResNet,
    entries: &StateDict,
    total: usize,
    found: Found,
    what: &str,
) -> Result<(ResNet, ImportReport)> {
    let tensors = entries
        .iter()
        .filter(|e| !e.name.ends_with("num_batches_tracked"))
        .map(|e| {
            let data = match &e.values {
                Values::F32(v) => TensorData::new(v.clone(), e.shape.clone()),
                Values::I64(v) => TensorData::new(v.clone(), e.shape.clone()),
            };
            burn::store::bridge::from_data(data, torchvision_to_ours(&e.name), None)
        })
        .collect();
    let result = backbone.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if let Some(err) = result.errors.first() {
        bail!("{what}: {err}");
    }
    if !result.missing.is_empty() {
        let names: Vec<&str> = result
            .missing
            .iter()
            .take(4)
            .map(|m| m.0.as_str())
            .collect();
        bail!(
            "{what}: {} backbone tensors not in the file (e.g. {})",
            result.missing.len(),
            names.join(", ")
        );
    }
    let matched = result.applied.len();
    Ok((
        backbone,
        ImportReport {
            found,
            matched,
            missing: 0,
            unexpected: total - matched,
        },
    ))
}
