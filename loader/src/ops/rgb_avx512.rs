//! Packed RGB ↔ one 32-bit lane per channel with AVX-512 VBMI byte permutes, for the per-pixel
//! colour kernels (hue, saturation, luma): `map_pixels` runs a kernel over 16-pixel blocks and
//! writes its result back, `for_each_block` only reads.
//!
//! Four blocks (192 bytes) are exactly three registers, so the bulk is read and written with
//! full-width loads and stores that never overlap. (A masked 48-byte store followed by the load of
//! the next block is a store-forwarding stall: it doubled the time per block of the hue kernel.)

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// Bytes in one 16-pixel block.
pub(crate) const BLOCK: usize = 48;
const GROUP: usize = 4 * BLOCK;

/// Two-register byte-permute indices (`vpermt2b`: 0..63 first register, 64..127 second) putting
/// channel `c` of block `j` of a group into byte 0 of each 32-bit lane. Block j starts at byte 48j,
/// in register ⌊48j / 64⌋, and may run into the next.
const fn unpack_index(j: usize, c: usize) -> [u8; 64] {
    let first = 48 * j / 64 * 64;
    let mut idx = [0u8; 64];
    let mut k = 0;
    while k < 16 {
        idx[4 * k] = (48 * j + 3 * k + c - first) as u8;
        k += 1;
    }
    idx
}
const UNPACK: [[[u8; 64]; 3]; 4] = {
    let mut t = [[[0u8; 64]; 3]; 4];
    let mut j = 0;
    while j < 4 {
        let mut c = 0;
        while c < 3 {
            t[j][c] = unpack_index(j, c);
            c += 1;
        }
        j += 1;
    }
    t
};
/// Byte 0 of every 32-bit lane.
const LOW_BYTES: u64 = 0x1111_1111_1111_1111;

/// Indices building output register `k` of a group from the kernel results of blocks k and k + 1
/// (lanes `R | G << 8 | B << 16`).
const fn pack_index(k: usize) -> [u8; 64] {
    let mut idx = [0u8; 64];
    let mut j = 0;
    while j < 64 {
        let m = 64 * k + j;
        let (block, local) = (m / BLOCK, m % BLOCK);
        idx[j] = (64 * (block - k) + 4 * (local / 3) + local % 3) as u8;
        j += 1;
    }
    idx
}
/// (Bytes 0..47 of `PACK[0]` are a lone block's own bytes.)
const PACK: [[u8; 64]; 3] = [pack_index(0), pack_index(1), pack_index(2)];
const BLOCK_MASK: u64 = (1 << BLOCK) - 1;

#[inline(always)]
unsafe fn table(t: &[u8; 64]) -> __m512i {
    _mm512_loadu_si512(t.as_ptr() as *const _)
}

/// R, G and B of block `j` of a group held in registers `z`, as 32-bit lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn unpack_in_group(z: &[__m512i; 3], j: usize) -> [__m512i; 3] {
    let (a, b) = (z[48 * j / 64], z[(48 * j / 64 + 1).min(2)]);
    std::array::from_fn(|c| _mm512_maskz_permutex2var_epi8(LOW_BYTES, a, table(&UNPACK[j][c]), b))
}

/// R, G and B of a lone block (the remainder after the groups), loaded with a mask.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn unpack_lone(p: *const u8) -> [__m512i; 3] {
    let px = _mm512_maskz_loadu_epi8(BLOCK_MASK, p as *const i8);
    std::array::from_fn(|c| _mm512_maskz_permutexvar_epi8(LOW_BYTES, table(&UNPACK[0][c]), px))
}

/// The three registers of the group at `p`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_group(p: *const u8) -> [__m512i; 3] {
    std::array::from_fn(|k| _mm512_loadu_si512(p.add(64 * k) as *const _))
}

/// Lanes `r | g << 8 | b << 16` from three lanes of values in 0..=255.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn join_lanes(r: __m512i, g: __m512i, b: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<0xFE>(r, _mm512_slli_epi32::<8>(g), _mm512_slli_epi32::<16>(b))
}

/// Runs `kernel` on every whole 16-pixel block of `data` (packed RGB): it gets the block's R, G
/// and B as 32-bit lanes (0..=255) and returns lanes `R | G << 8 | B << 16`, written back in
/// place. Returns how many bytes were done (the caller finishes the last < 16 pixels).
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(crate) unsafe fn map_pixels(
    data: &mut [u8],
    mut kernel: impl FnMut([__m512i; 3]) -> __m512i,
) -> usize {
    let mut groups = data.chunks_exact_mut(GROUP);
    for g in &mut groups {
        let p = g.as_mut_ptr();
        let z = load_group(p);
        let out: [__m512i; 4] = std::array::from_fn(|j| kernel(unpack_in_group(&z, j)));
        for k in 0..3 {
            let v = _mm512_permutex2var_epi8(out[k], table(&PACK[k]), out[k + 1]);
            _mm512_storeu_si512(p.add(64 * k) as *mut _, v);
        }
    }
    for blk in groups.into_remainder().chunks_exact_mut(BLOCK) {
        let p = blk.as_mut_ptr();
        let out = kernel(unpack_lone(p));
        let v = _mm512_permutexvar_epi8(table(&PACK[0]), out);
        _mm512_mask_storeu_epi8(p as *mut i8, BLOCK_MASK, v);
    }
    let n = data.len();
    n - n % BLOCK
}

/// Calls `f` with the R, G and B lanes of every whole 16-pixel block of `data`, in order; returns
/// how many bytes were covered.
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(crate) unsafe fn for_each_block(data: &[u8], mut f: impl FnMut([__m512i; 3])) -> usize {
    let mut groups = data.chunks_exact(GROUP);
    for g in &mut groups {
        let z = load_group(g.as_ptr());
        for j in 0..4 {
            f(unpack_in_group(&z, j));
        }
    }
    for blk in groups.remainder().chunks_exact(BLOCK) {
        f(unpack_lone(blk.as_ptr()));
    }
    let n = data.len();
    n - n % BLOCK
}
