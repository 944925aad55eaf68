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

/// Sorts the edges by cost, stably (equal costs keep their order), as a stable sort on the whole
/// 64-bit key would, but faster: an LSD radix sort on the key's upper 32 bits (11-, 11- and 10-bit
/// digits: 2048 buckets keep the scattered writes inside the cache, where 65,536 buckets on all 64
/// bits thrashed it; all three histograms in one read), then each run of equal upper bits —
/// costs within ~1e-6 of each other, short runs — put in full-key order by a stable sort.
fn sort_edges(edges: Vec<Edge>) -> Vec<Edge> {
    const DIGITS: [(u32, usize); 3] = [(0, 11), (11, 11), (22, 10)];
    let n = edges.len();
    let upper = |e: &Edge| (e.key >> 32) as u32;
    let mut counts = vec![[0usize; 1 << 11]; DIGITS.len()];
    for e in &edges {
        let k = upper(e);
        for (c, &(shift, bits)) in counts.iter_mut().zip(&DIGITS) {
            c[((k >> shift) & ((1 << bits) - 1)) as usize] += 1;
        }
    }
    let mut src = edges;
    let mut dst = vec![Edge::default(); n];
    for (c, &(shift, bits)) in counts.iter_mut().zip(&DIGITS) {
        if c.contains(&n) {
            continue; // one digit value everywhere: this pass would not move anything
        }
        let mut sum = 0;
        for slot in c.iter_mut() {
            let k = *slot;
            *slot = sum;
            sum += k;
        }
        let mask = (1u32 << bits) - 1;
        for e in &src {
            let d = ((upper(e) >> shift) & mask) as usize;
            dst[c[d]] = *e;
            c[d] += 1;
        }
        std::mem::swap(&mut src, &mut dst);
    }
    let mut start = 0;
    while start < n {
        let hi = upper(&src[start]);
        let end = start + src[start..].iter().take_while(|e| upper(e) == hi).count();
        if end - start > 1 {
            src[start..end].sort_by_key(|e| e.key);
        }
        start = end;
    }
    src
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

    /// The radix sort gives exactly what a stable sort on the full 64-bit key gives, ties and
    /// near-ties (equal upper 32 bits) included.
    #[test]
    fn edge_sort_equals_a_stable_sort_on_the_full_key() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let edges: Vec<Edge> = (0..200_000u32)
            .map(|i| {
                let r = next();
                let cost = match r % 4 {
                    0 => 0.0,                                    // exact ties
                    1 => 0.25 + (r >> 40) as f64 * 1e-15,        // same upper 32 bits
                    2 => (r >> 11) as f64 / (1u64 << 53) as f64, // spread over [0, 1)
                    _ => 1.0 + (r % 7) as f64 / 8.0,             // few distinct values
                };
                Edge {
                    key: f64::to_bits(cost),
                    a: i,
                    b: i + 1,
                }
            })
            .collect();
        let mut want = edges.clone();
        want.sort_by_key(|e| e.key);
        let got = sort_edges(edges);
        assert!(got
            .iter()
            .zip(&want)
            .all(|(g, w)| (g.key, g.a) == (w.key, w.a)));
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn flat_image_is_one_segment() {
        let rgb = vec![128u8; 32 * 32 * 3];
        let labels = segment(&rgb, 32, 32, &Params::default());
        assert!(labels.iter().all(|&l| l == 0));
    }
}
