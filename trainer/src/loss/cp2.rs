//! CP²'s losses (METHODS.md §4.3) on per-cell embeddings of the two composites.
//!
//! Instance: the query and key embeddings pooled over their foreground cells, L2-normalised, and
//! MoCo's InfoNCE against the queue. Dense: `s[x, y] = ⟨q_x, k_y⟩` (no temperature), log-softmax
//! over the query cells x for each key cell y, averaged over foreground×foreground pairs, then over
//! images. Every mask the loader writes has at least one foreground cell, so both stay finite;
//! `clamp_min` guards the divisions anyway.

use burn::tensor::Tensor;

use super::infonce::info_nce;
use super::l2_normalize;

/// Foreground-pooled, L2-normalised embedding: `x` `[b, d, cells]` (normalised per cell), `mask`
/// `[b, cells]` of 0/1 → `[b, d]`.
pub fn pooled(x: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
    let [b, d, _] = x.dims();
    let sum = x.matmul(mask.unsqueeze_dim::<3>(2)); // [b, d, 1]
    l2_normalize(sum.reshape([b, d]), 1)
}

/// Instance loss: `q`, `k` `[b, d, cells]` normalised per cell (`k` detached), masks `[b, cells]`,
/// `queue` `[K, d]`. Returns (loss `[1]`, the pooled keys for the queue).
pub fn instance_loss(
    q: Tensor<3>,
    k: Tensor<3>,
    mask_q: Tensor<2>,
    mask_k: Tensor<2>,
    queue: Tensor<2>,
    temperature: f32,
) -> (Tensor<1>, Tensor<2>) {
    let (qbar, kbar) = (pooled(q, mask_q), pooled(k, mask_k));
    (info_nce(qbar, kbar.clone(), queue, temperature), kbar)
}

/// Dense loss: `q`, `k` `[b, d, cells]` normalised per cell (`k` detached), masks `[b, cells]`.
pub fn dense_loss(q: Tensor<3>, k: Tensor<3>, mask_q: Tensor<2>, mask_k: Tensor<2>) -> Tensor<1> {
    let s = q.swap_dims(1, 2).matmul(k); // [b, x, y]
    let max = s.clone().max_dim(1).detach(); // [b, 1, y]
    let lse = (s.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let log_softmax = s - lse; // over x, per y
    let pos = mask_q.unsqueeze_dim::<3>(2) * mask_k.unsqueeze_dim::<3>(1); // [b, x, y]
    let per_image = (log_softmax * pos.clone()).sum_dim(2).sum_dim(1).neg()
        / pos.sum_dim(2).sum_dim(1).clamp_min(1.0);
    per_image.mean()
}
