//! MoCo's InfoNCE with a queue of negatives (METHODS.md §1.3):
//! `logits = [q·k, q·queueᵀ] / T`, cross-entropy with the positive at index 0.

use burn::tensor::Tensor;

use super::cross_entropy_first;

/// `q`, `k`: `[n, c]`, L2-normalised; `queue`: `[K, c]`, L2-normalised keys of past batches.
/// Returns the mean loss (shape `[1]`). Gradients flow into `q` only when `k` is detached.
pub fn info_nce(q: Tensor<2>, k: Tensor<2>, queue: Tensor<2>, temperature: f32) -> Tensor<1> {
    let l_pos = (q.clone() * k).sum_dim(1); // [n, 1]
    let l_neg = q.matmul(queue.transpose()); // [n, K]
    let logits = Tensor::cat(vec![l_pos, l_neg], 1).div_scalar(temperature);
    cross_entropy_first(logits)
}
