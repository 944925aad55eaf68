//! Pillow's hue shift (RGB → 8-bit HSV → shift → RGB) sixteen pixels at a time with AVX2 (two 8-lane halves), doing the
//! same IEEE operations in the same order as the scalar code in `color.rs` (divisions, the f64 step,
//! truncations, round-half-away-from-zero), so the bytes are identical; every case is computed and
//! the right one selected, which removes the scalar code's unpredictable branches.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use super::rgb_avx2::{load16, narrow, store16, widen, BLOCK};

/// Shifts the hue of `data` (packed RGB; a multiple of 16 pixels is processed, the rest is left to
/// the caller) by `shift`; returns how many bytes were processed.
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn adjust_hue_avx2(data: &mut [u8], shift: u8) -> usize {
    let mut chunks = data.chunks_exact_mut(BLOCK);
    for c in &mut chunks {
        let [r, g, b] = load16(c);
        let (r, g, b) = (widen(r), widen(g), widen(b));
        let out = [0, 1].map(|h| shift8(r[h], g[h], b[h], shift));
        store16(c, [0, 1, 2].map(|ch| narrow([out[0][ch], out[1][ch]])));
    }
    let n = data.len();
    n - n % BLOCK
}

/// The hue shift of 8 pixels given as i32 lanes; returns (R, G, B) as i32 lanes in 0..=255.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn shift8(ri: __m256i, gi: __m256i, bi: __m256i, shift: u8) -> [__m256i; 3] {
    let one = _mm256_set1_ps(1.0);
    let c255 = _mm256_set1_ps(255.0);
    let c6 = _mm256_set1_ps(6.0);
    let half = _mm256_set1_ps(0.5);
    let i0 = _mm256_setzero_si256();
    let i255 = _mm256_set1_epi32(255);
    let shift_v = _mm256_set1_epi32(shift as i32);
    let maxi = _mm256_max_epi32(ri, _mm256_max_epi32(gi, bi));
    let mini = _mm256_min_epi32(ri, _mm256_min_epi32(gi, bi));
    let maxf = _mm256_cvtepi32_ps(maxi);
    let cr = _mm256_cvtepi32_ps(_mm256_sub_epi32(maxi, mini));
    let s = _mm256_div_ps(cr, maxf);
    // (max − x) / cr is 0 for the largest channel and exactly 1 for the smallest (cr / cr), so of
    // the scalar code's three divisions only the middle channel's is a real one: do that one and
    // select, which gives the same three floats.
    let cri = _mm256_sub_epi32(maxi, mini);
    let mid = _mm256_sub_epi32(
        _mm256_add_epi32(ri, _mm256_add_epi32(gi, bi)),
        _mm256_add_epi32(maxi, mini),
    );
    let m = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxi, mid)), cr);
    let frac = |x: __m256i| -> __m256 {
        let d = _mm256_sub_epi32(maxi, x);
        let zero = _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, i0));
        let full = _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, cri));
        _mm256_blendv_ps(_mm256_blendv_ps(m, one, full), _mm256_setzero_ps(), zero)
    };
    let (rc, gc, bc) = (frac(ri), frac(gi), frac(bi));
    let h_r = _mm256_sub_ps(bc, gc);
    let h_g = _mm256_sub_ps(_mm256_add_ps(_mm256_set1_ps(2.0), rc), bc);
    let h_b = _mm256_sub_ps(_mm256_add_ps(_mm256_set1_ps(4.0), gc), rc);
    let is_r = _mm256_castsi256_ps(_mm256_cmpeq_epi32(ri, maxi));
    let is_g = _mm256_castsi256_ps(_mm256_cmpeq_epi32(gi, maxi));
    let h = _mm256_blendv_ps(_mm256_blendv_ps(h_b, h_g, is_g), h_r, is_r);
    // fmod(h / 6 + 1, 1) in double, as x or x − 1 (exact for x in [5/6, 11/6)).
    let to_f32 = |hd: __m256d| -> __m128 {
        let x = _mm256_add_pd(_mm256_div_pd(hd, _mm256_set1_pd(6.0)), _mm256_set1_pd(1.0));
        let ge = _mm256_cmp_pd::<_CMP_GE_OQ>(x, _mm256_set1_pd(1.0));
        let y = _mm256_blendv_pd(x, _mm256_sub_pd(x, _mm256_set1_pd(1.0)), ge);
        _mm256_cvtpd_ps(y)
    };
    let lo = to_f32(_mm256_cvtps_pd(_mm256_castps256_ps128(h)));
    let hi = to_f32(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(h)));
    let hf = _mm256_set_m128(hi, lo);
    // `as i32` truncates; NaNs (grey pixels) are selected away below.
    let clamp = |v: __m256i| _mm256_min_epi32(_mm256_max_epi32(v, i0), i255);
    let uh = clamp(_mm256_cvttps_epi32(_mm256_mul_ps(hf, c255)));
    let us = clamp(_mm256_cvttps_epi32(_mm256_mul_ps(s, c255)));
    let grey = _mm256_or_si256(_mm256_cmpeq_epi32(maxi, mini), _mm256_cmpeq_epi32(us, i0));
    // HSV → RGB of the shifted hue.
    let h2 = _mm256_and_si256(_mm256_add_epi32(uh, shift_v), i255);
    let hh = _mm256_div_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(h2), c6), c255);
    let fl = _mm256_floor_ps(hh);
    let f = _mm256_sub_ps(hh, fl);
    let fs = _mm256_div_ps(_mm256_cvtepi32_ps(us), c255);
    // round half away from zero of a non-negative x: trunc(x) + (x − trunc(x) ≥ 0.5).
    let round = |x: __m256| -> __m256i {
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
        let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_sub_ps(x, t), half), one);
        clamp(_mm256_cvttps_epi32(_mm256_add_ps(t, up)))
    };
    let p = round(_mm256_mul_ps(maxf, _mm256_sub_ps(one, fs)));
    let q = round(_mm256_mul_ps(
        maxf,
        _mm256_sub_ps(one, _mm256_mul_ps(fs, f)),
    ));
    let t = round(_mm256_mul_ps(
        maxf,
        _mm256_sub_ps(one, _mm256_mul_ps(fs, _mm256_sub_ps(one, f))),
    ));
    let v = maxi;
    let sector = _mm256_cvttps_epi32(fl);
    let is = |k: i32| _mm256_cmpeq_epi32(sector, _mm256_set1_epi32(k));
    let pick = |d: __m256i, cases: [(i32, __m256i); 5]| {
        cases
            .iter()
            .fold(d, |acc, &(k, val)| _mm256_blendv_epi8(acc, val, is(k)))
    };
    // Sector 0 and 6 → (v, t, p); 1 → (q, v, p); 2 → (p, v, t); 3 → (p, q, v); 4 → (t, p, v);
    // 5 → (v, p, q).
    let out_r = pick(v, [(1, q), (2, p), (3, p), (4, t), (5, v)]);
    let out_g = pick(t, [(1, v), (2, v), (3, q), (4, p), (5, p)]);
    let out_b = pick(p, [(1, p), (2, t), (3, v), (4, v), (5, q)]);
    let out_r = _mm256_blendv_epi8(out_r, v, grey);
    let out_g = _mm256_blendv_epi8(out_g, v, grey);
    let out_b = _mm256_blendv_epi8(out_b, v, grey);
    [out_r, out_g, out_b]
}
