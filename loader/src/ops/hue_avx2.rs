//! The hue shift of `hue_avx512.rs` with AVX2: the same arithmetic (see there for why it gives
//! Pillow's bytes) on two 8-lane halves of each 16-pixel block, with compare results as lane masks
//! and 8-entry `vpermd` tables. Tested for every colour against the scalar code in `color.rs`.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::hue_avx512::{BASE, SECTOR_CONTROL, SIGN, WRAP_CODE};
use super::rgb_avx2::{load16, widen, BLOCK};

/// Shifts the hue of `data` (packed RGB; a multiple of 16 pixels is processed, the rest is left to
/// the caller) by `shift`; returns how many bytes were processed.
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller).
#[target_feature(enable = "avx2")]
pub unsafe fn adjust_hue_avx2(data: &mut [u8], shift: u8) -> usize {
    let shift = _mm256_set1_epi32(shift as i32);
    // Bytes 0..12 of each 128-bit lane: the four pixels' R, G, B without the fourth byte.
    let compact = _mm256_setr_epi8(
        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13,
        14, -1, -1, -1, -1,
    );
    let mut blocks = data.chunks_exact_mut(BLOCK);
    for c in &mut blocks {
        let [r, g, b] = load16(c).map(|v| widen(v));
        let half = |h: usize| _mm256_shuffle_epi8(shift8(r[h], g[h], b[h], shift), compact);
        let (lo, hi) = (half(0), half(1));
        // Four 12-byte pieces, in order, joined into three 16-byte stores.
        let q = [
            _mm256_castsi256_si128(lo),
            _mm256_extracti128_si256::<1>(lo),
            _mm256_castsi256_si128(hi),
            _mm256_extracti128_si256::<1>(hi),
        ];
        let out = [
            _mm_or_si128(q[0], _mm_slli_si128::<12>(q[1])),
            _mm_or_si128(_mm_srli_si128::<4>(q[1]), _mm_slli_si128::<8>(q[2])),
            _mm_or_si128(_mm_srli_si128::<8>(q[2]), _mm_slli_si128::<4>(q[3])),
        ];
        for (k, v) in out.into_iter().enumerate() {
            _mm_storeu_si128(c.as_mut_ptr().add(16 * k) as *mut __m128i, v);
        }
    }
    let n = data.len();
    n - n % BLOCK
}

/// `a ≥ b` per lane as an all-ones mask.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ge(a: __m256i, b: __m256i) -> __m256i {
    _mm256_cmpeq_epi32(_mm256_max_epi32(a, b), a)
}

/// The hue shift of 8 pixels given as i32 lanes; returns lanes `R | G << 8 | B << 16`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn shift8(r: __m256i, g: __m256i, b: __m256i, shift: __m256i) -> __m256i {
    let i32s = _mm256_set1_epi32;
    let f32s = _mm256_set1_ps;
    let table = |t: &[f32; 16]| _mm256_loadu_ps(t.as_ptr());

    // RGB → HSV.
    let v = _mm256_max_epi32(r, _mm256_max_epi32(g, b));
    let min = _mm256_min_epi32(r, _mm256_min_epi32(g, b));
    let cr = _mm256_sub_epi32(v, min);
    let sum = _mm256_add_epi32(r, _mm256_add_epi32(g, b));
    let d = _mm256_sub_epi32(_mm256_add_epi32(_mm256_add_epi32(v, v), min), sum);
    let crf = _mm256_cvtepi32_ps(cr);
    let t = _mm256_div_ps(_mm256_cvtepi32_ps(d), crf);
    let vf = _mm256_max_ps(_mm256_cvtepi32_ps(v), f32s(1.0));
    let s = _mm256_cvttps_epi32(_mm256_div_ps(_mm256_mul_ps(crf, f32s(255.0)), vf));
    let code = _mm256_or_si256(
        _mm256_and_si256(ge(r, g), i32s(1)),
        _mm256_or_si256(
            _mm256_and_si256(ge(g, b), i32s(2)),
            _mm256_and_si256(ge(r, b), i32s(4)),
        ),
    );
    // sign · t is exact, so the sum is one rounding, as the fused form in the AVX-512 code.
    let h = _mm256_add_ps(
        _mm256_permutevar8x32_ps(table(&BASE), code),
        _mm256_mul_ps(t, _mm256_permutevar8x32_ps(table(&SIGN), code)),
    );
    let h6 = _mm256_div_ps(h, f32s(6.0));
    let wrap = _mm256_castsi256_ps(_mm256_cmpeq_epi32(code, i32s(WRAP_CODE)));
    let h6 = _mm256_add_ps(h6, _mm256_and_ps(wrap, f32s(1.0)));
    let h = _mm256_cvttps_epi32(_mm256_mul_ps(h6, f32s(255.0)));

    // Shift, then HSV → RGB.
    let h = _mm256_and_si256(_mm256_add_epi32(h, shift), i32s(255));
    let sector = _mm256_srli_epi32::<16>(_mm256_mullo_epi32(h, i32s(1543)));
    let rem = _mm256_sub_epi32(
        _mm256_mullo_epi32(h, i32s(6)),
        _mm256_mullo_epi32(sector, i32s(255)),
    );
    let even = _mm256_cmpeq_epi32(_mm256_and_si256(sector, i32s(1)), _mm256_setzero_si256());
    let factor = _mm256_blendv_epi8(rem, _mm256_sub_epi32(i32s(255), rem), even);
    let vs = _mm256_mullo_epi32(v, s);
    let x = _mm256_add_epi32(vs, i32s(128));
    let p = _mm256_sub_epi32(
        v,
        _mm256_srli_epi32::<8>(_mm256_add_epi32(x, _mm256_srli_epi32::<8>(x))),
    );
    let n = _mm256_add_epi32(_mm256_mullo_epi32(vs, factor), i32s(32512));
    let qt = _mm256_sub_epi32(
        v,
        _mm256_cvttps_epi32(_mm256_div_ps(_mm256_cvtepi32_ps(n), f32s(65025.0))),
    );
    let packed = _mm256_or_si256(
        v,
        _mm256_or_si256(_mm256_slli_epi32::<8>(qt), _mm256_slli_epi32::<16>(p)),
    );
    let control = _mm256_add_epi32(
        _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256(SECTOR_CONTROL.as_ptr() as *const __m256i),
            sector,
        ),
        _mm256_setr_epi32(
            0, 0x04_0404, 0x08_0808, 0x0C_0C0C, 0, 0x04_0404, 0x08_0808, 0x0C_0C0C,
        ),
    );
    _mm256_shuffle_epi8(packed, control)
}
