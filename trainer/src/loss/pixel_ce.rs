//! Per-pixel cross-entropy with an ignore label (PyTorch's `F.cross_entropy(logits, target,
//! ignore_index=255)`, mean over the pixels that are not ignored).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// The label that marks a pixel left out of the loss.
pub const IGNORE: i64 = 255;

/// `logits` `[n, c, h, w]`, `target` `[n, h, w]` (class ids, or [`IGNORE`]) → the mean
/// cross-entropy over the labelled pixels (0 when none is labelled).
pub fn pixel_cross_entropy(logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
    let [n, _, h, w] = logits.dims();
    let keep = target.clone().not_equal_elem(IGNORE);
    // Ignored pixels gather class 0 (any valid index) and are then masked out.
    let safe = target.mask_fill(keep.clone().bool_not(), 0);
    let logp = log_softmax(logits, 1);
    let picked = logp
        .gather(1, safe.reshape([n, 1, h, w]))
        .reshape([n, h, w]);
    let weight = keep.float();
    let count = weight.clone().sum().clamp_min(1.0);
    (picked * weight).sum().neg() / count
}
