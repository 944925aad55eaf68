//! SoCo's box-level BYOL loss (METHODS.md §3.5, `regression_loss_bboxs_aware`): for one direction
//! A→B, per image `−2 · Σ_ab C[a,b]·⟨p̂_a, ẑ_b⟩ / (Σ C + 1e−6)` with `C[a,b] = 1` when slot a of
//! view A and slot b of view B carry the same proposal id (each box is taken at its own FPN level,
//! so this is SoCo's level-aware matrix restricted to assigned slots); averaged over the batch.

use burn::tensor::{Device, Tensor, TensorData};

use super::l2_normalize;

/// `C` for a batch: `ids_a` `[b·ka]`, `ids_b` `[b·kb]` (row-major per image) → `[b, ka, kb]`.
pub fn correspondence(ids_a: &[i32], ids_b: &[i32], b: usize, device: &Device) -> Tensor<3> {
    let (ka, kb) = (ids_a.len() / b, ids_b.len() / b);
    let mut c = vec![0f32; b * ka * kb];
    for i in 0..b {
        for x in 0..ka {
            for y in 0..kb {
                c[(i * ka + x) * kb + y] = (ids_a[i * ka + x] == ids_b[i * kb + y]) as u8 as f32;
            }
        }
    }
    Tensor::from_data(TensorData::new(c, [b, ka, kb]), device)
}

/// `p`: online predictions `[b, ka, d]`; `z`: target projections `[b, kb, d]` (detached by the
/// caller); `c`: [`correspondence`]. Returns the mean loss `[1]`.
pub fn box_byol(p: Tensor<3>, z: Tensor<3>, c: Tensor<3>) -> Tensor<1> {
    let (p, z) = (l2_normalize(p, 2), l2_normalize(z, 2));
    let sim = p.matmul(z.swap_dims(1, 2)); // [b, ka, kb]
    let num = (sim * c.clone()).sum_dim(2).sum_dim(1); // [b, 1, 1]
    let den = c.sum_dim(2).sum_dim(1).add_scalar(1e-6);
    (num / den).mul_scalar(-2.0).mean()
}
