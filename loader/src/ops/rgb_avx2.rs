//! AVX2 building blocks for ops on packed RGB: split 16 pixels (48 bytes) into R, G and B vectors
//! with byte shuffles and put them back, widen 16 bytes to two 8-lane i32 vectors and narrow them
//! again with saturation. The colour ops load pixels this way instead of byte by byte, so each op
//! is a handful of vector instructions per 16 pixels.
//!
//! Every function here needs AVX2 (callers check `is_x86_feature_detected!("avx2")`).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// Bytes per block of 16 RGB pixels.
pub const BLOCK: usize = 48;

/// Shuffle masks: for output channel `c`, which byte of input vector `k` (0..3) lands in lane i
/// (−1 = zero). Channel c of pixel i sits at byte 3i + c of the 48.
const fn split_mask(c: usize, k: usize) -> [i8; 16] {
    let mut m = [-1i8; 16];
    let mut i = 0;
    while i < 16 {
        let byte = 3 * i + c;
        if byte / 16 == k {
            m[i] = (byte % 16) as i8;
        }
        i += 1;
    }
    m
}

/// For output vector `k` (bytes 16k..16k+16 of the block), which lane of channel `c` goes where.
const fn join_mask(c: usize, k: usize) -> [i8; 16] {
    let mut m = [-1i8; 16];
    let mut j = 0;
    while j < 16 {
        let byte = 16 * k + j;
        if byte % 3 == c {
            m[j] = (byte / 3) as i8;
        }
        j += 1;
    }
    m
}

const SPLIT: [[[i8; 16]; 3]; 3] = {
    let mut t = [[[0i8; 16]; 3]; 3];
    let mut c = 0;
    while c < 3 {
        let mut k = 0;
        while k < 3 {
            t[c][k] = split_mask(c, k);
            k += 1;
        }
        c += 1;
    }
    t
};

const JOIN: [[[i8; 16]; 3]; 3] = {
    let mut t = [[[0i8; 16]; 3]; 3];
    let mut k = 0;
    while k < 3 {
        let mut c = 0;
        while c < 3 {
            t[k][c] = join_mask(c, k);
            c += 1;
        }
        k += 1;
    }
    t
};

#[inline(always)]
unsafe fn mask(m: &[i8; 16]) -> __m128i {
    _mm_loadu_si128(m.as_ptr() as *const __m128i)
}

/// Loads 16 pixels from `p[..48]` as (R, G, B), one byte per lane.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn load16(p: &[u8]) -> [__m128i; 3] {
    debug_assert!(p.len() >= BLOCK);
    let v = [
        _mm_loadu_si128(p.as_ptr() as *const __m128i),
        _mm_loadu_si128(p.as_ptr().add(16) as *const __m128i),
        _mm_loadu_si128(p.as_ptr().add(32) as *const __m128i),
    ];
    std::array::from_fn(|c| {
        let s = &SPLIT[c];
        _mm_or_si128(
            _mm_or_si128(
                _mm_shuffle_epi8(v[0], mask(&s[0])),
                _mm_shuffle_epi8(v[1], mask(&s[1])),
            ),
            _mm_shuffle_epi8(v[2], mask(&s[2])),
        )
    })
}

/// Stores (R, G, B) of 16 pixels into `p[..48]`, packed.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn store16(p: &mut [u8], rgb: [__m128i; 3]) {
    debug_assert!(p.len() >= BLOCK);
    for (k, j) in JOIN.iter().enumerate() {
        let v = _mm_or_si128(
            _mm_or_si128(
                _mm_shuffle_epi8(rgb[0], mask(&j[0])),
                _mm_shuffle_epi8(rgb[1], mask(&j[1])),
            ),
            _mm_shuffle_epi8(rgb[2], mask(&j[2])),
        );
        _mm_storeu_si128(p.as_mut_ptr().add(16 * k) as *mut __m128i, v);
    }
}

/// 16 bytes → lanes 0..8 and 8..16 as i32.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn widen(v: __m128i) -> [__m256i; 2] {
    [
        _mm256_cvtepu8_epi32(v),
        _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(v)),
    ]
}

/// Two 8-lane i32 vectors → 16 bytes, each lane clamped to 0..=255 (what a saturating `as u8`
/// of the value does).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn narrow(v: [__m256i; 2]) -> __m128i {
    // packus_epi32 works within 128-bit halves: [a0..3 b0..3 | a4..7 b4..7]; put a before b.
    let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(v[0], v[1]));
    _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w))
}

/// `(x as f32 - deg) * alpha + deg` truncated and saturated to u8, lane-wise, for 8 lanes of i32:
/// exactly the scalar `blend` (separate multiply and add, as the scalar code rounds).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn blend8(deg: __m256, x: __m256i, alpha: __m256) -> __m256i {
    let xf = _mm256_cvtepi32_ps(x);
    let v = _mm256_add_ps(deg, _mm256_mul_ps(alpha, _mm256_sub_ps(xf, deg)));
    // Truncation toward zero; values here are far inside i32, negatives clamp to 0 in `narrow`.
    _mm256_cvttps_epi32(v)
}

/// Pillow's luma `(19595 R + 38470 G + 7471 B + 2^15) >> 16` for 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn luma8(r: __m256i, g: __m256i, b: __m256i) -> __m256i {
    let s = _mm256_add_epi32(
        _mm256_add_epi32(
            _mm256_mullo_epi32(r, _mm256_set1_epi32(19595)),
            _mm256_mullo_epi32(g, _mm256_set1_epi32(38470)),
        ),
        _mm256_add_epi32(
            _mm256_mullo_epi32(b, _mm256_set1_epi32(7471)),
            _mm256_set1_epi32(0x8000),
        ),
    );
    _mm256_srli_epi32::<16>(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_round_trip_and_widen_narrow() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let block: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(37)).collect();
        // SAFETY: AVX2 checked above.
        unsafe {
            let [r, g, b] = load16(&block);
            let mut lanes = [[0u8; 16]; 3];
            for (l, v) in lanes.iter_mut().zip([r, g, b]) {
                _mm_storeu_si128(l.as_mut_ptr() as *mut __m128i, v);
            }
            for i in 0..16 {
                assert_eq!(
                    [lanes[0][i], lanes[1][i], lanes[2][i]],
                    block[3 * i..3 * i + 3]
                );
            }
            let mut out = vec![0u8; 48];
            store16(&mut out, [narrow(widen(r)), g, b]);
            assert_eq!(out, block);
            let big = _mm256_setr_epi32(-5, 0, 255, 256, 1000, 7, -1, 128);
            let n = narrow([big, big]);
            let mut got = [0u8; 16];
            _mm_storeu_si128(got.as_mut_ptr() as *mut __m128i, n);
            assert_eq!(got[..8], [0, 0, 255, 255, 255, 7, 0, 128]);
        }
    }
}
