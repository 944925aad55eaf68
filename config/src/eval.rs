//! Downstream semantic segmentation (METHODS.md §2.5, §4.5, §6, §9): the datasets as they lie on
//! disk, the fine-tuning protocol (mmseg's train pipeline, heads, schedule) and how a pretraining
//! run is evaluated.
//!
//! Evaluation runs through the same loader + ring + trainer pair as pretraining: fine-tuning is the
//! `Segmentation` method (phase `Finetune`) over a `Segmentation` dataset layout, validation the
//! same method in phase `Validate`. `tools/evaluate` derives both runs from a config's `eval`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Optimizer, PixelContrastConfig, ProtoSegConfig, Schedule};

/// How a segmentation dataset lies on disk (METHODS.md §6). Label maps are PNGs read as stored
/// values (a palette PNG gives its indices); 255 is ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegFormat {
    /// PASCAL VOC 2012 (and CamVid in VOC layout): `JPEGImages/`, `<label_dir>/`
    /// (`SegmentationClass` or `SegmentationClassAug`), `ImageSets/Segmentation/<split>.txt`.
    Voc { label_dir: String },
    /// Cityscapes: `leftImg8bit/<split>/<city>/`, `gtFine/…_labelTrainIds.png`, or the raw
    /// `…_labelIds.png` mapped through the 19-class table when `raw_label_ids`.
    Cityscapes { raw_label_ids: bool },
    /// ADE20K `ADEChallengeData2016` (reduce_zero_label: 0 → ignore, 150 classes).
    Ade20k,
}

impl Default for SegFormat {
    fn default() -> Self {
        SegFormat::Voc {
            label_dir: "SegmentationClass".into(),
        }
    }
}

/// The colour of class `c` in PASCAL VOC's palette (the colours of VOC's palette PNGs: the bits of
/// the class index spread over R, G, B), used for every label and prediction picture; 255 (ignore)
/// is white.
pub fn class_colour(c: u8) -> [u8; 3] {
    if c == 255 {
        return [255, 255, 255];
    }
    let mut rgb = [0u8; 3];
    let mut id = c;
    for shift in (0..8).rev() {
        for (k, v) in rgb.iter_mut().enumerate() {
            *v |= ((id >> k) & 1) << shift;
        }
        id >>= 3;
    }
    rgb
}

/// The decode head on the backbone's last stage (C5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SegHead {
    /// mmseg's FCNHead: `convs` 3×3 conv-BN-ReLU of `channels`, then (when `concat_input`) a 3×3
    /// conv over [input, features], dropout, 1×1 classifier (DenseCL's protocol, §2.5).
    Fcn {
        convs: usize,
        channels: usize,
        concat_input: bool,
    },
    /// The SSL4DP draft's MoCoFCN: two 3×3 conv-BN-ReLU at dilation 6, classifier (§9).
    MocoFcn { channels: usize },
    /// PSPNet: mmseg's PSPHead, pooling to 1, 2, 3 and 6 cells (the draft's second head, §9).
    Psp { channels: usize },
    /// DeepLabv3: mmseg's ASPPHead, dilations (1, r1, r2, r3) (CP²'s protocol, §4.5).
    DeepLabV3 {
        channels: usize,
        rates: (usize, usize, usize),
    },
    /// A 1×1 classifier only: with `frozen_backbone`, the dense linear probe.
    Linear,
}

/// Which half of an evaluation a run is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum SegPhase {
    /// Fine-tune backbone + head from the ring's random crops.
    #[default]
    Finetune,
    /// Validate the fine-tuned network in `checkpoint` on whole images.
    Validate { checkpoint: PathBuf },
}

/// The segmentation method: network, train pipeline (mmseg's order: Resize with ratio_range,
/// RandomCrop with cat_max_ratio, RandomFlip, PhotoMetricDistortion, pad 0 / ignore) and
/// validation geometry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentationConfig {
    pub phase: SegPhase,
    /// Classes (label values 0..classes; 255 is ignore).
    pub classes: usize,
    /// Their names, for tables (empty: numbers).
    pub class_names: Vec<String>,
    pub head: SegHead,
    /// ProtoSeg's prototype head in place of the decode head's softmax classifier (the head's
    /// features → dropout → projection → nearest prototypes); None: the softmax classifier.
    pub prototypes: Option<ProtoSegConfig>,
    /// ContrastiveSeg's cross-image pixel contrast on the backbone's last stage, an extra loss;
    /// None: off.
    pub pixel_contrast: Option<PixelContrastConfig>,
    /// Dropout before the classifier (mmseg's `Dropout2d`, 0.1).
    pub dropout: f64,
    /// Auxiliary FCN head on C4 (1 conv of `aux_channels`, no concat), loss weight `aux_weight`
    /// (mmseg's 0.4); 0 for none.
    pub aux_weight: f64,
    pub aux_channels: usize,
    /// Backbone output stride: 8 (layer3 and layer4 dilated) or 16 (layer4 dilated).
    pub output_stride: usize,
    /// The backbone stays as loaded (no gradient; BN statistics frozen): the linear probe.
    pub frozen_backbone: bool,
    /// The backbone to start from: a checkpoint of ours (any method), a backbone record, or a
    /// PyTorch-world weights file (torchvision, MoCo, mmselfsup, mmseg, SoCo, detectron2; see
    /// `trainer::weights::import`). None: random init (the floor).
    pub backbone: Option<PathBuf>,
    /// When `backbone` is a checkpoint of a method that pretrained a decoder of this head's kind
    /// and width (EDMoCo, PLEDMoCo, patch rotation), the head's decoder starts from it too (the
    /// classifier always starts fresh); false: only the backbone is taken.
    pub pretrained_decoder: bool,
    /// Training crop (height, width).
    pub crop: (usize, usize),
    /// mmseg's `img_scale` (long side, short side); each sample is rescaled (keeping its aspect)
    /// to fit it times a ratio drawn from `ratio_range`.
    pub scale: (usize, usize),
    pub ratio_range: (f32, f32),
    /// A crop is redrawn (up to 10 times) while one class covers this fraction of its labelled
    /// pixels or more; 1 disables.
    pub cat_max_ratio: f32,
    pub flip_p: f32,
    /// mmseg's PhotoMetricDistortion (brightness ±32, contrast and saturation 0.5–1.5, hue ±18).
    pub photometric: bool,
    /// The ring slot of a validation image (height, width): the largest image of the split.
    /// Images travel at their own size in the top-left corner; the rest is padding.
    pub val_slot: (usize, usize),
    /// Sliding-window validation (window, stride) for images larger than what fits; None: whole.
    pub slide: Option<(usize, usize)>,
}

impl Default for SegmentationConfig {
    /// DenseCL's VOC FCN protocol (§2.5).
    fn default() -> Self {
        SegmentationConfig {
            phase: SegPhase::Finetune,
            classes: 21,
            class_names: Vec::new(),
            head: SegHead::Fcn {
                convs: 2,
                channels: 512,
                concat_input: true,
            },
            prototypes: None,
            pixel_contrast: None,
            dropout: 0.1,
            aux_weight: 0.4,
            aux_channels: 256,
            output_stride: 8,
            frozen_backbone: false,
            backbone: None,
            pretrained_decoder: true,
            crop: (512, 512),
            scale: (2048, 512),
            ratio_range: (0.5, 2.0),
            cat_max_ratio: 0.75,
            flip_p: 0.5,
            photometric: true,
            val_slot: (512, 512),
            slide: None,
        }
    }
}

/// How a pretraining run is evaluated: the dataset, the fine-tuning protocol and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    pub root: PathBuf,
    pub format: SegFormat,
    pub train_split: String,
    pub val_split: String,
    /// Fine-tune on the first N images of the train split only (quick runs).
    pub max_train_images: Option<usize>,
    pub segmentation: SegmentationConfig,
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
            format: SegFormat::default(),
            train_split: "train".into(),
            val_split: "val".into(),
            max_train_images: None,
            segmentation: SegmentationConfig::default(),
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

#[cfg(test)]
mod tests {
    use super::class_colour;

    #[test]
    fn palette_is_voc_s() {
        // VOC's own: background black, aeroplane (128, 0, 0), person (192, 128, 128).
        assert_eq!(class_colour(0), [0, 0, 0]);
        assert_eq!(class_colour(1), [128, 0, 0]);
        assert_eq!(class_colour(2), [0, 128, 0]);
        assert_eq!(class_colour(15), [192, 128, 128]);
        assert_eq!(class_colour(255), [255, 255, 255]);
    }
}
