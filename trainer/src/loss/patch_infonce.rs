//! PLMoCo's matched-cell InfoNCE (METHODS.md §9): every cell of view 0 whose image point view 1
//! also shows is a query; the key is the view-1 cell at that point (from the loader's known crop
//! geometry, not from features), the negatives a queue of cell embeddings. Cells of view 0 with
//! no match are left out; the loss is the mean over matched cells.

use burn::tensor::{Int, Tensor};

use super::infonce::info_nce;

/// `q`, `k`: `[n, d, c]` cell embeddings of view 0 and view 1 (`c` cells per view, row-major),
/// L2-normalised along `d`; `matches`: `n·c` entries, for each view-0 cell the view-1 cell
/// showing the same point or −1; `queue`: `[K, d]`. Returns the loss (shape `[1]`) and the
/// number of matched cells; None when no cell of the batch has a match.
pub fn matched_cell_info_nce(
    q: Tensor<3>,
    k: Tensor<3>,
    matches: &[i32],
    queue: Tensor<2>,
    temperature: f32,
) -> Option<(Tensor<1>, usize)> {
    let (q_rows, k_rows) = matched_rows(matches, k.dims()[2]);
    if q_rows.is_empty() {
        return None;
    }
    let device = q.device();
    let m = q_rows.len();
    let q = cell_rows(q).select(0, Tensor::<1, Int>::from_ints(q_rows.as_slice(), &device));
    let k = cell_rows(k).select(0, Tensor::<1, Int>::from_ints(k_rows.as_slice(), &device));
    Some((info_nce(q, k, queue, temperature), m))
}

/// `[n, d, c]` → `[n·c, d]`: one row per cell, image-major.
pub fn cell_rows(x: Tensor<3>) -> Tensor<2> {
    let [n, d, c] = x.dims();
    x.swap_dims(1, 2).reshape([n * c, d])
}

/// The matched pairs as row indices into [`cell_rows`] of view 0 and of view 1.
pub fn matched_rows(matches: &[i32], cells: usize) -> (Vec<i64>, Vec<i64>) {
    let mut q = Vec::new();
    let mut k = Vec::new();
    for (row, &m) in matches.iter().enumerate() {
        if m >= 0 {
            let image = row / cells;
            q.push(row as i64);
            k.push((image * cells + m as usize) as i64);
        }
    }
    (q, k)
}
