//! Antialiased bilinear resampling, as Pillow's `Image.resize(size, BILINEAR, box)` computes it
//! (torchvision's `resized_crop` on PIL images calls exactly this): a triangle filter whose support
//! widens with the downscale factor, fixed-point coefficients with 22 fractional bits, a horizontal
//! pass over only the rows the vertical pass needs, clipping to 8 bits between the passes.

use super::transpose::transpose_rgb;
use crate::image::ImageView;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per-output-pixel tap ranges and fixed-point weights along one axis.
#[derive(Debug, Default, Clone)]
struct Taps {
    /// First input index and tap count per output index.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output index.
    weights: Vec<i32>,
    ksize: usize,
    /// Float weights of one output index before normalisation (kept to avoid reallocating).
    scratch: Vec<f64>,
}

impl Taps {
    fn compute(&mut self, in_size: usize, in0: f64, in1: f64, out_size: usize) {
        let scale = (in1 - in0) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // bilinear support 1.0 × filterscale
        let ksize = support.ceil() as usize * 2 + 1;
        self.ksize = ksize;
        self.bounds.clear();
        self.weights.clear();
        self.weights.resize(out_size * ksize, 0);
        let mut k = std::mem::take(&mut self.scratch);
        k.clear();
        k.resize(ksize, 0.0);
        let ss = 1.0 / filterscale;
        for xx in 0..out_size {
            let center = in0 + (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; the values are clamped right after.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(n) {
                let t = ((x + xmin) as f64 - center + 0.5) * ss;
                let w = if t.abs() < 1.0 { 1.0 - t.abs() } else { 0.0 };
                *kx = w;
                ww += w;
            }
            let out = &mut self.weights[xx * ksize..(xx + 1) * ksize];
            for x in 0..n {
                let w = if ww != 0.0 { k[x] / ww } else { k[x] };
                let f = w * (1u32 << PRECISION_BITS) as f64;
                out[x] = if w < 0.0 {
                    (-0.5 + f) as i32
                } else {
                    (0.5 + f) as i32
                };
            }
            self.bounds.push((xmin, n));
        }
        self.scratch = k;
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Reusable buffers of the resampler (one per worker).
#[derive(Debug, Default)]
pub struct Resizer {
    horiz: Taps,
    vert: Taps,
    tmp: Vec<u8>,
    acc: Vec<i32>,
    /// The rows the horizontal pass reads, transposed, and its output before transposing back.
    src_t: Vec<u8>,
    out_t: Vec<u8>,
}

impl Resizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resamples the `box_` (x0, y0, x1, y1, in `src` pixels, may be fractional) of `src` to
    /// `out_w × out_h`, writing packed RGB into `dst`. Filter taps never read outside `src`, so
    /// passing the crop as `src` with the box (0, 0, w, h) equals torchvision's crop-then-resize.
    pub fn resize(
        &mut self,
        src: ImageView,
        box_: [f64; 4],
        out_w: usize,
        out_h: usize,
        dst: &mut [u8],
    ) {
        assert_eq!(dst.len(), out_w * out_h * 3, "destination size");
        let [x0, y0, x1, y1] = box_;
        let need_h = out_w != src.width || x0 != 0.0 || x1 != src.width as f64;
        let need_v = out_h != src.height || y0 != 0.0 || y1 != src.height as f64;
        self.horiz.compute(src.width, x0, x1, out_w);
        self.vert.compute(src.height, y0, y1, out_h);

        if !need_h && !need_v {
            for y in 0..out_h {
                dst[y * out_w * 3..(y + 1) * out_w * 3].copy_from_slice(src.row(y));
            }
            return;
        }
        if !need_h {
            return vertical(src, &self.vert, 0, out_w, out_h, dst, &mut self.acc);
        }
        // Rows the vertical pass will read.
        let first = self.vert.bounds[0].0;
        let last = self
            .vert
            .bounds
            .iter()
            .map(|&(s, n)| s + n)
            .max()
            .unwrap_or(first);
        let rows = if need_v { last - first } else { out_h };
        let first = if need_v { first } else { 0 };
        self.tmp.resize(out_w * rows * 3, 0);
        // The horizontal pass runs as a column pass on the transposed rows: each output column is
        // a weighted sum of whole input columns, so the inner loop is straight vector code. The
        // sums (same taps, same order, same rounding) are exactly Pillow's.
        let w = src.width;
        self.src_t.resize(w * rows * 3, 0);
        transpose_rgb(src.crop(0, first, w, rows), &mut self.src_t);
        let t_view = ImageView {
            data: &self.src_t,
            width: rows,
            height: w,
            stride: rows * 3,
        };
        self.out_t.resize(out_w * rows * 3, 0);
        vertical(
            t_view,
            &self.horiz,
            0,
            rows,
            out_w,
            &mut self.out_t,
            &mut self.acc,
        );
        let out_t_view = ImageView {
            data: &self.out_t,
            width: rows,
            height: out_w,
            stride: rows * 3,
        };
        transpose_rgb(out_t_view, &mut self.tmp);
        let tmp = ImageView {
            data: &self.tmp,
            width: out_w,
            height: rows,
            stride: out_w * 3,
        };
        if need_v {
            vertical(tmp, &self.vert, first, out_w, out_h, dst, &mut self.acc);
        } else {
            dst.copy_from_slice(&self.tmp[..out_w * out_h * 3]);
        }
    }
}

/// Vertical pass; `first` is the source row that `src` row 0 corresponds to.
fn vertical(
    src: ImageView,
    taps: &Taps,
    first: usize,
    out_w: usize,
    out_h: usize,
    dst: &mut [u8],
    acc: &mut Vec<i32>,
) {
    let ks = taps.ksize;
    let row_len = out_w * 3;
    for yy in 0..out_h {
        let (ymin, n) = taps.bounds[yy];
        let k = &taps.weights[yy * ks..yy * ks + n];
        let out = &mut dst[yy * row_len..(yy + 1) * row_len];
        // 64-byte blocks with AVX-512, then 32-byte blocks with AVX2, then the scalar tail.
        let done =
            simd_bulk!("avx512f", avx512::vertical_row(src, ymin - first, k, out)).unwrap_or(0);
        let done =
            simd_bulk!("avx2", avx2::vertical_row(src, ymin - first, k, out, done)).unwrap_or(done);
        vertical_row_scalar(src, ymin - first, k, done, out, acc);
    }
}

/// Bytes `from..` of one output row: Σ taps of the source rows starting at `row0`.
fn vertical_row_scalar(
    src: ImageView,
    row0: usize,
    k: &[i32],
    from: usize,
    out: &mut [u8],
    acc: &mut Vec<i32>,
) {
    let len = out.len() - from;
    if len == 0 {
        return;
    }
    acc.clear();
    acc.resize(len, 1i32 << (PRECISION_BITS - 1));
    for (i, &w) in k.iter().enumerate() {
        let row = &src.row(row0 + i)[from..from + len];
        for (a, &p) in acc.iter_mut().zip(row) {
            *a += p as i32 * w;
        }
    }
    for (d, &a) in out[from..].iter_mut().zip(acc.iter()) {
        *d = clip8(a);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::PRECISION_BITS;
    use crate::image::ImageView;

    /// The vertical pass for the whole 32-byte blocks of one output row from byte `from` on,
    /// accumulators in registers across all taps (Pillow's i32 fixed point, same sums); returns
    /// the bytes done.
    #[target_feature(enable = "avx2")]
    pub unsafe fn vertical_row(
        src: ImageView,
        row0: usize,
        k: &[i32],
        out: &mut [u8],
        from: usize,
    ) -> usize {
        let blocks = (out.len() - from) / 32;
        let init = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for b in 0..blocks {
            let x = from + b * 32;
            let mut a = [init; 4];
            for (i, &w) in k.iter().enumerate() {
                let row = &src.row(row0 + i)[x..x + 32];
                let v = _mm256_loadu_si256(row.as_ptr() as *const __m256i);
                let wv = _mm256_set1_epi32(w);
                let (lo, hi) = (_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
                let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
                for (acc, part) in a.iter_mut().zip(parts) {
                    *acc =
                        _mm256_add_epi32(*acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(part), wv));
                }
            }
            const SHIFT: i32 = PRECISION_BITS as i32;
            let s = a.map(|v| _mm256_srai_epi32::<SHIFT>(v));
            // Saturating packs clamp to 0..=255 as clip8 does; they interleave 4-byte groups
            // across the two 128-bit halves, which the permute puts back in order.
            let packed = _mm256_packus_epi16(
                _mm256_packus_epi32(s[0], s[1]),
                _mm256_packus_epi32(s[2], s[3]),
            );
            let bytes = _mm256_permutevar8x32_epi32(packed, order);
            _mm256_storeu_si256(out[x..x + 32].as_mut_ptr() as *mut __m256i, bytes);
        }
        from + blocks * 32
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::PRECISION_BITS;
    use crate::image::ImageView;

    /// [`super::avx2::vertical_row`] over 64-byte blocks from byte 0 with sixteen i32 lanes per
    /// register; returns the bytes done.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn vertical_row(src: ImageView, row0: usize, k: &[i32], out: &mut [u8]) -> usize {
        let blocks = out.len() / 64;
        let init = _mm512_set1_epi32(1 << (PRECISION_BITS - 1));
        const SHIFT: u32 = PRECISION_BITS;
        for b in 0..blocks {
            let x = b * 64;
            let mut a = [init; 4];
            for (i, &w) in k.iter().enumerate() {
                let row = &src.row(row0 + i)[x..x + 64];
                let wv = _mm512_set1_epi32(w);
                for (q, acc) in a.iter_mut().enumerate() {
                    let part = _mm_loadu_si128(row[16 * q..].as_ptr() as *const __m128i);
                    *acc =
                        _mm512_add_epi32(*acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(part), wv));
                }
            }
            for (q, acc) in a.into_iter().enumerate() {
                // clip8: arithmetic shift, clamp to 0..=255, then the (now exact) narrow.
                let v = _mm512_min_epi32(
                    _mm512_max_epi32(_mm512_srai_epi32::<SHIFT>(acc), _mm512_setzero_si512()),
                    _mm512_set1_epi32(255),
                );
                _mm_storeu_si128(
                    out[x + 16 * q..].as_mut_ptr() as *mut __m128i,
                    _mm512_cvtepi32_epi8(v),
                );
            }
        }
        blocks * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vertical pass's SIMD blocks (AVX-512 64-byte, AVX2 32-byte) and scalar tail give the
    /// scalar pass's bytes for row lengths that exercise every combination, down- and upscaling.
    #[test]
    fn simd_vertical_pass_equals_the_scalar_pass() {
        for out_w in [1usize, 10, 11, 21, 22, 32, 43, 224] {
            for (in_h, out_h) in [(50usize, 17usize), (17, 50), (300, 224), (9, 9)] {
                let row_len = out_w * 3;
                let data: Vec<u8> = (0..row_len * in_h)
                    .map(|i| (i * 97 + i / 5) as u8)
                    .collect();
                let src = ImageView {
                    data: &data,
                    width: out_w,
                    height: in_h,
                    stride: row_len,
                };
                let mut taps = Taps::default();
                taps.compute(in_h, 0.0, in_h as f64, out_h);
                let mut got = vec![0u8; row_len * out_h];
                let mut acc = Vec::new();
                vertical(src, &taps, 0, out_w, out_h, &mut got, &mut acc);
                let mut want = vec![0u8; row_len * out_h];
                for yy in 0..out_h {
                    let (ymin, n) = taps.bounds[yy];
                    let k = &taps.weights[yy * taps.ksize..yy * taps.ksize + n];
                    let out = &mut want[yy * row_len..(yy + 1) * row_len];
                    vertical_row_scalar(src, ymin, k, 0, out, &mut acc);
                }
                assert_eq!(got, want, "out_w {out_w}, {in_h} -> {out_h} rows");
            }
        }
    }
}
