//! The SSL4DP draft's methods (METHODS.md §9): patch-level rotation, encoder-decoder MoCo,
//! patch-level MoCo and patch-level encoder-decoder MoCo.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{MocoV2Config, ViewAugment};

/// A decoder pretrained with the backbone (its output feeds the method's head; fine-tuning with
/// the same head kind starts from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecoderConfig {
    /// The draft's MoCoFCN: two 3×3 conv-BN-ReLU of `channels` at dilation 6.
    MocoFcn { channels: usize },
    /// PSPNet's pyramid pooling (mmseg's `PSPHead`): average pooling to 1, 2, 3 and 6 cells, a
    /// 1×1 conv-BN-ReLU of `channels` each, upsampled and concatenated with the input, then a 3×3
    /// conv-BN-ReLU of `channels`.
    Psp { channels: usize },
}

impl DecoderConfig {
    pub fn channels(&self) -> usize {
        match *self {
            DecoderConfig::MocoFcn { channels } | DecoderConfig::Psp { channels } => channels,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchRotationConfig {
    pub view: ViewAugment,
    /// The image is cut into grid × grid patches, each rotated by k·90°.
    pub grid: usize,
    /// Backbone output stride (8 or 16, by dilating layer4, and layer3 for 8) (§9).
    pub output_stride: usize,
    /// Width of the MoCoFCN decoder's two 3×3 convs (dilation 6) before the 4-way classifier.
    pub decoder_channels: usize,
    /// Continued pretraining (the draft's "200 + 20"): the backbone starts from this checkpoint
    /// of ours (any method), backbone record or PyTorch-world weights file (MoCo's `.pth.tar`,
    /// torchvision, mmselfsup, mmseg, SoCo, detectron2).
    pub init_from: Option<PathBuf>,
}

impl Default for PatchRotationConfig {
    fn default() -> Self {
        PatchRotationConfig {
            view: ViewAugment::default(),
            grid: 4,
            output_stride: 8,
            decoder_channels: 512,
            init_from: None,
        }
    }
}

/// Encoder-decoder MoCo: MoCo v2 whose encoder is backbone + decoder; the decoder output is
/// average-pooled, projected and contrasted with the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdMocoConfig {
    /// Views, projection MLP (decoder channels → `proj_hidden` → `proj_dim`), queue, T, m.
    pub moco: MocoV2Config,
    pub decoder: DecoderConfig,
    /// Backbone output stride: 8 or 16 (dilation), as the segmentation network it pretrains.
    pub output_stride: usize,
    /// The backbone's learning rate relative to the rest (the draft: 1 with MoCoFCN, 1/100 with
    /// PSPNet).
    pub encoder_lr_scale: f64,
    /// Continued pretraining ("200 + 20"): the backbone starts from this file (as
    /// `PatchRotationConfig::init_from`); decoder and head start fresh.
    pub init_from: Option<PathBuf>,
}

impl Default for EdMocoConfig {
    fn default() -> Self {
        EdMocoConfig {
            moco: MocoV2Config::default(),
            decoder: DecoderConfig::MocoFcn { channels: 512 },
            output_stride: 8,
            encoder_lr_scale: 1.0,
            init_from: None,
        }
    }
}

/// Patch-level MoCo: every cell of the stride-`cell_stride` feature map is embedded (1×1
/// projection head, L2-normalised); the matched cell of the key view is its positive, a queue of
/// cell embeddings its negatives. With a `decoder`: patch-level encoder-decoder MoCo (PLEDMoCo),
/// the cells taken from the decoder's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchMocoConfig {
    /// Views, head widths (`proj_hidden`, `proj_dim`, as 1×1 convs), queue, T, m.
    pub moco: MocoV2Config,
    /// Cell size of the correspondence grid = the backbone's output stride (8 or 16).
    pub cell_stride: usize,
    /// PLEDMoCo's decoder on the backbone (None: PLMoCo on the backbone's cells).
    pub decoder: Option<DecoderConfig>,
    /// The backbone's learning rate relative to the rest (the draft's PLEDMoCo: 1/100).
    pub encoder_lr_scale: f64,
    /// Continued pretraining ("200 + 2"): the backbone starts from this file.
    pub init_from: Option<PathBuf>,
}

impl Default for PatchMocoConfig {
    fn default() -> Self {
        PatchMocoConfig {
            moco: MocoV2Config::default(),
            cell_stride: 16,
            decoder: None,
            encoder_lr_scale: 1.0,
            init_from: None,
        }
    }
}
