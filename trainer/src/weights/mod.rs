//! Backbone weights to and from PyTorch's world. Everything passes through one in-memory form,
//! a [`StateDict`] in torchvision's names (`conv1.weight`, `layer1.0.bn1.running_var`,
//! `layer2.0.downsample.0.weight`, …), and each outside layout is a renaming of it:
//! - out ([`export`]): torchvision `.pth` / `.safetensors`, mmsegmentation `.pth`
//!   (`state_dict` of `backbone.`-prefixed keys), detectron2 `.pkl` (MoCo's and SoCo's converter
//!   layout; SoCo's FPN and 4conv1fc box head too);
//! - in ([`import`]): any of those, MoCo `.pth.tar`, mmselfsup / OpenSelfSup / DenseCL `.pth`,
//!   SoCo checkpoints and detectron2 `.pkl` backbones; the layout and depth are read off the key
//!   names, and every load says how many tensors matched, were missing and went unused.

pub mod detectron2;
pub mod export;
pub mod import;
pub mod numpy;
pub mod pickle;
pub mod pickle_writer;
pub mod torch_file;

use anyhow::{bail, Result};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};

/// The values of one tensor: weights and BN statistics are f32, BN's `num_batches_tracked` i64.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Little-endian bytes, as torch storages, numpy arrays and safetensors hold them.
    pub fn le_bytes(&self) -> Vec<u8> {
        match self {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// One named tensor of a state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// Named tensors in the order PyTorch's `state_dict()` lists them.
pub type StateDict = Vec<Entry>;

/// The tensors of `module` under PyTorch's parameter names (BN γ/β → `weight`/`bias`, linear
/// weights transposed to `[out, in]`), each name prefixed by `prefix`, in field order — which
/// for our ResNet is torchvision's order. Each BN also gets the `num_batches_tracked` counter
/// torch's BN carries (0: our BN uses a fixed momentum, so the counter is never read).
pub fn module_state_dict<M: ModuleSnapshot>(module: &M, prefix: &str) -> Result<StateDict> {
    let mut out = StateDict::new();
    for t in module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        let name = format!("{prefix}{}", t.name);
        let shape = t.shape.to_vec();
        let data =
            burn::store::bridge::to_data(&t).map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
        let values = match data.convert::<f32>().try_into_vec::<f32>() {
            Ok(v) => Values::F32(v),
            Err(e) => bail!("{name}: {e:?}"),
        };
        let bn_end = name.strip_suffix(".running_var").map(str::to_string);
        out.push(Entry {
            name,
            shape,
            values,
        });
        if let Some(bn) = bn_end {
            out.push(Entry {
                name: format!("{bn}.num_batches_tracked"),
                shape: vec![],
                values: Values::I64(vec![0]),
            });
        }
    }
    Ok(out)
}

/// Our ResNet's names → torchvision's (`downsample.conv` is torchvision's `downsample.0`).
pub fn ours_to_torchvision(name: &str) -> String {
    name.replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.")
}

/// torchvision's names → our ResNet's.
pub fn torchvision_to_ours(name: &str) -> String {
    name.replace(".downsample.0.", ".downsample.conv.")
        .replace(".downsample.1.", ".downsample.bn.")
}

/// A ResNet backbone in torchvision's names.
pub fn backbone_state_dict(backbone: &crate::nn::resnet::ResNet) -> Result<StateDict> {
    let mut sd = module_state_dict(backbone, "")?;
    for e in &mut sd {
        e.name = ours_to_torchvision(&e.name);
    }
    Ok(sd)
}

/// Writes `bytes` to `path` through a temporary file beside it, so a failure leaves no
/// half-written file.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
