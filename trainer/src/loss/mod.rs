//! Losses as pure functions of tensors, shapes documented (solo-learn's `losses/<method>.py`).

pub mod cp2;
pub mod densecl;
pub mod infonce;
pub mod patch_infonce;
pub mod pixel_ce;
pub mod pixel_contrast;
pub mod protoseg;
pub mod rotation;
pub mod soco;

use burn::tensor::Tensor;

/// L2-normalises along `dim` (with PyTorch's `F.normalize` eps of 1e-12).
pub fn l2_normalize<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(dim)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

/// Cross-entropy with target class 0 for each row of `logits` `[n, c]`, averaged: `logsumexp − x₀`.
pub fn cross_entropy_first(logits: Tensor<2>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let max = logits.clone().max_dim(1).detach();
    let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let first = logits.slice([0..n, 0..1]);
    (lse - first).mean()
}
