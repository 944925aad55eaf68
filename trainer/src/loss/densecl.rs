//! DenseCL's dense loss (METHODS.md §2.3): for each query location, the positive is the key
//! location whose *backbone* feature is most similar (cosine); the positive logit uses the dense
//! head's outputs; negatives are the queue of pooled dense keys; InfoNCE with T over n·S² rows.

use burn::tensor::{Int, Tensor};

use super::{cross_entropy_first, l2_normalize};

/// Index of the best-matching key location for every query location: `[n, S²]`.
/// `bq`, `bk`: backbone features `[n, C, S²]`.
pub fn match_locations(bq: Tensor<3>, bk: Tensor<3>) -> Tensor<2, Int> {
    let bq = l2_normalize(bq, 1);
    let bk = l2_normalize(bk, 1);
    let sim = bq.swap_dims(1, 2).matmul(bk); // [n, S²(q), S²(k)]
    sim.argmax(2).squeeze_dim(2)
}

/// `zq`, `zk`: dense-head outputs `[n, c, S²]` (not yet normalised); `matches`: `[n, S²]` from
/// [`match_locations`]; `queue`: `[K, c]` normalised pooled dense keys. Mean loss, shape `[1]`.
pub fn dense_loss(
    zq: Tensor<3>,
    zk: Tensor<3>,
    matches: Tensor<2, Int>,
    queue: Tensor<2>,
    temperature: f32,
) -> Tensor<1> {
    let [n, c, s2] = zq.dims();
    let zq = l2_normalize(zq, 1);
    let zk = l2_normalize(zk, 1);
    // Gather, for each query location, the matched key vector: index [n, c, S²].
    let idx = matches.unsqueeze_dim::<3>(1).expand([n, c, s2]);
    let zk_matched = zk.gather(2, idx);
    let l_pos = (zq.clone() * zk_matched).sum_dim(1).reshape([n * s2, 1]); // [n·S², 1]
    let rows = zq.swap_dims(1, 2).reshape([n * s2, c]); // [n·S², c]
    let l_neg = rows.matmul(queue.transpose()); // [n·S², K]
    let logits = Tensor::cat(vec![l_pos, l_neg], 1).div_scalar(temperature);
    cross_entropy_first(logits)
}
