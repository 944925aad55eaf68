//! ProtoSeg's prototype head ("Rethinking Semantic Segmentation: A Prototype View", METHODS.md
//! §5): a head option of segmentation fine-tuning that replaces the softmax classifier by
//! `per_class` non-learnable prototypes per class, assigned by Sinkhorn-Knopp and moved by a
//! momentum update, with the pixel-prototype losses PPC and PPD.

use serde::{Deserialize, Serialize};

/// How the momentum update picks each pixel's prototype from the Sinkhorn plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ProtoUpdate {
    /// The reference code: a hard Gumbel-softmax sample of the plan, read as logits (τ only
    /// scales, so the sample is argmax(plan + Gumbel noise)); the PPC target stays the argmax,
    /// so the two can differ.
    Gumbel,
    /// The plan's argmax, the same prototype the PPC target names.
    Argmax,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtoSegConfig {
    /// Prototypes per class (`num_prototype`, 10).
    pub per_class: usize,
    /// Momentum of the prototype update (γ 0.999).
    pub gamma: f64,
    /// Sinkhorn-Knopp's entropic ε (0.05) and iterations (3).
    pub sinkhorn_epsilon: f64,
    pub sinkhorn_iterations: usize,
    pub update: ProtoUpdate,
    /// Weights of the pixel-prototype contrast (PPC, 0.01) and distance (PPD, 0.001) losses.
    pub ppc_weight: f64,
    pub ppd_weight: f64,
    /// PPC's temperature: None divides by nothing (the reference code), Some(0.1) is the paper's.
    pub ppc_temperature: Option<f64>,
    /// Val images drawn in `prototype_similarity.png`, and the class whose prototypes they show
    /// (None: the class with the most labelled validation pixels).
    pub picture_images: usize,
    pub picture_class: Option<usize>,
}

impl Default for ProtoSegConfig {
    fn default() -> Self {
        ProtoSegConfig {
            per_class: 10,
            gamma: 0.999,
            sinkhorn_epsilon: 0.05,
            sinkhorn_iterations: 3,
            update: ProtoUpdate::Gumbel,
            ppc_weight: 0.01,
            ppd_weight: 0.001,
            ppc_temperature: None,
            picture_images: 4,
            picture_class: None,
        }
    }
}

/// ContrastiveSeg's cross-image pixel contrast ("Exploring Cross-Image Pixel Contrast",
/// METHODS.md §5.6) as an extra loss of segmentation fine-tuning: a projection of the backbone's
/// last stage (1×1 conv, BN-ReLU, 1×1 conv to `proj_dim`, L2 norm), anchors sampled per image and
/// class (half hard: labelled the class but predicted otherwise; half easy), and a supervised
/// contrastive loss whose positives are the same class anywhere in the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PixelContrastConfig {
    /// Width of the projected embedding (256).
    pub proj_dim: usize,
    /// τ (0.1) and the base temperature the loss is scaled by, τ / τ_base (0.07).
    pub temperature: f64,
    pub base_temperature: f64,
    /// Anchors in a batch at most (1024) and per image and class (100); classes with no more
    /// than `max_views` labelled pixels in an image give it no anchor.
    pub max_samples: usize,
    pub max_views: usize,
    /// Loss weight (0.1).
    pub weight: f64,
    /// The step from which the loss is on (the reference's 5000: "with_embed" after warm-up).
    pub start_step: usize,
}

impl Default for PixelContrastConfig {
    fn default() -> Self {
        PixelContrastConfig {
            proj_dim: 256,
            temperature: 0.1,
            base_temperature: 0.07,
            max_samples: 1024,
            max_views: 100,
            weight: 0.1,
            start_step: 5000,
        }
    }
}
