//! Per-method parameters. Defaults are the official code's values (METHODS.md section in brackets).

use serde::{Deserialize, Serialize};

use crate::{EdMocoConfig, PatchMocoConfig, PatchRotationConfig};

/// Which pretraining objective, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MethodConfig {
    /// MoCo v2 (§1).
    MocoV2(MocoV2Config),
    /// DenseCL (§2).
    DenseCl(DenseClConfig),
    /// SoCo and SoCo* (§3).
    Soco(SocoConfig),
    /// CP², from scratch or as Quick Tuning (§4).
    Cp2(Cp2Config),
    /// SSL4DP patch-level rotation prediction (§9).
    PatchRotation(PatchRotationConfig),
    /// SSL4DP encoder-decoder MoCo (§9).
    EdMoco(EdMocoConfig),
    /// SSL4DP patch-level MoCo, and with a decoder patch-level encoder-decoder MoCo (§9).
    PatchMoco(PatchMocoConfig),
    /// Downstream semantic segmentation: fine-tuning or validation (§2.5, §4.5; `crate::eval`).
    Segmentation(crate::SegmentationConfig),
}

impl MethodConfig {
    /// Short name used in the ring schema, file names and logs.
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::MocoV2(_) => "mocov2",
            MethodConfig::DenseCl(_) => "densecl",
            MethodConfig::Soco(c) if c.star => "soco-star",
            MethodConfig::Soco(_) => "soco",
            MethodConfig::Cp2(_) => "cp2",
            MethodConfig::PatchRotation(_) => "patch-rotation",
            MethodConfig::EdMoco(_) => "ed-moco",
            MethodConfig::PatchMoco(p) if p.decoder.is_some() => "patch-ed-moco",
            MethodConfig::PatchMoco(_) => "patch-moco",
            MethodConfig::Segmentation(s) => match s.phase {
                crate::SegPhase::Finetune => "segmentation",
                crate::SegPhase::Validate { .. } => "segmentation-val",
            },
        }
    }
}

/// Torchvision ColorJitter strengths: brightness, contrast, saturation in [1-x, 1+x]; hue in [-h, h].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
    /// Probability that the jitter is applied at all.
    pub p: f32,
}

/// One view's augmentation chain, torchvision semantics (§0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewAugment {
    /// Output side in pixels (square).
    pub size: usize,
    /// RandomResizedCrop area fraction range.
    pub scale: (f32, f32),
    /// RandomResizedCrop aspect-ratio range.
    pub ratio: (f32, f32),
    pub color_jitter: ColorJitter,
    pub grayscale_p: f32,
    pub blur_p: f32,
    /// PIL GaussianBlur radius range.
    pub blur_sigma: (f32, f32),
    pub solarize_p: f32,
    /// PIL ImageOps.solarize threshold.
    pub solarize_threshold: u8,
    pub flip_p: f32,
}

impl Default for ViewAugment {
    /// MoCo v2 `--aug-plus` (§1.1), also DenseCL's and CP²'s foreground views.
    fn default() -> Self {
        ViewAugment {
            size: 224,
            scale: (0.2, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            color_jitter: ColorJitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.4,
                hue: 0.1,
                p: 0.8,
            },
            grayscale_p: 0.2,
            blur_p: 0.5,
            blur_sigma: (0.1, 2.0),
            solarize_p: 0.0,
            solarize_threshold: 128,
            flip_p: 0.5,
        }
    }
}

/// How keys are batch-normalised on one device in place of MoCo's Shuffle-BN (§1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyBatchNorm {
    /// Split the key batch into this many shards, shuffled across the query order, each normalised
    /// with its own statistics: the single-GPU emulation the MoCo maintainers advise.
    ShuffledSubBatches(usize),
    /// Plain batch statistics (leaks information through BN; for ablations only).
    Plain,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MocoV2Config {
    pub view: ViewAugment,
    /// Projection MLP hidden width (§1.2).
    pub proj_hidden: usize,
    pub proj_dim: usize,
    /// Queue length; a multiple of the global batch in the official code, wrap-around safe here.
    pub queue_size: usize,
    pub temperature: f32,
    /// Key-encoder EMA momentum, constant.
    pub momentum: f32,
    pub key_bn: KeyBatchNorm,
}

impl Default for MocoV2Config {
    fn default() -> Self {
        MocoV2Config {
            view: ViewAugment::default(),
            proj_hidden: 2048,
            proj_dim: 128,
            queue_size: 65_536,
            temperature: 0.2,
            momentum: 0.999,
            key_bn: KeyBatchNorm::ShuffledSubBatches(8),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenseClConfig {
    pub moco: MocoV2Config,
    /// Weight of the dense loss: total = (1 − λ)·global + λ·dense (§2.3).
    pub dense_weight: f32,
    /// Iterations with λ = 0 at the start (the optional warm-up hook; 0 in released configs).
    pub dense_warmup_iters: usize,
}

impl Default for DenseClConfig {
    fn default() -> Self {
        DenseClConfig {
            moco: MocoV2Config::default(),
            dense_weight: 0.5,
            dense_warmup_iters: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocoConfig {
    /// V1/V2 side (§3.3).
    pub image_size: usize,
    /// Lower end of V2/V3 RandomResizedCrop scale (0.5 FPN scripts, 0.6 C4).
    pub crop_scale_min: f32,
    /// V3 side: image_size/2; SoCo* uses 192.
    pub v3_size: usize,
    /// SoCo*: V3 at 192 and an extra V4 = V2 resized to `v4_size`.
    pub star: bool,
    pub v4_size: usize,
    /// Proposals per view (select_k = padding_k = 4).
    pub boxes_per_view: usize,
    pub max_tries: usize,
    pub box_jitter_p: f32,
    pub box_jitter_ratio: f32,
    /// Box side thresholds (view pixels) of P2, P3, P4; larger goes to P5.
    pub fpn_level_limits: (f32, f32, f32),
    /// V1 colour pipeline ("post_1"): blur always, no solarize.
    pub view1_color: ViewAugment,
    /// V2/V3/V4 colour pipeline ("post_2"): blur 0.1, solarize 0.2.
    pub view2_color: ViewAugment,
    pub cutout_p: f32,
    pub cutout_area: (f32, f32),
    /// FPN / RoI head widths (§3.4).
    pub fpn_channels: usize,
    pub head_fc: usize,
    pub proj_hidden: usize,
    pub proj_dim: usize,
    /// Base of the cosine target-momentum schedule 1 − (1 − τ)(cos(πk/K)+1)/2.
    pub momentum_base: f32,
    /// Pool every box on all four FPN levels (SoCo; the head's BN then sees all of them), or only
    /// on its assigned level — the same loss terms for a quarter of the head's compute, with BN
    /// statistics over the assigned RoIs only. A deviation for CPU-scale runs, not the default.
    pub roi_all_levels: bool,
}

impl Default for SocoConfig {
    fn default() -> Self {
        let jitter = ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.2,
            hue: 0.1,
            p: 0.8,
        };
        let base = ViewAugment {
            color_jitter: jitter,
            ..ViewAugment::default()
        };
        SocoConfig {
            image_size: 224,
            crop_scale_min: 0.5,
            v3_size: 112,
            star: false,
            v4_size: 112,
            boxes_per_view: 4,
            max_tries: 5,
            box_jitter_p: 0.5,
            box_jitter_ratio: 0.1,
            fpn_level_limits: (48.0, 96.0, 192.0),
            view1_color: ViewAugment {
                blur_p: 1.0,
                solarize_p: 0.0,
                ..base.clone()
            },
            view2_color: ViewAugment {
                blur_p: 0.1,
                solarize_p: 0.2,
                ..base
            },
            cutout_p: 0.0,
            cutout_area: (0.1, 0.3),
            fpn_channels: 256,
            head_fc: 1024,
            proj_hidden: 4096,
            proj_dim: 256,
            momentum_base: 0.99,
            roi_all_levels: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cp2Config {
    /// Foreground and background views (MoCo v2 pipeline, §4.1).
    pub view: ViewAugment,
    /// Pasted rectangle: area fraction and aspect ranges (RandomErasing, §4.1).
    pub paste_area: (f32, f32),
    pub paste_ratio: (f32, f32),
    /// Backbone output stride; the mask grid is size/stride.
    pub output_stride: usize,
    pub aspp_channels: usize,
    pub aspp_rates: (usize, usize, usize),
    pub proj_dim: usize,
    pub queue_size: usize,
    pub temperature: f32,
    pub dense_weight: f32,
    pub momentum: f32,
    /// Single-device stand-in for the key network's Shuffle-BN (as MoCo v2's).
    pub key_bn: KeyBatchNorm,
    /// Quick Tuning: initialise the backbone from this checkpoint (ours, or a PyTorch-world
    /// weights file: torchvision, MoCo, mmselfsup, mmseg, SoCo, detectron2); the ASPP head
    /// starts at random.
    pub init_from: Option<std::path::PathBuf>,
}

impl Default for Cp2Config {
    fn default() -> Self {
        Cp2Config {
            view: ViewAugment::default(),
            paste_area: (0.5, 0.8),
            paste_ratio: (0.8, 1.25),
            output_stride: 16,
            aspp_channels: 512,
            aspp_rates: (6, 12, 18),
            proj_dim: 128,
            queue_size: 65_536,
            temperature: 0.2,
            dense_weight: 0.2,
            momentum: 0.999,
            key_bn: KeyBatchNorm::ShuffledSubBatches(8),
            init_from: None,
        }
    }
}
