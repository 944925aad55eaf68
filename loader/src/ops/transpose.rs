//! Transpose of a packed RGB image (3 bytes per pixel). Resize and blur run their horizontal passes
//! as column passes on the transpose, so this is on the hot path twice per pass; with AVX2 it moves
//! 8×8-pixel tiles: each row of 8 pixels is spread to 8 u32 lanes by a byte shuffle, the tile is
//! transposed as 32-bit lanes, and each column is packed back to 24 bytes.

use crate::image::ImageView;

/// `dst` (`src.width` rows of `src.height` pixels, packed) = transpose of `src`.
pub fn transpose_rgb(src: ImageView, dst: &mut [u8]) {
    let (w, h) = (src.width, src.height);
    assert!(dst.len() >= w * h * 3, "transpose destination too small");
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        unsafe { avx2::transpose_tiles(src, dst) };
        // The tiles cover the largest multiples of 8 in both directions; finish the edges.
        let (w8, h8) = (w / 8 * 8, h / 8 * 8);
        scalar(src, dst, w8..w, 0..h);
        scalar(src, dst, 0..w8, h8..h);
        return;
    }
    scalar(src, dst, 0..w, 0..h);
}

/// Scalar transpose of the pixels in columns `xs` × rows `ys`, 16×16 tiles for locality.
fn scalar(src: ImageView, dst: &mut [u8], xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) {
    const TILE: usize = 16;
    let h = src.height;
    for y0 in ys.clone().step_by(TILE) {
        for x0 in xs.clone().step_by(TILE) {
            for y in y0..(y0 + TILE).min(ys.end) {
                let row = src.row(y);
                for x in x0..(x0 + TILE).min(xs.end) {
                    let d = (x * h + y) * 3;
                    dst[d..d + 3].copy_from_slice(&row[x * 3..x * 3 + 3]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::image::ImageView;

    /// Transposes every whole 8×8 tile of `src` into `dst`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose_tiles(src: ImageView, dst: &mut [u8]) {
        let (w, h) = (src.width, src.height);
        // Pixels 0..4 from bytes 0..16, pixels 4..8 from bytes 8..24: both loads stay inside the
        // row's 24 bytes.
        let spread_lo = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
        let spread_hi = _mm_setr_epi8(4, 5, 6, -1, 7, 8, 9, -1, 10, 11, 12, -1, 13, 14, 15, -1);
        let pack = _mm256_setr_epi8(
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, //
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
        );
        let gather = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
        let rows: &[u8] = src.data;
        for y0 in (0..h / 8 * 8).step_by(8) {
            for x0 in (0..w / 8 * 8).step_by(8) {
                let r: [__m256i; 8] = std::array::from_fn(|i| {
                    let p = rows.as_ptr().add((y0 + i) * src.stride + x0 * 3);
                    let lo = _mm_shuffle_epi8(_mm_loadu_si128(p as *const __m128i), spread_lo);
                    let hi =
                        _mm_shuffle_epi8(_mm_loadu_si128(p.add(8) as *const __m128i), spread_hi);
                    _mm256_set_m128i(hi, lo)
                });
                let t = [
                    _mm256_unpacklo_epi32(r[0], r[1]),
                    _mm256_unpackhi_epi32(r[0], r[1]),
                    _mm256_unpacklo_epi32(r[2], r[3]),
                    _mm256_unpackhi_epi32(r[2], r[3]),
                    _mm256_unpacklo_epi32(r[4], r[5]),
                    _mm256_unpackhi_epi32(r[4], r[5]),
                    _mm256_unpacklo_epi32(r[6], r[7]),
                    _mm256_unpackhi_epi32(r[6], r[7]),
                ];
                let u = [
                    _mm256_unpacklo_epi64(t[0], t[2]),
                    _mm256_unpackhi_epi64(t[0], t[2]),
                    _mm256_unpacklo_epi64(t[1], t[3]),
                    _mm256_unpackhi_epi64(t[1], t[3]),
                    _mm256_unpacklo_epi64(t[4], t[6]),
                    _mm256_unpackhi_epi64(t[4], t[6]),
                    _mm256_unpacklo_epi64(t[5], t[7]),
                    _mm256_unpackhi_epi64(t[5], t[7]),
                ];
                let c = [
                    _mm256_permute2x128_si256::<0x20>(u[0], u[4]),
                    _mm256_permute2x128_si256::<0x20>(u[1], u[5]),
                    _mm256_permute2x128_si256::<0x20>(u[2], u[6]),
                    _mm256_permute2x128_si256::<0x20>(u[3], u[7]),
                    _mm256_permute2x128_si256::<0x31>(u[0], u[4]),
                    _mm256_permute2x128_si256::<0x31>(u[1], u[5]),
                    _mm256_permute2x128_si256::<0x31>(u[2], u[6]),
                    _mm256_permute2x128_si256::<0x31>(u[3], u[7]),
                ];
                for (j, col) in c.into_iter().enumerate() {
                    let packed =
                        _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(col, pack), gather);
                    let d = &mut dst[((x0 + j) * h + y0) * 3..((x0 + j) * h + y0) * 3 + 24];
                    _mm_storeu_si128(
                        d.as_mut_ptr() as *mut __m128i,
                        _mm256_castsi256_si128(packed),
                    );
                    _mm_storel_epi64(
                        d.as_mut_ptr().add(16) as *mut __m128i,
                        _mm256_extracti128_si256::<1>(packed),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_definition_for_odd_sizes_and_strides() {
        for (w, h, pad) in [
            (8, 8, 0),
            (23, 17, 5),
            (1, 9, 0),
            (16, 3, 2),
            (37, 40, 1),
            (0, 4, 0),
        ] {
            let stride = w * 3 + pad;
            let data: Vec<u8> = (0..stride * h).map(|i| (i * 7 + i / 13) as u8).collect();
            let src = ImageView {
                data: &data,
                width: w,
                height: h,
                stride,
            };
            let mut got = vec![0u8; w * h * 3];
            transpose_rgb(src, &mut got);
            for y in 0..h {
                for x in 0..w {
                    let s = y * stride + x * 3;
                    let d = (x * h + y) * 3;
                    assert_eq!(got[d..d + 3], data[s..s + 3], "{w}x{h} pixel ({x}, {y})");
                }
            }
        }
    }
}
