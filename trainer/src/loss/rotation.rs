//! SSL4DP patch-level rotation's loss (METHODS.md §9): the network's 4-way logits, upsampled
//! bilinearly (half-pixel centres) from feature resolution to the input size, and the per-pixel
//! cross-entropy against the rotation class of each pixel's patch.

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor, TensorData};

use super::pixel_ce::pixel_cross_entropy;

/// The per-pixel target: each pixel takes the rotation class of its patch. `rotation` is the
/// ring's `[n, g, g]` map (row-major per image).
pub fn pixel_targets(rotation: &[u8], n: usize, grid: usize, size: usize) -> Vec<i64> {
    let patch = size / grid;
    let mut out = Vec::with_capacity(n * size * size);
    for i in 0..n {
        for y in 0..size {
            for x in 0..size {
                out.push(rotation[i * grid * grid + (y / patch) * grid + x / patch] as i64);
            }
        }
    }
    out
}

/// `[n, c, h, w]` → `[n, c, size, size]`, bilinear with half-pixel centres.
pub fn upsample(logits: Tensor<4>, size: usize) -> Tensor<4> {
    interpolate(
        logits,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([size, size]),
    )
}

/// `logits`: `[n, 4, h, w]` at feature resolution; `rotation`: the `[n, grid, grid]` classes.
/// Returns the mean per-pixel cross-entropy at `size`² and the pixel accuracy.
pub fn rotation_loss(
    logits: Tensor<4>,
    rotation: &[u8],
    grid: usize,
    size: usize,
) -> (Tensor<1>, f64) {
    let n = logits.dims()[0];
    let device = logits.device();
    let logits = upsample(logits, size);
    let target = Tensor::<3, Int>::from_data(
        TensorData::new(pixel_targets(rotation, n, grid, size), [n, size, size]),
        &device,
    );
    let pred = logits.clone().argmax(1).reshape([n, size, size]);
    let accuracy = pred
        .equal(target.clone())
        .float()
        .mean()
        .into_scalar::<f32>() as f64;
    (pixel_cross_entropy(logits, target), accuracy)
}
