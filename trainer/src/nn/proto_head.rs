//! ProtoSeg's prototype head (METHODS.md §5.1; tfzhou/ProtoSeg `HRNet_W48_Proto`): pixel
//! embeddings from a projection (1×1 → ReLU → 1×1, L2-normalised), LayerNorm and L2 norm; `M`
//! prototypes per class that take no gradient (the momentum update of
//! [`crate::loss::protoseg::assign`] moves them); a class's score is the largest cosine over its
//! prototypes, and a LayerNorm over the class scores (`mask_norm`) makes the logits. Inference is
//! the nearest prototype.
//!
//! The projection's first 1×1 conv is the decode head's classifier slot (`conv_seg`), built
//! `D → D` wide with PyTorch's default conv init, so the decode head keeps its layout and no
//! parameter lies unused; this module is everything after it.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};

use crate::loss::l2_normalize;

#[derive(Module, Debug)]
pub struct ProtoHead {
    /// The projection's second 1×1 conv, `D → D`.
    pub proj: Conv2d,
    /// LayerNorm over the embedding (`feat_norm`).
    pub feat_norm: LayerNorm,
    /// LayerNorm over the class scores (`mask_norm`).
    pub mask_norm: LayerNorm,
    /// `[K, M, D]`, L2-normalised; never trained by the optimiser.
    pub prototypes: Param<Tensor<3>>,
    pub classes: usize,
    pub per_class: usize,
}

/// The head's outputs on a batch.
pub struct ProtoOut {
    /// Class logits `[n, K, h, w]` (after `mask_norm`).
    pub logits: Tensor<4>,
    /// Cosines of every pixel (rows in `n, h, w` order) to every prototype, `[P, K·M]`.
    pub similarity: Tensor<2>,
    /// Pixel embeddings `[P, D]`, L2-normalised.
    pub embeddings: Tensor<2>,
}

/// PyTorch's default `nn.Conv2d` init (Kaiming-uniform, a = √5; bias U(±1/√fan_in)), which is
/// burn's default too.
pub fn default_conv1x1(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [1, 1]).init(device)
}

impl ProtoHead {
    /// `dim`-wide embeddings, `classes` × `per_class` prototypes drawn from N(0, 0.02²) (the
    /// reference's trunc-normal, whose ±2 bounds are 100 σ away) and L2-normalised.
    pub fn new(dim: usize, classes: usize, per_class: usize, device: &Device) -> ProtoHead {
        let p = Tensor::<3>::random(
            [classes, per_class, dim],
            Distribution::Normal(0.0, 0.02),
            device,
        );
        ProtoHead {
            proj: default_conv1x1(dim, dim, device),
            feat_norm: LayerNormConfig::new(dim).init(device),
            mask_norm: LayerNormConfig::new(classes).init(device),
            prototypes: Param::from_tensor(l2_normalize(p, 2)).set_require_grad(false),
            classes,
            per_class,
        }
    }

    /// The prototypes as the forward pass uses them: normalised, outside the autodiff graph.
    pub fn prototypes(&self) -> Tensor<3> {
        l2_normalize(self.prototypes.val().detach(), 2)
    }

    /// Replaces the prototypes (the momentum update), keeping the parameter's id.
    pub fn set_prototypes(&mut self, p: Tensor<3>) {
        let id = self.prototypes.id;
        self.prototypes = Param::initialized(id, p.detach()).set_require_grad(false);
    }

    /// Cosines of embeddings `[P, D]` to every prototype, `[P, K·M]`.
    pub fn similarity(&self, embeddings: Tensor<2>) -> Tensor<2> {
        let [_, d] = embeddings.dims();
        let protos = self
            .prototypes()
            .reshape([self.classes * self.per_class, d]);
        embeddings.matmul(protos.transpose())
    }

    /// Class logits `[P, K]`: the best cosine over each class's prototypes, through `mask_norm`.
    pub fn logits_from_similarity(&self, similarity: Tensor<2>) -> Tensor<2> {
        let [p, _] = similarity.dims();
        let (k, m) = (self.classes, self.per_class);
        let scores = similarity.reshape([p, k, m]).max_dim(2).reshape([p, k]);
        self.mask_norm.forward(scores)
    }

    /// Class logits `[P, K]` of L2-normalised embeddings `[P, D]` (the nearest prototype wins).
    pub fn class_logits(&self, embeddings: Tensor<2>) -> Tensor<2> {
        self.logits_from_similarity(self.similarity(embeddings))
    }

    /// `x` `[n, D, h, w]`: the output of the projection's first conv.
    pub fn forward(&self, x: Tensor<4>) -> ProtoOut {
        let [n, d, h, w] = x.dims();
        let k = self.classes;
        let y = l2_normalize(self.proj.forward(relu(x)), 1);
        let e = y.permute([0, 2, 3, 1]).reshape([n * h * w, d]);
        let e = l2_normalize(self.feat_norm.forward(e), 1);
        let similarity = self.similarity(e.clone());
        let logits = self
            .logits_from_similarity(similarity.clone())
            .reshape([n, h, w, k])
            .permute([0, 3, 1, 2]);
        ProtoOut {
            logits,
            similarity,
            embeddings: e,
        }
    }
}
