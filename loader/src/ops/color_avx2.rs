//! The ImageEnhance blends and the grayscale conversion of `color.rs`, 16 pixels at a time with
//! AVX2: the same f32 operations in the same order (so the same bytes: tested against the scalar
//! code below and in `color.rs`). Each function handles whole blocks and returns how many bytes it
//! did; the caller finishes the tail with the scalar code.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::rgb_avx2::{blend8, load16, luma8, narrow, store16, widen, BLOCK};

/// `blend(deg, x, alpha)` for every byte (brightness: deg 0; contrast: deg = mean luma).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn blend_bytes(data: &mut [u8], deg: f32, alpha: f32) -> usize {
    let (degv, alphav) = (_mm256_set1_ps(deg), _mm256_set1_ps(alpha));
    for c in data.chunks_exact_mut(16) {
        let v = _mm_loadu_si128(c.as_ptr() as *const __m128i);
        let [lo, hi] = widen(v);
        let out = narrow([blend8(degv, lo, alphav), blend8(degv, hi, alphav)]);
        _mm_storeu_si128(c.as_mut_ptr() as *mut __m128i, out);
    }
    let n = data.len();
    n - n % 16
}

/// Sum of Pillow's luma over the whole blocks of `data`; returns (sum, bytes covered).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn luma_sum(data: &[u8]) -> (u64, usize) {
    let mut total = 0u64;
    let mut chunks = data.chunks_exact(BLOCK);
    // Lanes gain at most 2 × 255 per block: flush to u64 well before i32 could overflow.
    let mut acc = _mm256_setzero_si256();
    for (i, c) in (&mut chunks).enumerate() {
        let [r, g, b] = load16(c);
        let ([r0, r1], [g0, g1], [b0, b1]) = (widen(r), widen(g), widen(b));
        acc = _mm256_add_epi32(acc, luma8(r0, g0, b0));
        acc = _mm256_add_epi32(acc, luma8(r1, g1, b1));
        if i % 65_536 == 65_535 {
            total += hsum(acc);
            acc = _mm256_setzero_si256();
        }
    }
    total += hsum(acc);
    (total, data.len() - chunks.remainder().len())
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum(v: __m256i) -> u64 {
    let mut lanes = [0u32; 8];
    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, v);
    lanes.iter().map(|&x| x as u64).sum()
}

/// Saturation: each channel blended with the pixel's luma.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn saturation(data: &mut [u8], alpha: f32) -> usize {
    let alphav = _mm256_set1_ps(alpha);
    for c in data.chunks_exact_mut(BLOCK) {
        let [r, g, b] = load16(c);
        let (r, g, b) = (widen(r), widen(g), widen(b));
        let l = [0, 1].map(|h| _mm256_cvtepi32_ps(luma8(r[h], g[h], b[h])));
        let out = [r, g, b].map(|ch| narrow([0, 1].map(|h| blend8(l[h], ch[h], alphav))));
        store16(c, out);
    }
    let n = data.len();
    n - n % BLOCK
}

/// `convert("L")` written back to all three channels.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn grayscale(data: &mut [u8]) -> usize {
    for c in data.chunks_exact_mut(BLOCK) {
        let [r, g, b] = load16(c);
        let (r, g, b) = (widen(r), widen(g), widen(b));
        let l = narrow([0, 1].map(|h| luma8(r[h], g[h], b[h])));
        store16(c, [l, l, l]);
    }
    let n = data.len();
    n - n % BLOCK
}
