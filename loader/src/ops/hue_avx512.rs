//! The hue shift of `hue_avx2.rs` with AVX-512: sixteen pixels in one register and mask registers
//! for the case selections. Same IEEE operations in the same order as the scalar code in
//! `color.rs`, so the same bytes (tested for every colour against the scalar code).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::rgb_avx2::{load16, store16, BLOCK};

/// Shifts the hue of the whole 16-pixel blocks of `data` (packed RGB) by `shift`; returns how
/// many bytes were processed (the caller finishes the rest).
///
/// # Safety
/// The CPU must support AVX-512F (checked by the caller).
#[target_feature(enable = "avx512f")]
pub unsafe fn adjust_hue_avx512(data: &mut [u8], shift: u8) -> usize {
    // Several blocks per step: the per-pixel chain is long (three divisions, conversions,
    // selects), and independent chains side by side keep the vector units busy.
    const STEP: usize = 4;
    let mut groups = data.chunks_exact_mut(STEP * BLOCK);
    for g in &mut groups {
        let px: [[__m512i; 3]; STEP] = std::array::from_fn(|k| {
            load16(&g[k * BLOCK..(k + 1) * BLOCK]).map(|v| _mm512_cvtepu8_epi32(v))
        });
        let out = px.map(|p| shift16(p[0], p[1], p[2], shift));
        for (k, o) in out.into_iter().enumerate() {
            // Lanes hold 0..=255: the truncating narrow is exact.
            store16(
                &mut g[k * BLOCK..(k + 1) * BLOCK],
                o.map(|v| _mm512_cvtepi32_epi8(v)),
            );
        }
    }
    for c in groups.into_remainder().chunks_exact_mut(BLOCK) {
        let p = load16(c).map(|v| _mm512_cvtepu8_epi32(v));
        let o = shift16(p[0], p[1], p[2], shift);
        store16(c, o.map(|v| _mm512_cvtepi32_epi8(v)));
    }
    let n = data.len();
    n - n % BLOCK
}

/// (max − x) / cr for one channel: 0 for the largest, exactly 1 for the smallest (cr / cr), the
/// one real quotient `m` for the middle one — the scalar code's three divisions, bit for bit.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn channel_fraction(maxi: __m512i, x: __m512i, cri: __m512i, m: __m512) -> __m512 {
    let d = _mm512_sub_epi32(maxi, x);
    let v = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(d, cri), m, _mm512_set1_ps(1.0));
    _mm512_mask_blend_ps(
        _mm512_cmpeq_epi32_mask(d, _mm512_setzero_si512()),
        v,
        _mm512_setzero_ps(),
    )
}

/// Pillow's fmod(h / 6 + 1, 1) in double for 8 lanes, as x or x − 1 (exact for x in [5/6, 11/6)).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn wrap_sixth(h: __m256) -> __m256 {
    let one = _mm512_set1_pd(1.0);
    let x = _mm512_add_pd(_mm512_div_pd(_mm512_cvtps_pd(h), _mm512_set1_pd(6.0)), one);
    let ge = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(x, one);
    _mm512_cvtpd_ps(_mm512_mask_sub_pd(x, ge, x, one))
}

/// Round half away from zero of non-negative lanes, clamped to 0..=255, as Pillow's `round`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn round_u8(x: __m512) -> __m512i {
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
    let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_sub_ps(x, t), _mm512_set1_ps(0.5));
    clamp_u8(_mm512_cvttps_epi32(_mm512_mask_add_ps(
        t,
        up,
        t,
        _mm512_set1_ps(1.0),
    )))
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn clamp_u8(v: __m512i) -> __m512i {
    _mm512_min_epi32(
        _mm512_max_epi32(v, _mm512_setzero_si512()),
        _mm512_set1_epi32(255),
    )
}

/// The hue shift of 16 pixels given as i32 lanes; returns (R, G, B) as i32 lanes in 0..=255.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn shift16(ri: __m512i, gi: __m512i, bi: __m512i, shift: u8) -> [__m512i; 3] {
    let one = _mm512_set1_ps(1.0);
    let c255 = _mm512_set1_ps(255.0);
    let maxi = _mm512_max_epi32(ri, _mm512_max_epi32(gi, bi));
    let mini = _mm512_min_epi32(ri, _mm512_min_epi32(gi, bi));
    let maxf = _mm512_cvtepi32_ps(maxi);
    let cri = _mm512_sub_epi32(maxi, mini);
    let cr = _mm512_cvtepi32_ps(cri);
    let s = _mm512_div_ps(cr, maxf);
    let mid = _mm512_sub_epi32(
        _mm512_add_epi32(ri, _mm512_add_epi32(gi, bi)),
        _mm512_add_epi32(maxi, mini),
    );
    let m = _mm512_div_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(maxi, mid)), cr);
    let rc = channel_fraction(maxi, ri, cri, m);
    let gc = channel_fraction(maxi, gi, cri, m);
    let bc = channel_fraction(maxi, bi, cri, m);
    let h_r = _mm512_sub_ps(bc, gc);
    let h_g = _mm512_sub_ps(_mm512_add_ps(_mm512_set1_ps(2.0), rc), bc);
    let h_b = _mm512_sub_ps(_mm512_add_ps(_mm512_set1_ps(4.0), gc), rc);
    let h = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(gi, maxi), h_b, h_g);
    let h = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(ri, maxi), h, h_r);
    let lo = wrap_sixth(_mm512_castps512_ps256(h));
    let hi = wrap_sixth(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
        _mm512_castps_pd(h),
    )));
    let hf = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castps_pd(_mm512_castps256_ps512(lo)),
        _mm256_castps_pd(hi),
    ));
    // `as i32` truncates; NaNs (grey pixels) are selected away below.
    let uh = clamp_u8(_mm512_cvttps_epi32(_mm512_mul_ps(hf, c255)));
    let us = clamp_u8(_mm512_cvttps_epi32(_mm512_mul_ps(s, c255)));
    let grey =
        _mm512_cmpeq_epi32_mask(maxi, mini) | _mm512_cmpeq_epi32_mask(us, _mm512_setzero_si512());
    // HSV → RGB of the shifted hue.
    let h2 = _mm512_and_si512(
        _mm512_add_epi32(uh, _mm512_set1_epi32(shift as i32)),
        _mm512_set1_epi32(255),
    );
    let hh = _mm512_div_ps(
        _mm512_mul_ps(_mm512_cvtepi32_ps(h2), _mm512_set1_ps(6.0)),
        c255,
    );
    let fl = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(hh);
    let f = _mm512_sub_ps(hh, fl);
    let fs = _mm512_div_ps(_mm512_cvtepi32_ps(us), c255);
    let p = round_u8(_mm512_mul_ps(maxf, _mm512_sub_ps(one, fs)));
    let q = round_u8(_mm512_mul_ps(
        maxf,
        _mm512_sub_ps(one, _mm512_mul_ps(fs, f)),
    ));
    let t = round_u8(_mm512_mul_ps(
        maxf,
        _mm512_sub_ps(one, _mm512_mul_ps(fs, _mm512_sub_ps(one, f))),
    ));
    let v = maxi;
    let sector = _mm512_cvttps_epi32(fl);
    let is = |k: i32| _mm512_cmpeq_epi32_mask(sector, _mm512_set1_epi32(k));
    // Sector 0 and 6 → (v, t, p); 1 → (q, v, p); 2 → (p, v, t); 3 → (p, q, v); 4 → (t, p, v);
    // 5 → (v, p, q); grey pixels → (v, v, v).
    let pick = |d: __m512i, cases: [(i32, __m512i); 5]| {
        let out = cases
            .iter()
            .fold(d, |acc, &(k, val)| _mm512_mask_blend_epi32(is(k), acc, val));
        _mm512_mask_blend_epi32(grey, out, v)
    };
    [
        pick(v, [(1, q), (2, p), (3, p), (4, t), (5, v)]),
        pick(t, [(1, v), (2, v), (3, q), (4, p), (5, p)]),
        pick(p, [(1, p), (2, t), (3, v), (4, v), (5, q)]),
    ]
}
