//! Downstream semantic-segmentation evaluation (METHODS.md §2.5, §4.5, §5).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Optimizer, Schedule};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SegHead {
    /// FCN: `convs` 3×3 convs of `channels` (dilation `dilation`) + 1×1 classifier.
    Fcn {
        convs: usize,
        channels: usize,
        dilation: usize,
    },
    /// DeepLabv3 ASPP head.
    DeepLabV3 {
        channels: usize,
        rates: (usize, usize, usize),
    },
    /// ProtoSeg: M prototypes per class, Sinkhorn assignment, PPC + PPD losses (§5).
    ProtoSeg {
        prototypes_per_class: usize,
        embed_dim: usize,
        sinkhorn_eps: f64,
        sinkhorn_iters: usize,
        proto_momentum: f64,
        ppc_weight: f64,
        ppd_weight: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// PASCAL VOC layout: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/{train,val}.txt.
    pub root: PathBuf,
    pub train_split: String,
    pub val_split: String,
    pub num_classes: usize,
    pub ignore_index: u8,
    pub head: SegHead,
    /// Backbone output stride for fine-tuning (8 for DenseCL's FCN, 16 for DeepLabv3).
    pub output_stride: usize,
    pub crop_size: usize,
    /// Random rescale range before cropping.
    pub scale_range: (f32, f32),
    pub batch_size: usize,
    pub iterations: usize,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Also fine-tune from random init with the same schedule, for comparison.
    pub compare_random_init: bool,
}

impl Default for EvalConfig {
    /// DenseCL's VOC FCN protocol (§2.5), single device.
    fn default() -> Self {
        EvalConfig {
            root: PathBuf::from("data/VOC2012"),
            train_split: "train".into(),
            val_split: "val".into(),
            num_classes: 21,
            ignore_index: 255,
            head: SegHead::Fcn {
                convs: 2,
                channels: 512,
                dilation: 1,
            },
            output_stride: 8,
            crop_size: 512,
            scale_range: (0.5, 2.0),
            batch_size: 16,
            iterations: 20_000,
            optimizer: Optimizer::Sgd {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 5e-4,
            },
            schedule: Schedule::Poly {
                power: 0.9,
                min_lr: 1e-4,
            },
            compare_random_init: false,
        }
    }
}
