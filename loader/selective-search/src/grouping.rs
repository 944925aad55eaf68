//! Hierarchical grouping as the Python `selectivesearch` package (AlpacaDB) does it — the code SoCo
//! copied — reproduced faithfully, quirks included, so our proposals match the reference's:
//!
//! * colour: skimage `rgb2hsv` applied to 0–255 floats, then 25-bin histograms over (0, 255) per
//!   channel — so hue and saturation (which lie in [0, 1]) always land in the first bin and only the
//!   value channel discriminates;
//! * texture: skimage `local_binary_pattern(P=8, R=1)` of each RGB channel, then 10-bin histograms
//!   over (0, 1) — so only LBP codes 0 and 1 are counted;
//! * both histograms divided by the region's pixel count; similarity = Σmin(colour) + Σmin(texture)
//!   + size term + fill term;
//! * neighbours are pairs whose boxes overlap by the package's corner test; the most similar pair
//!   (the latest-inserted among ties, as Python's stable sort picks) merges, its pairs are dropped and
//!   the new region is compared with their other members.

use crate::Rect;

const COLOUR_BINS: usize = 25;
const TEXTURE_BINS: usize = 10;

#[derive(Debug, Clone)]
struct Region {
    min_x: i64,
    min_y: i64,
    max_x: i64,
    max_y: i64,
    size: f64,
    hist_c: Vec<f64>,
    hist_t: Vec<f64>,
}

/// numpy.histogram's bin of `x` for `bins` equal bins over [lo, hi] (None if outside).
fn np_bin(x: f64, lo: f64, hi: f64, bins: usize) -> Option<usize> {
    if !(lo..=hi).contains(&x) {
        return None;
    }
    let edge = |i: usize| lo + (hi - lo) * i as f64 / bins as f64;
    let mut i = ((x - lo) * (bins as f64 / (hi - lo))) as usize;
    if i == bins {
        i -= 1;
    }
    if x < edge(i) {
        i -= 1;
    } else if i != bins - 1 && x >= edge(i + 1) {
        i += 1;
    }
    Some(i)
}

/// skimage rgb2hsv on 0–255 floats (values beyond [0, 1] are not rescaled, as in the package).
/// The grouping uses its consequence (see `value_bins`); the tests check that against this.
#[cfg(test)]
fn hsv(r: f64, g: f64, b: f64) -> [f64; 3] {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    if delta == 0.0 {
        return [0.0, 0.0, v];
    }
    let s = delta / v;
    // Later assignments win, as skimage assigns red, then green, then blue maxima.
    let mut h = 0.0;
    if r == v {
        h = (g - b) / delta;
    }
    if g == v {
        h = 2.0 + (b - r) / delta;
    }
    if b == v {
        h = 4.0 + (r - g) / delta;
    }
    [(h / 6.0).rem_euclid(1.0), s, v]
}

/// `x.floor()` for |x| < 2⁶³, inline: without SSE4.1 in the baseline target, `f64::floor` is a
/// libm call, and the texture pass makes millions of them.
#[inline]
fn floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// `x.ceil()` for |x| < 2⁶³, inline (see [`floor`]).
#[inline]
fn ceil(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t < x {
        t + 1.0
    } else {
        t
    }
}

/// skimage's bilinear interpolation at (r, c), reading pixels through `px(row, column)`.
#[inline]
fn bilinear_by(px: impl Fn(f64, f64) -> f64, r: f64, c: f64) -> f64 {
    let (minr, minc, maxr, maxc) = (floor(r), floor(c), ceil(r), ceil(c));
    let (dr, dc) = (r - minr, c - minc);
    let top = (1.0 - dc) * px(minr, minc) + dc * px(minr, maxc);
    let bottom = (1.0 - dc) * px(maxr, minc) + dc * px(maxr, maxc);
    (1.0 - dr) * top + dr * bottom
}

/// skimage's bilinear interpolation with constant 0 outside the image.
fn bilinear(img: &[u8], w: usize, h: usize, r: f64, c: f64) -> f64 {
    let px = |rr: f64, cc: f64| -> f64 {
        if rr < 0.0 || cc < 0.0 || rr >= h as f64 || cc >= w as f64 {
            0.0
        } else {
            img[rr as usize * w + cc as usize] as f64
        }
    };
    bilinear_by(px, r, c)
}

/// Which pixels have skimage `local_binary_pattern(channel, 8, 1.0)` code 0 or 1 — the only codes
/// the package's texture histogram counts (its range is (0, 1)). Code 0: every neighbour is below
/// the centre; code 1: only neighbour 0 (to the right) is not. A pixel is settled as soon as one of
/// neighbours 1..7 reaches the centre, so most never need all eight interpolations. Returns the
/// pixels (row-major index) with code 0 or 1 and their code, in pixel order — a few percent of the
/// image.
///
/// `channel` is one 8-bit channel of the image (row-major). Inside the image the axis neighbours
/// above, left and below are plain pixels, so the common case — one of them reaches the centre —
/// is three byte comparisons; only the rest (local maxima along the axes, and the border, where
/// skimage reads zeros) go through the interpolating code.
fn lbp_low_codes(channel: &[u8], w: usize, h: usize) -> Vec<(u32, u8)> {
    let offsets = LbpOffsets::new();
    let mut out = Vec::new();
    // Per row, the columns that need the interpolating check, gathered without a branch per
    // pixel (a write at every column, the end advanced by the flag): ~7 % of pixels on photos.
    let mut slow = vec![0usize; w];
    // The diagonal neighbours' interpolation, per column and per row: (c + offset).floor(), .ceil()
    // and the fraction depend on the column (row) alone, so they are computed once per column
    // (row), in the same arithmetic, instead of once per pixel.
    let columns: [Vec<Tap>; 4] =
        DIAGONALS.map(|p| (0..w).map(|c| Tap::at(c, offsets.cp[p])).collect());
    for r in 0..h {
        let mut n = 0;
        if r == 0 || r + 1 == h || w < 3 {
            slow.iter_mut().enumerate().for_each(|(c, s)| *s = c);
            n = w;
        } else {
            let row = &channel[r * w..(r + 1) * w];
            let up = &channel[(r - 1) * w..r * w];
            let down = &channel[(r + 1) * w..(r + 2) * w];
            slow[0] = 0;
            n += 1;
            for c in 1..w - 1 {
                let centre = row[c];
                slow[n] = c;
                n += ((up[c] < centre) & (row[c - 1] < centre) & (down[c] < centre)) as usize;
            }
            slow[n] = w - 1;
            n += 1;
        }
        let interior_row = r > 0 && r + 1 < h && w >= 3;
        let rows = if interior_row {
            DIAGONALS.map(|p| Tap::at(r, offsets.rp[p]))
        } else {
            [Tap::default(); 4]
        };
        for &c in &slow[..n] {
            let code = if interior_row && c > 0 && c + 1 < w {
                let centre = channel[r * w + c] as f64;
                let px = |y: usize, x: usize| channel[y * w + x] as f64;
                let reaches = |k: usize| {
                    let (y, x) = (rows[k], columns[k][c]);
                    // bilinear_by's expression, with its floor/ceil/fraction looked up.
                    let top = (1.0 - x.frac) * px(y.lo, x.lo) + x.frac * px(y.lo, x.hi);
                    let bottom = (1.0 - x.frac) * px(y.hi, x.lo) + x.frac * px(y.hi, x.hi);
                    (1.0 - y.frac) * top + y.frac * bottom - centre >= 0.0
                };
                if (0..4).any(reaches) {
                    2
                } else {
                    (channel[r * w + c + 1] as f64 - centre >= 0.0) as u8
                }
            } else {
                offsets.low_code_at(channel, w, h, r, c)
            };
            if code < 2 {
                out.push(((r * w + c) as u32, code));
            }
        }
    }
    out
}

/// The diagonal sampling points (of P = 8), which need bilinear interpolation, in the order
/// checked.
const DIAGONALS: [usize; 4] = [1, 3, 5, 7];

/// One axis of a bilinear interpolation at `i + offset`: skimage's floor, ceil and fraction.
#[derive(Clone, Copy, Default)]
struct Tap {
    lo: usize,
    hi: usize,
    frac: f64,
}

impl Tap {
    /// For an offset in (−1, 1) from an index ≥ 1 (inside the image).
    fn at(i: usize, offset: f64) -> Tap {
        let x = i as f64 + offset;
        let (lo, hi) = (floor(x), ceil(x));
        Tap {
            lo: lo as usize,
            hi: hi as usize,
            frac: x - lo,
        }
    }
}

/// skimage's sampling points for P = 8, R = 1: (row, column) offsets rounded to 5 decimals.
struct LbpOffsets {
    rp: [f64; 8],
    cp: [f64; 8],
}

impl LbpOffsets {
    fn new() -> LbpOffsets {
        let round5 = |x: f64| (x * 1e5).round() / 1e5;
        let angle = |p: usize| 2.0 * std::f64::consts::PI * p as f64 / 8.0;
        LbpOffsets {
            rp: std::array::from_fn(|p| round5(-angle(p).sin())),
            cp: std::array::from_fn(|p| round5(angle(p).cos())),
        }
    }

    /// The interpolating check of [`lbp_low_codes`] for one pixel, in skimage's arithmetic.
    fn low_code_at(&self, img: &[u8], w: usize, h: usize, r: usize, c: usize) -> u8 {
        let at = |r: i64, c: i64| -> f64 {
            if r < 0 || c < 0 || r >= h as i64 || c >= w as i64 {
                0.0
            } else {
                img[r as usize * w + c as usize] as f64
            }
        };
        let centre = img[r * w + c] as f64;
        let reaches = |p: usize| -> bool {
            let (dr, dc) = (self.rp[p], self.cp[p]);
            let v = if p.is_multiple_of(2) {
                at(r as i64 + dr as i64, c as i64 + dc as i64)
            } else {
                bilinear(img, w, h, r as f64 + dr, c as f64 + dc)
            };
            v - centre >= 0.0
        };
        // Axis neighbours sit on pixel centres (interpolation returns the pixel itself); check
        // them before the diagonals, which need bilinear interpolation.
        if [2usize, 4, 6, 1, 3, 5, 7].iter().any(|&p| reaches(p)) {
            return 2;
        }
        reaches(0) as u8
    }
}

/// numpy.histogram's 25-bin index over (0, 255) of every 8-bit value.
fn value_bins() -> [u8; 256] {
    std::array::from_fn(|v| {
        np_bin(v as f64, 0.0, 255.0, COLOUR_BINS).expect("0..=255 is in range") as u8
    })
}

fn similarity(a: &Region, b: &Region, imsize: f64) -> f64 {
    let inter = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p.min(*q)).sum::<f64>();
    let colour = inter(&a.hist_c, &b.hist_c);
    let texture = inter(&a.hist_t, &b.hist_t);
    let size = 1.0 - (a.size + b.size) / imsize;
    let bb = ((a.max_x.max(b.max_x) - a.min_x.min(b.min_x))
        * (a.max_y.max(b.max_y) - a.min_y.min(b.min_y))) as f64;
    let fill = 1.0 - (bb - a.size - b.size) / imsize;
    colour + texture + size + fill
}

/// The package's neighbour test: one of `b`'s corners strictly inside `a`.
fn intersect(a: &Region, b: &Region) -> bool {
    let inside = |x: i64, y: i64| a.min_x < x && x < a.max_x && a.min_y < y && y < a.max_y;
    inside(b.min_x, b.min_y)
        || inside(b.max_x, b.max_y)
        || inside(b.min_x, b.max_y)
        || inside(b.max_x, b.min_y)
}

fn merge(a: &Region, b: &Region) -> Region {
    let size = a.size + b.size;
    let mix = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p * a.size + q * b.size) / size)
            .collect()
    };
    Region {
        min_x: a.min_x.min(b.min_x),
        min_y: a.min_y.min(b.min_y),
        max_x: a.max_x.max(b.max_x),
        max_y: a.max_y.max(b.max_y),
        size,
        hist_c: mix(&a.hist_c, &b.hist_c),
        hist_t: mix(&a.hist_t, &b.hist_t),
    }
}

/// Every region of the hierarchy built from segment `labels` (dense, 0..n, row-major).
pub fn hierarchy(rgb: &[u8], width: usize, height: usize, labels: &[u32]) -> Vec<Rect> {
    let n_labels = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut regions: Vec<Region> = (0..n_labels)
        .map(|_| Region {
            min_x: 0xffff,
            min_y: 0xffff,
            max_x: 0,
            max_y: 0,
            size: 0.0,
            hist_c: vec![0.0; 3 * COLOUR_BINS],
            hist_t: vec![0.0; 3 * TEXTURE_BINS],
        })
        .collect();
    // Counts first (exact integers; the package's float histograms add 1.0 per pixel, which is
    // the same number), then the histograms as count / size.
    let mut value_counts = vec![0u32; n_labels * COLOUR_BINS];
    let mut texture_counts = vec![0u32; n_labels * 3 * TEXTURE_BINS];
    let mut sizes = vec![0u32; n_labels];
    // Boxes and sizes per run of equal labels along a row, not per pixel.
    for (y, row) in labels.chunks_exact(width.max(1)).enumerate() {
        let mut x = 0;
        while x < width {
            let l = row[x];
            let start = x;
            while x < width && row[x] == l {
                x += 1;
            }
            let r = &mut regions[l as usize];
            r.min_x = r.min_x.min(start as i64);
            r.max_x = r.max_x.max(x as i64 - 1);
            r.min_y = r.min_y.min(y as i64);
            r.max_y = r.max_y.max(y as i64);
            sizes[l as usize] += (x - start) as u32;
        }
    }
    // Colour: skimage's hue and saturation lie in [0, 1], always the first of 25 bins over
    // (0, 255), so those two bins hold every pixel; the value (the largest channel) is the only
    // one that varies.
    let v_bin = value_bins();
    for (p, &l) in rgb.chunks_exact(3).zip(labels) {
        let v = p[0].max(p[1]).max(p[2]);
        value_counts[l as usize * COLOUR_BINS + v_bin[v as usize] as usize] += 1;
    }
    // Texture: code 0 falls in the first bin, code 1 on the closed right edge: the last bin.
    for c in 0..3 {
        let channel: Vec<u8> = rgb.chunks_exact(3).map(|p| p[c]).collect();
        for (i, code) in lbp_low_codes(&channel, width, height) {
            let bin = if code == 0 { 0 } else { TEXTURE_BINS - 1 };
            texture_counts[(labels[i as usize] as usize * 3 + c) * TEXTURE_BINS + bin] += 1;
        }
    }
    for (l, r) in regions.iter_mut().enumerate() {
        let n = sizes[l] as f64;
        r.size = n;
        // Every pixel in the first hue and the first saturation bin: size / size.
        r.hist_c[0] = 1.0;
        r.hist_c[COLOUR_BINS] = 1.0;
        for (h, &k) in r.hist_c[2 * COLOUR_BINS..]
            .iter_mut()
            .zip(&value_counts[l * COLOUR_BINS..(l + 1) * COLOUR_BINS])
        {
            *h = k as f64 / n;
        }
        for (h, &k) in r
            .hist_t
            .iter_mut()
            .zip(&texture_counts[l * 3 * TEXTURE_BINS..(l + 1) * 3 * TEXTURE_BINS])
        {
            *h = k as f64 / n;
        }
    }
    let imsize = (width * height) as f64;

    // Pairs in insertion order: (a, b, similarity, alive). Python's dict keeps the first
    // insertion's position when a key is assigned again.
    let mut pairs: Vec<(usize, usize, f64, bool)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for a in 0..regions.len() {
        for b in a + 1..regions.len() {
            if intersect(&regions[a], &regions[b]) {
                index.insert((a, b), pairs.len());
                pairs.push((a, b, similarity(&regions[a], &regions[b], imsize), true));
            }
        }
    }
    let mut alive_count = pairs.len();
    while alive_count > 0 {
        // Highest similarity; among equals the last in insertion order.
        let mut best = usize::MAX;
        for (k, p) in pairs.iter().enumerate() {
            if p.3 && (best == usize::MAX || p.2 >= pairs[best].2) {
                best = k;
            }
        }
        let (i, j) = (pairs[best].0, pairs[best].1);
        let t = regions.len();
        regions.push(merge(&regions[i], &regions[j]));
        let mut others = Vec::new();
        for p in pairs.iter_mut() {
            if p.3 && (p.0 == i || p.1 == i || p.0 == j || p.1 == j) {
                p.3 = false;
                alive_count -= 1;
                if !((p.0 == i && p.1 == j) || (p.0 == j && p.1 == i)) {
                    others.push(if p.0 == i || p.0 == j { p.1 } else { p.0 });
                }
            }
        }
        for n in others {
            let s = similarity(&regions[t], &regions[n], imsize);
            match index.get(&(t, n)) {
                Some(&k) => pairs[k].2 = s,
                None => {
                    index.insert((t, n), pairs.len());
                    pairs.push((t, n, s, true));
                    alive_count += 1;
                }
            }
        }
    }
    regions
        .iter()
        .map(|r| Rect {
            x: r.min_x as u32,
            y: r.min_y as u32,
            w: (r.max_x - r.min_x) as u32,
            h: (r.max_y - r.min_y) as u32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The colour histogram's shortcut: for every 8-bit colour, the package's binning of skimage's
    /// HSV puts hue and saturation in bin 0 and the value in `value_bins()[max]`.
    #[test]
    fn colour_bins_of_every_colour_are_value_bins() {
        let v_bin = value_bins();
        for r in 0..=255u8 {
            for g in 0..=255u8 {
                for b in (0..=255u8).step_by(if cfg!(debug_assertions) { 5 } else { 1 }) {
                    let [h, s, v] = hsv(r as f64, g as f64, b as f64);
                    let bin = |x| np_bin(x, 0.0, 255.0, COLOUR_BINS);
                    assert_eq!(
                        (bin(h), bin(s), bin(v)),
                        (
                            Some(0),
                            Some(0),
                            Some(v_bin[r.max(g).max(b) as usize] as usize)
                        ),
                        "({r}, {g}, {b})"
                    );
                }
            }
        }
    }

    /// The fast LBP pass (three byte comparisons, then the diagonals from per-row and per-column
    /// tables) against the general check, skimage's arithmetic with zero padding, on every pixel
    /// of images with noise, plateaus (ties) and 1-, 2- and 3-pixel-wide shapes.
    #[test]
    fn lbp_low_codes_equal_the_general_check_on_every_pixel() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let offsets = LbpOffsets::new();
        let mut low = 0;
        for (w, h, levels) in [
            (37, 23, 256u64),
            (64, 40, 4),
            (3, 9, 7),
            (1, 5, 3),
            (9, 2, 5),
        ] {
            let img: Vec<u8> = (0..w * h)
                .map(|_| (next() % levels * (255 / (levels - 1).max(1))) as u8)
                .collect();
            let want: Vec<(u32, u8)> = (0..h)
                .flat_map(|r| (0..w).map(move |c| (r, c)))
                .filter_map(|(r, c)| {
                    let code = offsets.low_code_at(&img, w, h, r, c);
                    (code < 2).then_some(((r * w + c) as u32, code))
                })
                .collect();
            low += want.len();
            assert_eq!(lbp_low_codes(&img, w, h), want, "{w}x{h}, {levels} levels");
        }
        assert!(low > 50, "the fixtures should have many low codes ({low})");
    }

    #[test]
    #[allow(clippy::approx_constant)] // skimage's offsets are 1/√2 rounded to 5 decimals
    fn inline_floor_and_ceil_equal_std() {
        for x in [
            -2.5,
            -1.0,
            -0.70711,
            -1e-300,
            0.0,
            0.29289,
            1.0,
            1.70711,
            374.29289,
            1e15 + 0.5,
        ] {
            assert_eq!(floor(x), x.floor(), "{x}");
            assert_eq!(ceil(x), x.ceil(), "{x}");
        }
    }

    #[test]
    fn numpy_binning_edges() {
        assert_eq!(np_bin(0.0, 0.0, 255.0, 25), Some(0));
        assert_eq!(np_bin(10.2, 0.0, 255.0, 25), Some(1));
        assert_eq!(np_bin(255.0, 0.0, 255.0, 25), Some(24));
        assert_eq!(np_bin(1.0, 0.0, 1.0, 10), Some(9));
        assert_eq!(np_bin(2.0, 0.0, 1.0, 10), None);
    }

    #[test]
    fn two_rectangles_and_their_union() {
        // Left half red, right half blue: two segments, one merge → three regions.
        let (w, h) = (60usize, 40usize);
        let mut rgb = vec![0u8; w * h * 3];
        let mut labels = vec![0u32; w * h];
        for y in 0..h {
            for x in 0..w {
                let (c, l) = if x < 30 {
                    ([220, 30, 30], 0)
                } else {
                    ([30, 30, 220], 1)
                };
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
                labels[y * w + x] = l;
            }
        }
        let rects = hierarchy(&rgb, w, h, &labels);
        // The package's corner test never sees side-by-side boxes as neighbours: no merge.
        assert_eq!(
            rects,
            vec![
                Rect {
                    x: 0,
                    y: 0,
                    w: 29,
                    h: 39
                },
                Rect {
                    x: 30,
                    y: 0,
                    w: 29,
                    h: 39
                }
            ]
        );
        // A segment inside another merges with it into the union.
        let mut labels2 = vec![0u32; w * h];
        for y in 10..30 {
            for x in 20..40 {
                labels2[y * w + x] = 1;
            }
        }
        let rects = hierarchy(&rgb, w, h, &labels2);
        assert_eq!(rects.len(), 3);
        assert_eq!(
            rects[1],
            Rect {
                x: 20,
                y: 10,
                w: 19,
                h: 19
            }
        );
        assert_eq!(
            rects[2],
            Rect {
                x: 0,
                y: 0,
                w: 59,
                h: 39
            }
        );
    }
}
