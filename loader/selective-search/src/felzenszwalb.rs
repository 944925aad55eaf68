//! Felzenszwalb–Huttenlocher graph segmentation with skimage's semantics (what SoCo runs):
//! the image as floats in [0, 1], Gaussian-smoothed per channel (σ), an 8-connected grid graph whose
//! edge weights are Euclidean colour distances, edges taken in increasing weight and two
//! components merged when the weight is below both `Int(C) + k/|C|` with `k = scale/255`; then
//! components smaller than `min_size` merged along the same edge order; labels renumbered 0..n
//! in order of their smallest pixel index.
//!
//! Ties between equal weights are broken by edge order (right, down, down-right, up-right, each
//! row-major), deterministically; numpy's unstable argsort may order them differently.

use crate::gaussian;
use crate::Params;

/// A union-find forest where the smaller index becomes the root, as skimage's `join_trees`.
struct Forest {
    parent: Vec<u32>,
}

impl Forest {
    fn find(&mut self, n: u32) -> u32 {
        let mut root = n;
        while self.parent[root as usize] < root {
            root = self.parent[root as usize];
        }
        // Path compression.
        let mut i = n;
        while self.parent[i as usize] < i {
            let next = self.parent[i as usize];
            self.parent[i as usize] = root;
            i = next;
        }
        root
    }

    /// Joins the trees of roots `a` and `b`; returns the new root.
    fn join(&mut self, a: u32, b: u32) -> u32 {
        let (root, other) = if a < b { (a, b) } else { (b, a) };
        self.parent[other as usize] = root;
        root
    }
}

/// A graph edge: the cost's bit pattern (non-negative doubles order like their bits) and its ends.
#[derive(Clone, Copy, Default)]
struct Edge {
    key: u64,
    a: u32,
    b: u32,
}

/// Stable LSD radix sort of the edges by cost, 16 bits per pass, moving whole records (streaming
/// reads and bucketed writes) and skipping passes whose digit is the same for every edge.
fn sort_edges(mut edges: Vec<Edge>) -> Vec<Edge> {
    let mut next = vec![Edge::default(); edges.len()];
    let mut counts = vec![0usize; 1 << 16];
    for pass in 0..4 {
        let shift = pass * 16;
        counts.iter_mut().for_each(|c| *c = 0);
        for e in &edges {
            counts[((e.key >> shift) & 0xFFFF) as usize] += 1;
        }
        if counts.contains(&edges.len()) {
            continue; // one digit value everywhere: this pass would not move anything
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = sum;
            sum += n;
        }
        for e in &edges {
            let d = ((e.key >> shift) & 0xFFFF) as usize;
            next[counts[d]] = *e;
            counts[d] += 1;
        }
        std::mem::swap(&mut edges, &mut next);
    }
    edges
}

/// Segment labels (row-major, `width × height`), 0-based and dense.
pub fn segment(rgb: &[u8], width: usize, height: usize, params: &Params) -> Vec<u32> {
    assert_eq!(rgb.len(), width * height * 3, "RGB buffer size");
    let n = width * height;
    // Channels as [0, 1] floats, smoothed.
    let mut planes: Vec<Vec<f64>> = (0..3)
        .map(|c| {
            rgb.iter()
                .skip(c)
                .step_by(3)
                .map(|&v| v as f64 / 255.0)
                .collect()
        })
        .collect();
    let mut tmp = Vec::new();
    for p in planes.iter_mut() {
        gaussian::blur(p, width, height, params.sigma, &mut tmp);
    }
    let dist = |a: usize, b: usize| -> f64 {
        let mut s = 0.0;
        for p in &planes {
            let d = p[a] - p[b];
            s += d * d;
        }
        s.sqrt()
    };
    // Edges in skimage's order (right, down, down-right, up-right, each row-major) as records of
    // (cost bits, pixel a, pixel b), then sorted by cost, stably, so equal costs keep that order.
    let mut edges: Vec<Edge> = Vec::with_capacity(4 * n);
    let mut push = |a: usize, b: usize| {
        edges.push(Edge {
            key: dist(a, b).to_bits(),
            a: a as u32,
            b: b as u32,
        })
    };
    for y in 0..height {
        for x in 1..width {
            push(y * width + x, y * width + x - 1);
        }
    }
    for y in 1..height {
        for x in 0..width {
            push(y * width + x, (y - 1) * width + x);
        }
    }
    for y in 1..height {
        for x in 1..width {
            push(y * width + x, (y - 1) * width + x - 1);
        }
    }
    for y in 0..height.saturating_sub(1) {
        for x in 1..width {
            push(y * width + x, (y + 1) * width + x - 1);
        }
    }
    let sorted = sort_edges(edges);

    let k = params.scale / 255.0;
    let mut forest = Forest {
        parent: (0..n as u32).collect(),
    };
    let mut size = vec![1u32; n];
    let mut cint = vec![0f64; n];
    for e in &sorted {
        let (a, b, c) = (e.a, e.b, f64::from_bits(e.key));
        let (ra, rb) = (forest.find(a), forest.find(b));
        if ra == rb {
            continue;
        }
        let ta = cint[ra as usize] + k / size[ra as usize] as f64;
        let tb = cint[rb as usize] + k / size[rb as usize] as f64;
        if c < ta.min(tb) {
            let r = forest.join(ra, rb);
            size[r as usize] = size[ra as usize] + size[rb as usize];
            cint[r as usize] = c;
        }
    }
    for e in &sorted {
        let (ra, rb) = (forest.find(e.a), forest.find(e.b));
        if ra == rb {
            continue;
        }
        if (size[ra as usize] as usize) < params.min_size
            || (size[rb as usize] as usize) < params.min_size
        {
            let r = forest.join(ra, rb);
            size[r as usize] = size[ra as usize] + size[rb as usize];
        }
    }
    // Dense labels in order of root index (np.unique's sorted order). A root is the smallest
    // index of its component, so walking indices upwards meets each root before its members.
    let mut label_of_root = vec![u32::MAX; n];
    let mut labels = vec![0u32; n];
    let mut next = 0u32;
    for i in 0..n as u32 {
        let r = forest.find(i);
        if r == i {
            label_of_root[i as usize] = next;
            next += 1;
        }
        labels[i as usize] = label_of_root[r as usize];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_rects() -> (Vec<u8>, usize, usize) {
        // 60×40: left half red, right half blue.
        let (w, h) = (60, 40);
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let c = if x < 30 { [220, 30, 30] } else { [30, 30, 220] };
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
            }
        }
        (rgb, w, h)
    }

    #[test]
    fn two_flat_rectangles_give_two_segments() {
        let (rgb, w, h) = two_rects();
        let labels = segment(
            &rgb,
            w,
            h,
            &Params {
                scale: 300.0,
                sigma: 0.9,
                min_size: 100,
            },
        );
        assert_eq!(labels[0], 0);
        assert_eq!(*labels.iter().max().unwrap(), 1);
        for y in 0..h {
            assert_eq!(labels[y * w + 5], 0);
            assert_eq!(labels[y * w + 55], 1);
        }
    }

    #[test]
    fn flat_image_is_one_segment() {
        let rgb = vec![128u8; 32 * 32 * 3];
        let labels = segment(&rgb, 32, 32, &Params::default());
        assert!(labels.iter().all(|&l| l == 0));
    }
}
