//! The ImageEnhance blends of `color.rs` with AVX-512 (F, BW and VBMI), the scalar code's bytes
//! (tested against it for every colour or byte value in `color.rs`). Like `color_avx2`, each
//! function does whole blocks and returns how many bytes it did.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::rgb_avx512::{for_each_block, join_lanes, map_pixels};

/// Pillow's luma `(19595 R + 38470 G + 7471 B + 2^15) >> 16` of 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn luma16(r: __m512i, g: __m512i, b: __m512i) -> __m512i {
    _mm512_srli_epi32::<16>(_mm512_add_epi32(
        _mm512_add_epi32(
            _mm512_mullo_epi32(r, _mm512_set1_epi32(19595)),
            _mm512_mullo_epi32(g, _mm512_set1_epi32(38470)),
        ),
        _mm512_add_epi32(
            _mm512_mullo_epi32(b, _mm512_set1_epi32(7471)),
            _mm512_set1_epi32(0x8000),
        ),
    ))
}

/// Sum of Pillow's luma over the whole 16-pixel blocks of `data`; returns (sum, bytes covered).
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn luma_sum(data: &[u8]) -> (u64, usize) {
    let mut total = 0u64;
    let mut acc = _mm512_setzero_si512();
    let mut blocks = 0u32;
    let done = for_each_block(data, |[r, g, b]| {
        acc = _mm512_add_epi32(acc, luma16(r, g, b));
        blocks += 1;
        // A lane gains at most 255 per block: flush to u64 long before u32 could overflow.
        if blocks == 1 << 20 {
            total += _mm512_reduce_add_epi64(_mm512_add_epi64(
                _mm512_cvtepu32_epi64(_mm512_castsi512_si256(acc)),
                _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(acc)),
            )) as u64;
            acc = _mm512_setzero_si512();
            blocks = 0;
        }
    });
    total += _mm512_reduce_add_epi64(_mm512_add_epi64(
        _mm512_cvtepu32_epi64(_mm512_castsi512_si256(acc)),
        _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(acc)),
    )) as u64;
    (total, done)
}

/// `blend(deg, x, alpha)` for every byte, 64 at a time, as a lookup in the scalar code's
/// 256-entry table (so exact by construction): two 128-entry `vpermt2b` lookups on the low seven
/// bits, chosen by the top bit.
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn blend_bytes(data: &mut [u8], deg: f32, alpha: f32) -> usize {
    let lut = super::color::blend_lut(deg, alpha);
    let t: [__m512i; 4] =
        std::array::from_fn(|k| _mm512_loadu_si512(lut[64 * k..].as_ptr() as *const _));
    for c in data.chunks_exact_mut(64) {
        let p = c.as_mut_ptr() as *mut __m512i;
        let x = _mm512_loadu_si512(p as *const _);
        let low = _mm512_permutex2var_epi8(t[0], x, t[1]);
        let high = _mm512_permutex2var_epi8(t[2], x, t[3]);
        _mm512_storeu_si512(
            p as *mut _,
            _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high),
        );
    }
    let n = data.len();
    n - n % 64
}

/// `(x − deg)·alpha + deg` on 16 lanes (no fused multiply-add: the scalar code rounds the product),
/// truncated and clamped to 0..=255 as the saturating `as u8`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn blend16(deg: __m512, x: __m512i, alpha: __m512) -> __m512i {
    let xf = _mm512_cvtepi32_ps(x);
    let v = _mm512_cvttps_epi32(_mm512_add_ps(
        deg,
        _mm512_mul_ps(alpha, _mm512_sub_ps(xf, deg)),
    ));
    _mm512_min_epi32(
        _mm512_max_epi32(v, _mm512_setzero_si512()),
        _mm512_set1_epi32(255),
    )
}

/// Saturation: each channel blended with the pixel's luma, 16 pixels at a time.
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn saturation(data: &mut [u8], alpha: f32) -> usize {
    let alphav = _mm512_set1_ps(alpha);
    map_pixels(data, |[r, g, b]| {
        let l = _mm512_cvtepi32_ps(luma16(r, g, b));
        join_lanes(
            blend16(l, r, alphav),
            blend16(l, g, alphav),
            blend16(l, b, alphav),
        )
    })
}
