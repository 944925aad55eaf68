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

/// A union-find forest, union by size with path halving (shallow trees, one pass per find).
/// skimage's `join_trees` makes the smaller index the root instead; that changes which pixel
/// stands for a component, never which pixels form it, and the labels below are numbered by each
/// component's smallest pixel — the order skimage's roots give — so the labels are skimage's.
/// The parents alone (4 bytes a pixel) are what the finds walk, so they stay in the cache; the
/// sizes (at roots) are read only to join.
struct Forest {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl Forest {
    #[inline]
    fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let p = self.parent[x as usize];
            if p == x {
                return x;
            }
            let grandparent = self.parent[p as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
    }

    /// Joins the trees of roots `a` and `b`; returns the new root (its size updated).
    #[inline]
    fn join(&mut self, a: u32, b: u32) -> u32 {
        let (root, other) = if self.size[a as usize] >= self.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[other as usize] = root;
        self.size[root as usize] += self.size[other as usize];
        root
    }

    fn size(&self, root: u32) -> usize {
        self.size[root as usize] as usize
    }
}

/// A graph edge: its cost and its ends.
#[derive(Clone, Copy, Default)]
struct Edge {
    cost: f64,
    a: u32,
    b: u32,
}

impl Edge {
    /// Non-negative doubles order like their bit patterns.
    fn key(&self) -> u64 {
        self.cost.to_bits()
    }
}

/// Sorts the edges by cost, stably (equal costs keep their order), as a stable sort on the whole
/// 64-bit key would, but faster: an LSD radix sort on the key's upper 32 bits (11-, 11- and 10-bit
/// digits: 2048 buckets keep the scattered writes inside the cache, where 65,536 buckets on all 64
/// bits thrashed it; all three histograms in one read), then each run of equal upper bits —
/// costs within ~1e-6 of each other, short runs — put in full-key order by a stable sort.
/// Sorts `edges` in place; `scratch` is the radix sort's second buffer (reused between images).
fn sort_edges(edges: &mut Vec<Edge>, scratch: &mut Vec<Edge>) {
    const DIGITS: [(u32, usize); 3] = [(0, 11), (11, 11), (22, 10)];
    let n = edges.len();
    let upper = |e: &Edge| (e.key() >> 32) as u32;
    let mut counts = [[0usize; 1 << 11]; DIGITS.len()];
    for e in edges.iter() {
        let k = upper(e);
        for (c, &(shift, bits)) in counts.iter_mut().zip(&DIGITS) {
            c[((k >> shift) & ((1 << bits) - 1)) as usize] += 1;
        }
    }
    // Every slot is overwritten before it is read: keep what the buffer holds, zero only growth.
    scratch.resize(n, Edge::default());
    let (mut src, mut dst) = (edges, scratch);
    let mut in_scratch = false;
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
        // Plain slices: through the `&mut Vec`s the loop reloaded the buffer's pointer and length
        // for every edge.
        let (from, to): (&[Edge], &mut [Edge]) = (src, dst);
        for e in from {
            let d = ((upper(e) >> shift) & mask) as usize;
            to[c[d]] = *e;
            c[d] += 1;
        }
        std::mem::swap(&mut src, &mut dst);
        in_scratch = !in_scratch;
    }
    let mut start = 0;
    while start < n {
        let hi = upper(&src[start]);
        let end = start + src[start..].iter().take_while(|e| upper(e) == hi).count();
        if end - start > 1 {
            src[start..end].sort_by_key(|e| e.key());
        }
        start = end;
    }
    // An odd number of passes left the result in the scratch buffer: swap the buffers.
    if in_scratch {
        std::mem::swap(src, dst);
    }
}

/// Buffers one segmentation needs, kept per thread between images so a run over a dataset does
/// not map and fault in ≈ 180 bytes a pixel afresh for every image (two 16-byte records for each
/// of 4 edges, the planes, the forest; on a 500×375 photo that was ~15 % of the time). Released
/// after an image over [`KEEP_PIXELS`], so one huge photo does not pin hundreds of MB for the
/// rest of a run.
#[derive(Default)]
struct Workspace {
    planes: [Vec<f64>; 3],
    tmp: Vec<f64>,
    edges: Vec<Edge>,
    scratch: Vec<Edge>,
    parent: Vec<u32>,
    size: Vec<u32>,
    threshold: Vec<f64>,
    label_of_root: Vec<u32>,
}

/// Images up to this many pixels (ImageNet's are mostly ≤ 500×500) keep their workspace for the
/// next image: ≈ 95 MB per thread at most.
const KEEP_PIXELS: usize = 1 << 19;

thread_local! {
    static WORKSPACE: std::cell::RefCell<Workspace> = std::cell::RefCell::new(Workspace::default());
}

/// Segment labels (row-major, `width × height`), 0-based and dense.
pub fn segment(rgb: &[u8], width: usize, height: usize, params: &Params) -> Vec<u32> {
    assert_eq!(rgb.len(), width * height * 3, "RGB buffer size");
    WORKSPACE.with(|cell| {
        let mut ws = cell.borrow_mut();
        let labels = segment_in(&mut ws, rgb, width, height, params);
        if width * height > KEEP_PIXELS {
            *ws = Workspace::default();
        }
        labels
    })
}

/// Fills `edges` with every edge in skimage's order — right, down, down-right, up-right, each
/// row-major — and its cost, the Euclidean distance of the smoothed colours. Row by row over
/// contiguous slices into `row`, so the distances vectorise; each is still (d₀² + d₁²) + d₂², √.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2",
    "x86_64+sse4.1"
))]
fn build_edges(
    planes: &[Vec<f64>; 3],
    width: usize,
    height: usize,
    edges: &mut Vec<Edge>,
    row: &mut Vec<f64>,
) {
    edges.clear();
    let w = width;
    // (first row, last row + 1, first column) of pixel `a`, and b = a − back.
    let groups: [(usize, usize, usize, isize); 4] = [
        (0, height, 1, 1),
        (1, height, 0, w as isize),
        (1, height, 1, w as isize + 1),
        (0, height.saturating_sub(1), 1, 1 - w as isize),
    ];
    for (y0, y1, x0, back) in groups {
        for y in y0..y1 {
            let a0 = y * w + x0;
            let a1 = y * w + w;
            if a0 >= a1 {
                continue;
            }
            let b0 = (a0 as isize - back) as usize;
            let b1 = b0 + (a1 - a0);
            // The row's costs in a contiguous buffer first: the squares and the square roots
            // vectorise there (in the edge records, 16 bytes apart, the roots did not).
            row.clear();
            let (pa, pb) = (&planes[0][a0..a1], &planes[0][b0..b1]);
            row.extend(pa.iter().zip(pb).map(|(x, y)| (x - y) * (x - y)));
            for plane in &planes[1..] {
                let (pa, pb) = (&plane[a0..a1], &plane[b0..b1]);
                for ((c, x), y) in row.iter_mut().zip(pa).zip(pb) {
                    let d = x - y;
                    *c += d * d;
                }
            }
            for c in row.iter_mut() {
                *c = c.sqrt();
            }
            edges.extend(row.iter().enumerate().map(|(i, &cost)| Edge {
                cost,
                a: (a0 + i) as u32,
                b: (b0 + i) as u32,
            }));
        }
    }
}

fn segment_in(
    ws: &mut Workspace,
    rgb: &[u8],
    width: usize,
    height: usize,
    params: &Params,
) -> Vec<u32> {
    let n = width * height;
    // Channels as [0, 1] floats (v / 255 from a table: the same values, no division), smoothed.
    let unit: [f64; 256] = std::array::from_fn(|v| v as f64 / 255.0);
    for (c, plane) in ws.planes.iter_mut().enumerate() {
        plane.clear();
        plane.extend(rgb.chunks_exact(3).map(|p| unit[p[c] as usize]));
        gaussian::blur(plane, width, height, params.sigma, &mut ws.tmp);
    }
    build_edges(&ws.planes, width, height, &mut ws.edges, &mut ws.tmp);
    sort_edges(&mut ws.edges, &mut ws.scratch);
    let sorted = &ws.edges;

    let k = params.scale / 255.0;
    let mut forest = Forest {
        parent: std::mem::take(&mut ws.parent),
        size: std::mem::take(&mut ws.size),
    };
    forest.parent.clear();
    forest.parent.extend(0..n as u32);
    forest.size.clear();
    forest.size.resize(n, 1);
    // Int(C) + k/|C| per root, recomputed only when a merge changes it: the same expression as
    // evaluating it for every edge (Int of a single pixel is 0), so the same bits, without two
    // divisions per edge. Its own array (8 bytes a pixel, not 16 with the size), so the two
    // random reads per edge between components find more of it in the cache.
    let threshold = &mut ws.threshold;
    threshold.clear();
    threshold.resize(n, 0.0 + k / 1.0);
    // The edges this pass rejects, in order, go to the sort's spare buffer: they are the only
    // ones the min_size pass can act on (an edge merged here, or inside one component when its
    // turn came, joins pixels that stay together), so it need not walk all the others again.
    let rejected = &mut ws.scratch;
    let mut n_rejected = 0;
    for e in sorted {
        let (ra, rb) = (forest.find(e.a), forest.find(e.b));
        if ra == rb {
            continue;
        }
        // Two comparisons, as skimage writes it (f64::min would add NaN handling; nothing here
        // is NaN).
        if e.cost < threshold[ra as usize] && e.cost < threshold[rb as usize] {
            let r = forest.join(ra, rb);
            threshold[r as usize] = e.cost + k / forest.size(r) as f64;
        } else {
            rejected[n_rejected] = *e;
            n_rejected += 1;
        }
    }
    for e in &rejected[..n_rejected] {
        let (ra, rb) = (forest.find(e.a), forest.find(e.b));
        if ra != rb && (forest.size(ra) < params.min_size || forest.size(rb) < params.min_size) {
            forest.join(ra, rb);
        }
    }
    // Dense labels in order of each component's smallest pixel index (skimage's roots are those
    // pixels, and np.unique sorts them): walking pixels upwards meets a component first there.
    let mut labels = vec![0u32; n];
    let label_of_root = &mut ws.label_of_root;
    label_of_root.clear();
    label_of_root.resize(n, u32::MAX);
    let mut next = 0u32;
    for i in 0..n as u32 {
        let r = forest.find(i) as usize;
        if label_of_root[r] == u32::MAX {
            label_of_root[r] = next;
            next += 1;
        }
        labels[i as usize] = label_of_root[r];
    }
    ws.parent = forest.parent;
    ws.size = forest.size;
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
                    cost,
                    a: i,
                    b: i + 1,
                }
            })
            .collect();
        let mut want = edges.clone();
        want.sort_by_key(|e| e.key());
        let mut got = edges;
        sort_edges(&mut got, &mut Vec::new());
        assert!(got
            .iter()
            .zip(&want)
            .all(|(g, w)| (g.key(), g.a) == (w.key(), w.a)));
        assert_eq!(got.len(), want.len());
    }

    /// Blocky noise: many segments of many sizes.
    fn blocks(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let palette: Vec<[u8; 3]> = (0..64)
            .map(|_| next().to_le_bytes()[..3].try_into().unwrap())
            .collect();
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let c = palette[((y / 7) * 13 + (x / 5) * 7) % 64];
                let jitter = (next() % 9) as u8;
                for k in 0..3 {
                    rgb[(y * w + x) * 3 + k] = c[k].saturating_add(jitter);
                }
            }
        }
        rgb
    }

    /// The per-thread workspace carries buffers from image to image (and is not zeroed): an
    /// image segmented after a larger and a smaller one gets the labels a fresh thread gives it.
    #[test]
    fn reused_workspace_gives_a_fresh_threads_labels() {
        let (w, h) = (61, 43);
        let img = blocks(w, h, 7);
        let fresh = {
            let img = img.clone();
            std::thread::spawn(move || segment(&img, w, h, &Params::default()))
                .join()
                .unwrap()
        };
        assert!(
            *fresh.iter().max().unwrap() > 3,
            "the fixture should have several segments"
        );
        segment(&blocks(90, 70, 3), 90, 70, &Params::default());
        assert_eq!(segment(&img, w, h, &Params::default()), fresh);
        segment(&blocks(20, 15, 5), 20, 15, &Params::default());
        assert_eq!(segment(&img, w, h, &Params::default()), fresh);
    }

    /// skimage's algorithm written out plainly (`_felzenszwalb_cy`: its union-find joining under the
    /// smaller index, Int(C) and k/|C| evaluated per edge, the min_size pass over every sorted
    /// edge, labels by smallest pixel) on the same smoothed planes and edge list, against the
    /// optimised pass (cached thresholds, union by size, min_size over the rejected edges only).
    #[test]
    fn segmentation_equals_a_plain_transcription_of_skimage() {
        fn plain(rgb: &[u8], w: usize, h: usize, p: &Params) -> Vec<u32> {
            let n = w * h;
            let mut planes: [Vec<f64>; 3] = Default::default();
            let mut tmp = Vec::new();
            for (c, plane) in planes.iter_mut().enumerate() {
                *plane = rgb.chunks_exact(3).map(|px| px[c] as f64 / 255.0).collect();
                gaussian::blur(plane, w, h, p.sigma, &mut tmp);
            }
            let mut edges = Vec::new();
            build_edges(&planes, w, h, &mut edges, &mut tmp);
            edges.sort_by_key(|e| e.key());
            let mut parent: Vec<usize> = (0..n).collect();
            let mut size = vec![1usize; n];
            let mut int = vec![0.0f64; n];
            fn root(parent: &mut [usize], mut x: usize) -> usize {
                while parent[x] != x {
                    x = parent[x];
                }
                x
            }
            let k = p.scale / 255.0;
            let join = |parent: &mut Vec<usize>, size: &mut Vec<usize>, a: usize, b: usize| {
                let (r, o) = if a < b { (a, b) } else { (b, a) };
                parent[o] = r;
                size[r] += size[o];
                r
            };
            for e in &edges {
                let (a, b) = (
                    root(&mut parent, e.a as usize),
                    root(&mut parent, e.b as usize),
                );
                if a != b
                    && e.cost < int[a] + k / size[a] as f64
                    && e.cost < int[b] + k / size[b] as f64
                {
                    let r = join(&mut parent, &mut size, a, b);
                    int[r] = e.cost;
                }
            }
            for e in &edges {
                let (a, b) = (
                    root(&mut parent, e.a as usize),
                    root(&mut parent, e.b as usize),
                );
                if a != b && (size[a] < p.min_size || size[b] < p.min_size) {
                    join(&mut parent, &mut size, a, b);
                }
            }
            let mut label_of = std::collections::HashMap::new();
            (0..n)
                .map(|i| {
                    let r = root(&mut parent, i);
                    let next = label_of.len() as u32;
                    *label_of.entry(r).or_insert(next)
                })
                .collect()
        }
        for (w, h, seed, min_size) in [(61, 43, 7, 100), (90, 70, 3, 30), (40, 64, 11, 200)] {
            let img = blocks(w, h, seed);
            let p = Params {
                min_size,
                ..Params::default()
            };
            let want = plain(&img, w, h, &p);
            assert!(
                *want.iter().max().unwrap() > 2,
                "fixture {w}x{h} too simple"
            );
            assert_eq!(segment(&img, w, h, &p), want, "{w}x{h} min_size {min_size}");
        }
    }

    #[test]
    fn flat_image_is_one_segment() {
        let rgb = vec![128u8; 32 * 32 * 3];
        let labels = segment(&rgb, 32, 32, &Params::default());
        assert!(labels.iter().all(|&l| l == 0));
    }
}
