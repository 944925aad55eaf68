//! The ImageEnhance blends of `color.rs` with AVX-512: sixteen f32 lanes per register, the same
//! operations in the same order as the scalar code (tested against it for every colour or byte
//! value in `color.rs`). Like `color_avx2`, each function does whole blocks and returns how many
//! bytes it did.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::rgb_avx2::{load16, store16, BLOCK};

/// `(x − deg)·alpha + deg`, truncated, clamped to 0..=255 (a saturating `as u8`), 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn blend16(deg: __m512, x: __m512i, alpha: __m512) -> __m128i {
    let xf = _mm512_cvtepi32_ps(x);
    let v = _mm512_cvttps_epi32(_mm512_add_ps(
        deg,
        _mm512_mul_ps(alpha, _mm512_sub_ps(xf, deg)),
    ));
    let clamped = _mm512_min_epi32(
        _mm512_max_epi32(v, _mm512_setzero_si512()),
        _mm512_set1_epi32(255),
    );
    _mm512_cvtepi32_epi8(clamped)
}

/// `blend(deg, x, alpha)` for every byte, 64 at a time.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn blend_bytes(data: &mut [u8], deg: f32, alpha: f32) -> usize {
    let (degv, alphav) = (_mm512_set1_ps(deg), _mm512_set1_ps(alpha));
    for c in data.chunks_exact_mut(64) {
        for q in 0..4 {
            let p = c[16 * q..].as_mut_ptr() as *mut __m128i;
            let x = _mm512_cvtepu8_epi32(_mm_loadu_si128(p));
            _mm_storeu_si128(p, blend16(degv, x, alphav));
        }
    }
    let n = data.len();
    n - n % 64
}

/// Saturation: each channel blended with the pixel's luma, 16 pixels at a time.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn saturation(data: &mut [u8], alpha: f32) -> usize {
    let alphav = _mm512_set1_ps(alpha);
    for c in data.chunks_exact_mut(BLOCK) {
        let rgb = load16(c).map(|v| _mm512_cvtepu8_epi32(v));
        let luma = _mm512_srli_epi32::<16>(_mm512_add_epi32(
            _mm512_add_epi32(
                _mm512_mullo_epi32(rgb[0], _mm512_set1_epi32(19595)),
                _mm512_mullo_epi32(rgb[1], _mm512_set1_epi32(38470)),
            ),
            _mm512_add_epi32(
                _mm512_mullo_epi32(rgb[2], _mm512_set1_epi32(7471)),
                _mm512_set1_epi32(0x8000),
            ),
        ));
        let l = _mm512_cvtepi32_ps(luma);
        store16(c, rgb.map(|ch| blend16(l, ch, alphav)));
    }
    let n = data.len();
    n - n % BLOCK
}
