//! Pillow's hue shift (RGB → 8-bit HSV → shift → RGB) sixteen pixels at a time with AVX-512,
//! giving exactly the bytes of the scalar code in `color.rs` (which mirrors Pillow's C) for every
//! colour and shift — by different arithmetic, derived once and tested exhaustively:
//!
//! * **Forward.** With `d = max − mid` and `t = d / cr` (f32), Pillow's six `h` expressions are
//!   `base ± t` rounded once to f32 (`bc − gc` is a float subtraction; `2 + rc − bc` is exact in
//!   double before its one rounding). One case, red largest and blue above green, gives h ∈ [−1, 0)
//!   and wraps: `h/6 + 1`. So `uh = trunc(fl(fl(h / 6) [+ 1]) · 255)` in f32, which equals Pillow's
//!   double-precision `fmod` chain for all 2^24 colours (the division by 6 must be a real one).
//!   `us = ⌊255·cr / max⌋`: a correctly rounded f32 quotient can't cross an integer here (its error
//!   is < 2^-17, a non-integer quotient is ≥ 1/255 from one).
//! * **Backward.** Pillow's p, q, t are `round(v · (1 − s/255 · g/255))` with the float factors
//!   rounded on the way; the exact rationals are never halves (denominators 255 and 65025 are
//!   odd), and Pillow's float rounding never moves one across a half — checked against Pillow for
//!   every (h, s, v) byte triple while deriving this, and by the all-colour tests since — so
//!   with sector `i = ⌊6h/255⌋` and `r = 6h − 255i`:
//!   `p = v − round(v·s / 255)`, `q = v − round(v·s·r / 65025)`, `t = v − round(v·s·(255 − r) / 65025)`
//!   — integer arithmetic. Each sector uses q or t, never both, so one is computed.
//! * **Output.** Per sector, R, G and B are a permutation of (v, q|t, p): the three are packed into
//!   one 32-bit lane and a per-lane `vpshufb` control picked by the sector puts them in order.
//!
//! Loading and storing the pixels is `rgb_avx512::map_pixels`.
//!
//! Grey pixels need no special case: s = 0 makes p and q|t equal v (the NaN hue is harmless).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::rgb_avx512::{join_lanes, map_pixels};

/// Lane tables indexed by the case code `(r ≥ g) | (g ≥ b) << 1 | (r ≥ b) << 2`: `h = base + sign·t`.
/// 7: red largest, green ≥ blue, h = 1 − t; 5: red largest, blue above green, h = t − 1;
/// 6: green largest, red ≥ blue, 1 + t; 2: green largest, blue above red, 3 − t;
/// 0: blue largest, green above red, 3 + t; 1: blue largest, red ≥ green, 5 − t.
/// Codes 3 and 4 cannot occur (they would need r ≥ g ≥ b > r or r < g < b ≤ r).
pub(super) const BASE: [f32; 16] = [
    3., 5., 3., 0., 0., -1., 1., 1., 0., 0., 0., 0., 0., 0., 0., 0.,
];
pub(super) const SIGN: [f32; 16] = [
    1., -1., -1., 0., 0., 1., 1., -1., 0., 0., 0., 0., 0., 0., 0., 0.,
];
/// The code of the one case whose h is negative (red largest, blue above green): it wraps by +1.
pub(super) const WRAP_CODE: i32 = 5;

/// Per sector 0..=6, where R, G and B come from in the packed lane `v | (q|t) << 8 | p << 16`:
/// byte indices of a `vpshufb` control (0x80 zeroes the fourth byte).
pub(super) const SECTOR_CONTROL: [i32; 16] = {
    // (source of R, of G, of B): 0 = v, 1 = q or t, 2 = p.
    const ORDER: [[i32; 3]; 7] = [
        [0, 1, 2], // 0: (v, t, p)
        [1, 0, 2], // 1: (q, v, p)
        [2, 0, 1], // 2: (p, v, t)
        [2, 1, 0], // 3: (p, q, v)
        [1, 2, 0], // 4: (t, p, v)
        [0, 2, 1], // 5: (v, p, q)
        [0, 1, 2], // 6 (h = 255): as 0
    ];
    let mut c = [0i32; 16];
    let mut i = 0;
    while i < 7 {
        c[i] = ORDER[i][0] | ORDER[i][1] << 8 | ORDER[i][2] << 16 | (0x80 << 24);
        i += 1;
    }
    c
};

/// `vpshufb` works within 128-bit lanes: lane k's bytes sit at 4·(k mod 4) there.
const LANE_OFFSET: [i32; 16] = {
    let mut o = [0i32; 16];
    let mut k = 0;
    while k < 16 {
        o[k] = (4 * (k as i32 % 4)) * 0x0001_0101;
        k += 1;
    }
    o
};

/// Loop-invariant vectors.
struct Consts {
    base: __m512,
    sign: __m512,
    control: __m512i,
    lane_offset: __m512i,
    shift: __m512i,
}

/// Shifts the hue of the whole 16-pixel blocks of `data` (packed RGB) by `shift`; returns how
/// many bytes were processed (the caller finishes the rest).
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI (checked by the caller).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn adjust_hue_avx512(data: &mut [u8], shift: u8) -> usize {
    let c = Consts {
        base: _mm512_loadu_ps(BASE.as_ptr()),
        sign: _mm512_loadu_ps(SIGN.as_ptr()),
        control: _mm512_loadu_si512(SECTOR_CONTROL.as_ptr() as *const _),
        lane_offset: _mm512_loadu_si512(LANE_OFFSET.as_ptr() as *const _),
        shift: _mm512_set1_epi32(shift as i32),
    };
    map_pixels(data, |[r, g, b]| shift16(r, g, b, &c))
}

/// The hue shift of 16 pixels given as 32-bit lanes of R, G and B; returns lanes
/// `R | G << 8 | B << 16`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn shift16(r: __m512i, g: __m512i, b: __m512i, c: &Consts) -> __m512i {
    let i32s = _mm512_set1_epi32;
    let f32s = _mm512_set1_ps;

    // RGB → HSV.
    let v = _mm512_max_epi32(r, _mm512_max_epi32(g, b));
    let min = _mm512_min_epi32(r, _mm512_min_epi32(g, b));
    let cr = _mm512_sub_epi32(v, min);
    let sum = _mm512_add_epi32(r, _mm512_add_epi32(g, b));
    // max − mid = 2·max + min − (r + g + b).
    let d = _mm512_sub_epi32(_mm512_add_epi32(_mm512_add_epi32(v, v), min), sum);
    let crf = _mm512_cvtepi32_ps(cr);
    let t = _mm512_div_ps(_mm512_cvtepi32_ps(d), crf);
    // max(v, 1): black gives 0 / 1 = 0 instead of a NaN.
    let vf = _mm512_max_ps(_mm512_cvtepi32_ps(v), f32s(1.0));
    let s = _mm512_cvttps_epi32(_mm512_div_ps(_mm512_mul_ps(crf, f32s(255.0)), vf));
    let code = _mm512_maskz_mov_epi32(_mm512_cmpge_epi32_mask(r, g), i32s(1));
    let code = _mm512_mask_add_epi32(code, _mm512_cmpge_epi32_mask(g, b), code, i32s(2));
    let code = _mm512_mask_add_epi32(code, _mm512_cmpge_epi32_mask(r, b), code, i32s(4));
    let h = _mm512_fmadd_ps(
        t,
        _mm512_permutexvar_ps(code, c.sign),
        _mm512_permutexvar_ps(code, c.base),
    );
    let h6 = _mm512_div_ps(h, f32s(6.0));
    let wrap = _mm512_cmpeq_epi32_mask(code, i32s(WRAP_CODE));
    let h6 = _mm512_mask_add_ps(h6, wrap, h6, f32s(1.0));
    // Grey pixels: NaN → 0x8000_0000, masked to a valid hue below; s = 0 makes it irrelevant.
    let h = _mm512_cvttps_epi32(_mm512_mul_ps(h6, f32s(255.0)));

    // Shift, then HSV → RGB.
    let h = _mm512_and_si512(_mm512_add_epi32(h, c.shift), i32s(255));
    // ⌊6h / 255⌋ = ⌊h · 1543 / 2^16⌋ for h in 0..=255 (every h occurs in the all-colour tests).
    let sector = _mm512_srli_epi32::<16>(_mm512_mullo_epi32(h, i32s(1543)));
    let rem = _mm512_sub_epi32(
        _mm512_mullo_epi32(h, i32s(6)),
        _mm512_mullo_epi32(sector, i32s(255)),
    );
    // Even sectors use t (factor 1 − f), odd ones q (factor f).
    let even = _mm512_testn_epi32_mask(sector, i32s(1));
    let factor = _mm512_mask_sub_epi32(rem, even, i32s(255), rem);
    let vs = _mm512_mullo_epi32(v, s);
    // round(vs / 255) for vs ≤ 65025: (x + (x >> 8)) >> 8 with x = vs + 128.
    let x = _mm512_add_epi32(vs, i32s(128));
    let p = _mm512_sub_epi32(
        v,
        _mm512_srli_epi32::<8>(_mm512_add_epi32(x, _mm512_srli_epi32::<8>(x))),
    );
    // round(n / 65025) = ⌊(n + 32512) / 65025⌋ (never a half): n < 2^24 is exact in f32 and
    // the correctly rounded quotient (error < 2^-17) can't reach the next integer (≥ 1/65025 away).
    let n = _mm512_add_epi32(_mm512_mullo_epi32(vs, factor), i32s(32512));
    let qt = _mm512_sub_epi32(
        v,
        _mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(n), f32s(65025.0))),
    );
    let packed = join_lanes(v, qt, p);
    let control = _mm512_add_epi32(_mm512_permutexvar_epi32(sector, c.control), c.lane_offset);
    _mm512_shuffle_epi8(packed, control)
}
