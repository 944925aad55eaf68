//! The batch layouts of each method, in one place so the loader (which fills them) and the trainer
//! (which checks the segment against its own config before reading) build them the same way.
//! Images travel as u8 HWC RGB, not normalised: normalisation happens on the trainer's device.

use crate::schema::{DType, Schema};
use names::*;

/// Every tensor name a method's batch uses: the loader writes and the trainer reads by these.
pub mod names {
    pub const VIEW0: &str = "view0";
    pub const VIEW1: &str = "view1";
    pub const VIEW2: &str = "view2";
    pub const VIEW3: &str = "view3";
    pub const VIEW4: &str = "view4";
    /// Dataset index of the image a sample came from (i64).
    pub const INDEX: &str = "index";
    /// Its class label, or −1 (i64).
    pub const LABEL: &str = "label";
    /// CP²: full-resolution foreground masks of the two composites.
    pub const MASK0: &str = "mask0";
    pub const MASK1: &str = "mask1";
    /// CP²: the masks at the centres of the feature cells.
    pub const GRID0: &str = "grid0";
    pub const GRID1: &str = "grid1";
    /// Patch rotation: k per patch.
    pub const ROTATION: &str = "rotation";
    /// Patch MoCo: the view-1 cell of each view-0 cell.
    pub const MATCH: &str = "match";
    /// SoCo: boxes, ids and FPN levels per box set.
    pub const BOXES: &str = "boxes";
    pub const BOX_IDS: &str = "box_ids";
    pub const BOX_LEVELS: &str = "box_levels";
    /// Segmentation: the label map (u8 per pixel, 255 = ignore or padding).
    pub const SEG_LABEL: &str = "seg_label";
    /// Segmentation: the (height, width) of the real content in the top-left corner (i32).
    pub const EXTENT: &str = "extent";
}

/// MoCo v2 / DenseCL: two views of `size`² per sample, plus the dataset index and label.
pub fn two_crop(method: &str, batch_size: usize, size: usize) -> Schema {
    Schema::new(method, batch_size)
        .tensor(VIEW0, DType::U8, &[size, size, 3])
        .tensor(VIEW1, DType::U8, &[size, size, 3])
        .tensor(INDEX, DType::I64, &[1])
        .tensor(LABEL, DType::I64, &[1])
}

/// CP²: two composites of `size`² per sample, their full-resolution foreground masks (1 inside the
/// pasted window) and the masks sampled at the centres of the `size/stride` feature cells.
pub fn cp2(batch_size: usize, size: usize, stride: usize) -> Schema {
    let g = size / stride;
    Schema::new("cp2", batch_size)
        .attr("output_stride", stride)
        .tensor(VIEW0, DType::U8, &[size, size, 3])
        .tensor(VIEW1, DType::U8, &[size, size, 3])
        .tensor(MASK0, DType::U8, &[size, size])
        .tensor(MASK1, DType::U8, &[size, size])
        .tensor(GRID0, DType::U8, &[g, g])
        .tensor(GRID1, DType::U8, &[g, g])
        .tensor(INDEX, DType::I64, &[1])
        .tensor(LABEL, DType::I64, &[1])
}

/// SSL4DP patch-level rotation: one view of `size`², cut into `grid`² square patches each rotated by
/// k·90° (counter-clockwise); `rotation` holds k per patch (row-major).
pub fn patch_rotation(batch_size: usize, size: usize, grid: usize) -> Schema {
    Schema::new("patch-rotation", batch_size)
        .tensor(VIEW0, DType::U8, &[size, size, 3])
        .tensor(ROTATION, DType::U8, &[grid, grid])
        .tensor(INDEX, DType::I64, &[1])
        .tensor(LABEL, DType::I64, &[1])
}

/// SSL4DP patch-level MoCo: two views of `size`² and, for each `stride`-pixel cell of view 0, the
/// index of the view-1 cell showing the same image point (row-major), or −1 when it falls outside.
pub fn patch_moco(batch_size: usize, size: usize, stride: usize) -> Schema {
    let g = size / stride;
    Schema::new("patch-moco", batch_size)
        .attr("cell_stride", stride)
        .tensor(VIEW0, DType::U8, &[size, size, 3])
        .tensor(VIEW1, DType::U8, &[size, size, 3])
        .tensor(MATCH, DType::I32, &[g * g])
        .tensor(INDEX, DType::I64, &[1])
        .tensor(LABEL, DType::I64, &[1])
}

/// Segmentation (fine-tuning crops, or validation images in a slot of the largest size): an image
/// of `height × width` and its label map; the real content is the top-left `extent`, the rest
/// padding (image 0, label 255).
pub fn segmentation(method: &str, batch_size: usize, height: usize, width: usize) -> Schema {
    Schema::new(method, batch_size)
        .tensor(VIEW0, DType::U8, &[height, width, 3])
        .tensor(SEG_LABEL, DType::U8, &[height, width])
        .tensor(EXTENT, DType::I32, &[2])
        .tensor(INDEX, DType::I64, &[1])
}

/// The box sets of a SoCo sample, in the order of the `boxes`, `box_ids` and `box_levels` rows:
/// V1's boxes paired with V2, V2's, V1's paired with V3, V3's, and (SoCo*) V4's, which pair with
/// row 0 (V4 is V2 resized, so it shares V2's boxes).
pub const SOCO_BOX_SETS: [&str; 5] = ["v1_for_v2", "v2", "v1_for_v3", "v3", "v4"];

/// The row of box set `name` (one of [`SOCO_BOX_SETS`]) in a SoCo batch's box tensors.
pub fn soco_box_set(name: &str) -> Option<usize> {
    SOCO_BOX_SETS.iter().position(|&s| s == name)
}

/// SoCo / SoCo*: views V1 (whole image) and V2 at `size`², V3 at `v3_size`², optionally V4 at
/// `v4_size`²; per box set (see [`SOCO_BOX_SETS`]) exactly `k` boxes as normalised, flipped
/// `[x1, y1, x2, y2]` (f32), their proposal ids (i32; equal ids are the same object in the two
/// views of a pair) and their FPN level (u8, 0 = P2 … 3 = P5, from the box's size in that view's
/// pixels).
pub fn soco(
    batch_size: usize,
    size: usize,
    v3_size: usize,
    v4_size: Option<usize>,
    k: usize,
) -> Schema {
    let sets = if v4_size.is_some() { 5 } else { 4 };
    let mut s = Schema::new(
        if v4_size.is_some() {
            "soco-star"
        } else {
            "soco"
        },
        batch_size,
    )
    .attr("box_sets", SOCO_BOX_SETS[..sets].join(","))
    .tensor(VIEW1, DType::U8, &[size, size, 3])
    .tensor(VIEW2, DType::U8, &[size, size, 3])
    .tensor(VIEW3, DType::U8, &[v3_size, v3_size, 3]);
    if let Some(v4) = v4_size {
        s = s.tensor(VIEW4, DType::U8, &[v4, v4, 3]);
    }
    s.tensor(BOXES, DType::F32, &[sets, k, 4])
        .tensor(BOX_IDS, DType::I32, &[sets, k])
        .tensor(BOX_LEVELS, DType::U8, &[sets, k])
        .tensor(INDEX, DType::I64, &[1])
        .tensor(LABEL, DType::I64, &[1])
}
