//! Horizontal flip in place.

/// Mirrors each row of a packed RGB image of `width` pixels.
pub fn hflip(data: &mut [u8], width: usize) {
    for row in data.chunks_exact_mut(width * 3) {
        let (mut l, mut r) = (0usize, width.saturating_sub(1));
        while l < r {
            for c in 0..3 {
                row.swap(l * 3 + c, r * 3 + c);
            }
            l += 1;
            r -= 1;
        }
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
}
