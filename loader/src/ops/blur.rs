//! Gaussian blur as Pillow's `ImageFilter.GaussianBlur(radius)` computes it (what MoCo, DenseCL,
//! SoCo and CP² call): three passes of an "extended" box blur per axis, whose fractional radius is
//! chosen so the three passes have the Gaussian's variance (Gwosdek et al. 2011), in 24-bit fixed
//! point with edge pixels repeated; horizontal passes first, then vertical, as Pillow orders them.
//!
//! Every pass here runs down the columns of an image with one accumulator per byte of a row, so the
//! inner loops are straight vector code; the horizontal passes run on the transposed image (Pillow
//! transposes for its vertical passes; the arithmetic, and so every output byte, is the same).

use super::transpose::transpose_rgb;
use crate::image::ImageView;

/// Pillow's `_gaussian_blur_radius`: the box radius whose `passes` repetitions match σ².
fn box_radius(sigma: f32, passes: u32) -> f32 {
    let sigma2 = sigma * sigma / passes as f32;
    // Mixed float/double arithmetic as in Pillow's C.
    let big_l = ((12.0f64 * sigma2 as f64 + 1.0).sqrt()) as f32;
    let l = ((big_l as f64 - 1.0) / 2.0).floor() as f32;
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// The box's fixed-point weights: `ww` for whole taps, `fw` for the two fractional end taps.
#[derive(Debug, Clone, Copy)]
struct BoxWeights {
    radius: usize,
    ww: u32,
    fw: u32,
}

impl BoxWeights {
    fn new(r: f32) -> BoxWeights {
        let radius = r as usize;
        let ww = ((1u32 << 24) as f32 / (r * 2.0 + 1.0)) as u32;
        let fw = ((1u32 << 24) - (radius as u32 * 2 + 1) * ww) / 2;
        BoxWeights { radius, ww, fw }
    }
}

/// Which input rows one box pass reads for each output row (Pillow's `ImagingLineBoxBlur`
/// regions, with edge pixels repeated).
#[derive(Debug, Clone, Copy)]
struct PassRows {
    radius: usize,
    last: usize,
    edge_a: usize,
    edge_b: usize,
}

impl PassRows {
    fn new(n: usize, radius: usize) -> PassRows {
        PassRows {
            radius,
            last: n - 1,
            edge_a: (radius + 1).min(n),
            edge_b: n.saturating_sub(radius + 1),
        }
    }

    /// For the accumulator's starting value: how often the first row and the last row count,
    /// and the rows `0..ahead` that count once more.
    fn start(&self) -> (u32, u32, usize) {
        let r = self.radius;
        (
            r as u32 + 1,
            (r + 1 - self.edge_a) as u32,
            self.edge_a.saturating_sub(1),
        )
    }

    /// (row leaving the box, row entering it, left and right fractional rows) for output row `y`.
    #[inline(always)]
    fn plan(&self, y: usize) -> [usize; 4] {
        let PassRows {
            radius,
            last,
            edge_a,
            edge_b,
        } = *self;
        if edge_a <= edge_b {
            if y < edge_a {
                [0, y + radius, 0, y + radius + 1]
            } else if y < edge_b {
                [y - radius - 1, y + radius, y - radius - 1, y + radius + 1]
            } else {
                [y - radius - 1, last, y - radius - 1, last]
            }
        } else if y < edge_b {
            [0, y + radius, 0, y + radius + 1]
        } else if y < edge_a {
            [0, last, 0, last]
        } else {
            [y - radius - 1, last, y - radius - 1, last]
        }
    }
}

/// One box pass along the rows axis: `src` and `dst` hold `n` rows of `row_len` bytes; output row
/// `y` mixes input rows around `y` (Pillow's `ImagingLineBoxBlur`, applied to every column at once).
fn column_pass(
    src: &[u8],
    dst: &mut [u8],
    row_len: usize,
    n: usize,
    w: BoxWeights,
    acc: &mut [u32],
) {
    let rows = PassRows::new(n, w.radius);
    // 64-byte strips with AVX-512, then 32-byte strips with AVX2, then the scalar tail.
    let done = simd_bulk!(
        "avx512f",
        avx512::column_strips(src, dst, row_len, n, w, rows)
    )
    .unwrap_or(0);
    let done = simd_bulk!(
        "avx2",
        avx2::column_strips(src, dst, row_len, n, w, rows, done)
    )
    .unwrap_or(done);
    column_pass_scalar(src, dst, row_len, n, w, rows, done, &mut acc[done..row_len]);
}

/// Columns `from..row_len` of a box pass, one accumulator per byte of a row.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
#[allow(clippy::too_many_arguments)]
fn column_pass_scalar(
    src: &[u8],
    dst: &mut [u8],
    row_len: usize,
    n: usize,
    w: BoxWeights,
    rows: PassRows,
    from: usize,
    acc: &mut [u32],
) {
    if from == row_len {
        return;
    }
    let row = |i: usize| &src[i * row_len + from..(i + 1) * row_len];
    let (first_times, last_times, ahead) = rows.start();
    for ((a, &f), &l) in acc.iter_mut().zip(row(0)).zip(row(rows.last)) {
        *a = f as u32 * first_times + l as u32 * last_times;
    }
    for x in 0..ahead {
        for (a, &v) in acc.iter_mut().zip(row(x)) {
            *a += v as u32;
        }
    }
    for y in 0..n {
        let [sub, add, left, right] = rows.plan(y);
        emit_row(
            &mut dst[y * row_len + from..(y + 1) * row_len],
            acc,
            [row(sub), row(add), row(left), row(right)],
            w.ww,
            w.fw,
        );
    }
}

/// One output row: slide the accumulator by one input row and mix in the fractional end rows.
#[inline(always)]
fn emit_row(out: &mut [u8], acc: &mut [u32], [rs, ra, rl, rr]: [&[u8]; 4], ww: u32, fw: u32) {
    // Equal-length zips: no bounds checks, so the loop vectorises.
    for (((((a, o), &s), &p), &l), &r) in acc
        .iter_mut()
        .zip(out.iter_mut())
        .zip(rs)
        .zip(ra)
        .zip(rl)
        .zip(rr)
    {
        let v = a.wrapping_add(p as u32).wrapping_sub(s as u32);
        *a = v;
        let bulk = v
            .wrapping_mul(ww)
            .wrapping_add((l as u32 + r as u32).wrapping_mul(fw));
        *o = (bulk.wrapping_add(1 << 23) >> 24) as u8;
    }
}

/// Reusable buffers of the blur (one per worker).
#[derive(Debug, Default)]
pub struct Blur {
    a: Vec<u8>,
    b: Vec<u8>,
    acc: Vec<u32>,
}

impl Blur {
    pub fn new() -> Self {
        Self::default()
    }

    /// Blurs a packed RGB image in place with Pillow's GaussianBlur(radius = `sigma`).
    pub fn gaussian(&mut self, data: &mut [u8], width: usize, height: usize, sigma: f32) {
        let r = box_radius(sigma, 3);
        if r == 0.0 || width == 0 || height == 0 {
            return;
        }
        let w = BoxWeights::new(r);
        let n = width * height * 3;
        self.a.resize(n, 0);
        self.b.resize(n, 0);
        self.acc.resize(width.max(height) * 3, 0);
        let acc = &mut self.acc;
        // Horizontal: on the transpose (rows of `a` are the columns of `data`), three passes.
        transpose(data, &mut self.a, width, height);
        column_pass(
            &self.a,
            &mut self.b,
            height * 3,
            width,
            w,
            &mut acc[..height * 3],
        );
        column_pass(
            &self.b,
            &mut self.a,
            height * 3,
            width,
            w,
            &mut acc[..height * 3],
        );
        column_pass(
            &self.a,
            &mut self.b,
            height * 3,
            width,
            w,
            &mut acc[..height * 3],
        );
        transpose(&self.b, &mut self.a, height, width);
        // Vertical: three passes down the columns of the image.
        column_pass(
            &self.a,
            &mut self.b,
            width * 3,
            height,
            w,
            &mut acc[..width * 3],
        );
        column_pass(
            &self.b,
            &mut self.a,
            width * 3,
            height,
            w,
            &mut acc[..width * 3],
        );
        column_pass(&self.a, data, width * 3, height, w, &mut acc[..width * 3]);
    }
}

/// `dst` (width rows of height pixels) = transpose of `src` (height rows of width pixels), RGB.
fn transpose(src: &[u8], dst: &mut [u8], width: usize, height: usize) {
    let view = ImageView {
        data: src,
        width,
        height,
        stride: width * 3,
    };
    transpose_rgb(view, dst);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BoxWeights, PassRows};

    /// A box pass over the whole 32-byte column strips from byte `from` on, each strip's 32
    /// accumulators held in four registers from the first row to the last (the scalar pass keeps
    /// them in memory, one per byte of a row); the same u32 arithmetic. Returns the bytes of each
    /// row done.
    #[target_feature(enable = "avx2")]
    pub unsafe fn column_strips(
        src: &[u8],
        dst: &mut [u8],
        row_len: usize,
        n: usize,
        w: BoxWeights,
        rows: PassRows,
        from: usize,
    ) -> usize {
        let strips = (row_len - from) / 32;
        let (ww, fw) = (
            _mm256_set1_epi32(w.ww as i32),
            _mm256_set1_epi32(w.fw as i32),
        );
        let round = _mm256_set1_epi32(1 << 23);
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let (first_times, last_times, ahead) = rows.start();
        // 32 bytes at column `x` of row `i`, as four vectors of eight u32.
        let load = |i: usize, x: usize| -> [__m256i; 4] {
            let v = _mm256_loadu_si256(
                src[i * row_len + x..i * row_len + x + 32].as_ptr() as *const __m256i
            );
            let (lo, hi) = (_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)]
                .map(|p| _mm256_cvtepu8_epi32(p))
        };
        for strip in 0..strips {
            let x = from + strip * 32;
            let (f, l) = (load(0, x), load(rows.last, x));
            let (ft, lt) = (
                _mm256_set1_epi32(first_times as i32),
                _mm256_set1_epi32(last_times as i32),
            );
            let mut acc: [__m256i; 4] = std::array::from_fn(|k| {
                _mm256_add_epi32(_mm256_mullo_epi32(f[k], ft), _mm256_mullo_epi32(l[k], lt))
            });
            for i in 0..ahead {
                let v = load(i, x);
                for k in 0..4 {
                    acc[k] = _mm256_add_epi32(acc[k], v[k]);
                }
            }
            for y in 0..n {
                let [sub, add, left, right] = rows.plan(y);
                let (vs, va, vl, vr) = (load(sub, x), load(add, x), load(left, x), load(right, x));
                let mut out = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    acc[k] = _mm256_sub_epi32(_mm256_add_epi32(acc[k], va[k]), vs[k]);
                    let bulk = _mm256_add_epi32(
                        _mm256_mullo_epi32(acc[k], ww),
                        _mm256_mullo_epi32(_mm256_add_epi32(vl[k], vr[k]), fw),
                    );
                    out[k] = _mm256_srli_epi32::<24>(_mm256_add_epi32(bulk, round));
                }
                // Outputs are 0..=255, so the signed saturating packs are exact; the permute
                // undoes their per-half interleaving.
                let packed = _mm256_packus_epi16(
                    _mm256_packus_epi32(out[0], out[1]),
                    _mm256_packus_epi32(out[2], out[3]),
                );
                let bytes = _mm256_permutevar8x32_epi32(packed, order);
                let d = &mut dst[y * row_len + x..y * row_len + x + 32];
                _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, bytes);
            }
        }
        from + strips * 32
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BoxWeights, PassRows};

    /// [`super::avx2::column_strips`] over 64-byte strips from byte 0, sixteen u32 lanes per
    /// register; returns the bytes of each row done.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn column_strips(
        src: &[u8],
        dst: &mut [u8],
        row_len: usize,
        n: usize,
        w: BoxWeights,
        rows: PassRows,
    ) -> usize {
        let strips = row_len / 64;
        let (ww, fw) = (
            _mm512_set1_epi32(w.ww as i32),
            _mm512_set1_epi32(w.fw as i32),
        );
        let round = _mm512_set1_epi32(1 << 23);
        let (first_times, last_times, ahead) = rows.start();
        let (ft, lt) = (
            _mm512_set1_epi32(first_times as i32),
            _mm512_set1_epi32(last_times as i32),
        );
        // 64 bytes at column `x` of row `i`, as four vectors of sixteen u32.
        let load = |i: usize, x: usize| -> [__m512i; 4] {
            let row = &src[i * row_len + x..i * row_len + x + 64];
            std::array::from_fn(|k| {
                _mm512_cvtepu8_epi32(_mm_loadu_si128(row[16 * k..].as_ptr() as *const __m128i))
            })
        };
        for strip in 0..strips {
            let x = strip * 64;
            let (f, l) = (load(0, x), load(rows.last, x));
            let mut acc: [__m512i; 4] = std::array::from_fn(|k| {
                _mm512_add_epi32(_mm512_mullo_epi32(f[k], ft), _mm512_mullo_epi32(l[k], lt))
            });
            for i in 0..ahead {
                let v = load(i, x);
                for k in 0..4 {
                    acc[k] = _mm512_add_epi32(acc[k], v[k]);
                }
            }
            for y in 0..n {
                let [sub, add, left, right] = rows.plan(y);
                let (vs, va, vl, vr) = (load(sub, x), load(add, x), load(left, x), load(right, x));
                let d = &mut dst[y * row_len + x..y * row_len + x + 64];
                for k in 0..4 {
                    acc[k] = _mm512_sub_epi32(_mm512_add_epi32(acc[k], va[k]), vs[k]);
                    let bulk = _mm512_add_epi32(
                        _mm512_mullo_epi32(acc[k], ww),
                        _mm512_mullo_epi32(_mm512_add_epi32(vl[k], vr[k]), fw),
                    );
                    // 0..=255 after the shift: the truncating narrow is exact.
                    let out = _mm512_srli_epi32::<24>(_mm512_add_epi32(bulk, round));
                    _mm_storeu_si128(
                        d[16 * k..].as_mut_ptr() as *mut __m128i,
                        _mm512_cvtepi32_epi8(out),
                    );
                }
            }
        }
        strips * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_image_stays_flat() {
        let mut d = vec![77u8; 20 * 10 * 3];
        Blur::new().gaussian(&mut d, 20, 10, 1.7);
        assert!(d.iter().all(|&v| v == 77));
    }

    #[test]
    fn blur_preserves_mass_roughly_and_spreads_a_dot() {
        let (w, h) = (31, 31);
        let mut d = vec![0u8; w * h * 3];
        let c = (15 * w + 15) * 3;
        d[c..c + 3].fill(255);
        Blur::new().gaussian(&mut d, w, h, 2.0);
        let centre = d[c] as i32;
        let near = d[c + 3] as i32;
        let far = d[(15 * w + 25) * 3] as i32;
        assert!(centre > near && near > far, "{centre} {near} {far}");
        let total: i32 = d.iter().step_by(3).map(|&v| v as i32).sum();
        assert!((total - 255).abs() < 40, "{total}");
    }

    /// The SIMD strips (AVX-512 64-byte, AVX2 32-byte) and the scalar tail give the scalar pass's
    /// bytes, for row lengths that exercise every combination and several radii.
    #[test]
    fn simd_passes_equal_the_scalar_pass() {
        for row_len in [3usize, 30, 63, 64, 96, 97, 130, 672] {
            for (n, sigma) in [(1usize, 0.4f32), (7, 1.0), (40, 2.0), (13, 5.0)] {
                let src: Vec<u8> = (0..row_len * n).map(|i| (i * 131 + i / 7) as u8).collect();
                let w = BoxWeights::new(box_radius(sigma, 3));
                let rows = PassRows::new(n, w.radius);
                let mut want = vec![0u8; src.len()];
                let mut acc = vec![0u32; row_len];
                column_pass_scalar(&src, &mut want, row_len, n, w, rows, 0, &mut acc);
                let mut got = vec![0u8; src.len()];
                column_pass(&src, &mut got, row_len, n, w, &mut acc);
                assert_eq!(got, want, "row_len {row_len} n {n} sigma {sigma}");
            }
        }
    }

    #[test]
    fn tiny_images_and_huge_radii_do_not_panic() {
        for (w, h) in [(1, 1), (1, 7), (7, 1), (3, 2)] {
            let mut d: Vec<u8> = (0..w * h * 3).map(|i| (i * 40) as u8).collect();
            Blur::new().gaussian(&mut d, w, h, 5.0);
        }
    }
}
