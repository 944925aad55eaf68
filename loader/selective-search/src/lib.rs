//! Selective search object proposals, written to reproduce what SoCo's precompute step computes
//! with the Python `selectivesearch` package (METHODS.md §3.1) — at a fraction of its cost:
//!
//! 1. [`felzenszwalb`]: skimage's graph segmentation (Gaussian pre-smoothing σ, 8-connected
//!    Euclidean colour edges, threshold `scale/255` on [0, 1] images, `min_size` post-merge);
//! 2. [`grouping`]: per-region colour and texture histograms, size and fill similarities, and the
//!    greedy hierarchical merge of the most similar neighbouring pair until one region remains;
//! 3. [`filter`]: SoCo's box filter (w, h ≥ 32; aspect within 1/3..3; relative size 0.3..0.8) and
//!    its two fallbacks for images left empty.
//!
//! Input is packed 8-bit RGB. Single-threaded per image; parallelism is across images.

pub mod felzenszwalb;
pub mod filter;
pub mod gaussian;
pub mod grouping;

/// A proposal in SoCo's JSON convention: left x, top y, width w = max_x − min_x, height likewise
/// (no +1), in pixels of the image it was computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The parameters SoCo uses: scale 300, σ 0.9, min_size 100, on the full-resolution image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub scale: f64,
    pub sigma: f64,
    pub min_size: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            scale: 300.0,
            sigma: 0.9,
            min_size: 100,
        }
    }
}

/// All regions of the hierarchy (before filtering), as rectangles, in creation order: first the
/// segments of the over-segmentation, then one per merge.
pub fn selective_search(rgb: &[u8], width: usize, height: usize, params: &Params) -> Vec<Rect> {
    let labels = felzenszwalb::segment(rgb, width, height, params);
    grouping::hierarchy(rgb, width, height, &labels)
}

/// Diversified selective search: the hierarchies of several Felzenszwalb scales `ks` (as OpenCV's
/// fast mode diversifies over k), concatenated in order and without duplicate boxes. SoCo itself
/// uses one scale; this trades time for recall of small objects.
pub fn selective_search_diverse(
    rgb: &[u8],
    width: usize,
    height: usize,
    base: &Params,
    ks: &[f64],
) -> Vec<Rect> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for &k in ks {
        let p = Params { scale: k, ..*base };
        for r in selective_search(rgb, width, height, &p) {
            if seen.insert(r) {
                out.push(r);
            }
        }
    }
    out
}
