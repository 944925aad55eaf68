//! Horizontal flip in place.

/// Mirrors each row of a packed RGB image of `width` pixels.
pub fn hflip(data: &mut [u8], width: usize) {
    if width == 0 {
        return;
    }
    for row in data.chunks_exact_mut(width * 3) {
        let done = simd_bulk!("avx2", avx2::flip_ends(row)).unwrap_or(0);
        // The middle `width − 2·done` pixels, mirrored in place.
        let (mut l, mut r) = (done, width.saturating_sub(1 + done));
        while l < r {
            for c in 0..3 {
                row.swap(l * 3 + c, r * 3 + c);
            }
            l += 1;
            r -= 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::rgb_avx2::{load16, store16, BLOCK};

    /// Swaps mirrored 16-pixel blocks from both ends of `row` while they do not overlap; returns
    /// how many pixels at each end are done.
    #[target_feature(enable = "avx2")]
    pub unsafe fn flip_ends(row: &mut [u8]) -> usize {
        let width = row.len() / 3;
        let reverse = _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        let mirror = |v: [__m128i; 3]| v.map(|c| _mm_shuffle_epi8(c, reverse));
        let mut done = 0;
        while width - 2 * done >= 32 {
            let (l, r) = (done * 3, (width - done - 16) * 3);
            let left = load16(&row[l..l + BLOCK]);
            let right = load16(&row[r..r + BLOCK]);
            store16(&mut row[l..l + BLOCK], mirror(right));
            store16(&mut row[r..r + BLOCK], mirror(left));
            done += 16;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn flips_rows() {
        let mut d = vec![
            1, 2, 3, 4, 5, 6, 7, 8, 9, /* row 2 */ 10, 11, 12, 13, 14, 15, 16, 17, 18,
        ];
        super::hflip(&mut d, 3);
        assert_eq!(
            d,
            vec![7, 8, 9, 4, 5, 6, 1, 2, 3, 16, 17, 18, 13, 14, 15, 10, 11, 12]
        );
    }

    #[test]
    fn flips_every_width_like_the_definition() {
        for width in [0usize, 1, 2, 15, 16, 31, 32, 33, 47, 63, 64, 65, 224, 225] {
            let rows = 3;
            let orig: Vec<u8> = (0..width * rows * 3)
                .map(|i| (i * 31 + i / 7) as u8)
                .collect();
            let mut got = orig.clone();
            super::hflip(&mut got, width);
            for y in 0..rows {
                for x in 0..width {
                    let (s, d) = ((y * width + x) * 3, (y * width + width - 1 - x) * 3);
                    assert_eq!(got[d..d + 3], orig[s..s + 3], "width {width} ({x}, {y})");
                }
            }
        }
    }
}
