//! The batch layouts of each method, in one place so the loader (which fills them) and the trainer
//! (which checks the segment against its own config before reading) build them the same way.
//! Images travel as u8 HWC RGB, not normalised: normalisation happens on the trainer's device.

use crate::schema::{DType, Schema};

/// MoCo v2 / DenseCL: two views of `size`² per sample, plus the dataset index and label.
pub fn two_crop(method: &str, batch_size: usize, size: usize) -> Schema {
    Schema::new(method, batch_size)
        .tensor("view0", DType::U8, &[size, size, 3])
        .tensor("view1", DType::U8, &[size, size, 3])
        .tensor("index", DType::I64, &[1])
        .tensor("label", DType::I64, &[1])
}

/// CP²: two composites of `size`² per sample, their full-resolution foreground masks (1 inside the
/// pasted window) and the masks sampled at the centres of the `size/stride` feature cells.
pub fn cp2(batch_size: usize, size: usize, stride: usize) -> Schema {
    let g = size / stride;
    Schema::new("cp2", batch_size)
        .attr("output_stride", stride)
        .tensor("view0", DType::U8, &[size, size, 3])
        .tensor("view1", DType::U8, &[size, size, 3])
        .tensor("mask0", DType::U8, &[size, size])
        .tensor("mask1", DType::U8, &[size, size])
        .tensor("grid0", DType::U8, &[g, g])
        .tensor("grid1", DType::U8, &[g, g])
        .tensor("index", DType::I64, &[1])
        .tensor("label", DType::I64, &[1])
}

/// SSL4DP patch-level rotation: one view of `size`², cut into `grid`² square patches each rotated by
/// k·90° (counter-clockwise); `rotation` holds k per patch (row-major).
pub fn patch_rotation(batch_size: usize, size: usize, grid: usize) -> Schema {
    Schema::new("patch-rotation", batch_size)
        .tensor("view0", DType::U8, &[size, size, 3])
        .tensor("rotation", DType::U8, &[grid, grid])
        .tensor("index", DType::I64, &[1])
        .tensor("label", DType::I64, &[1])
}

/// SSL4DP patch-level MoCo: two views of `size`² and, for each `stride`-pixel cell of view 0, the
/// index of the view-1 cell showing the same image point (row-major), or −1 when it falls outside.
pub fn patch_moco(batch_size: usize, size: usize, stride: usize) -> Schema {
    let g = size / stride;
    Schema::new("patch-moco", batch_size)
        .attr("cell_stride", stride)
        .tensor("view0", DType::U8, &[size, size, 3])
        .tensor("view1", DType::U8, &[size, size, 3])
        .tensor("match", DType::I32, &[g * g])
        .tensor("index", DType::I64, &[1])
        .tensor("label", DType::I64, &[1])
}
