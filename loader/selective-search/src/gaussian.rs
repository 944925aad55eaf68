//! scipy.ndimage.gaussian_filter on one float channel, as skimage's `gaussian` calls it:
//! a separable kernel of radius ⌊4σ + 0.5⌋, normalised, with 'reflect' borders (d c b a | a b c d).

fn kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as i64;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// Index of `i` in a line of `n` samples under scipy's 'reflect' mode.
#[inline]
fn reflect(mut i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * n;
    i = i.rem_euclid(period);
    if i >= n {
        i = period - 1 - i;
    }
    i as usize
}

/// Blurs `data` (row-major `height × width`, one channel) in place.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2",
    "x86_64+sse4.1"
))]
pub fn blur(data: &mut [f64], width: usize, height: usize, sigma: f64, tmp: &mut Vec<f64>) {
    if sigma <= 0.0 {
        return;
    }
    let k = kernel(sigma);
    let r = (k.len() / 2) as i64;
    tmp.resize(data.len(), 0.0);
    // Along y (axis 0) first, as ndimage iterates axes in order; then along x. The y pass adds
    // whole weighted rows (contiguous, vectorisable) instead of walking down columns. Each output
    // value is still Σ_j w_j·x_j in tap order, the same sum in the same order as ndimage's.
    for y in 0..height {
        let out = &mut tmp[y * width..(y + 1) * width];
        out.iter_mut().for_each(|v| *v = 0.0);
        for (j, w) in k.iter().enumerate() {
            let yy = reflect(y as i64 + j as i64 - r, height as i64);
            let src = &data[yy * width..(yy + 1) * width];
            for (o, &v) in out.iter_mut().zip(src) {
                *o += w * v;
            }
        }
    }
    let ri = r as usize;
    for y in 0..height {
        let row = &tmp[y * width..(y + 1) * width];
        let out = &mut data[y * width..(y + 1) * width];
        // Interior: tap by tap over the whole run of outputs whose window lies inside the row,
        // so the adds vectorise; each output is still 0 + w₀x₀ + w₁x₁ + … in tap order.
        if width > 2 * ri {
            let interior = &mut out[ri..width - ri];
            interior.iter_mut().for_each(|o| *o = 0.0);
            for (j, w) in k.iter().enumerate() {
                let src = &row[j..j + interior.len()];
                for (o, &v) in interior.iter_mut().zip(src) {
                    *o += w * v;
                }
            }
        }
        let border = (0..ri.min(width)).chain(width.saturating_sub(ri).max(ri)..width);
        for x in border {
            let mut s = 0.0;
            for (j, w) in k.iter().enumerate() {
                s += w * row[reflect(x as i64 + j as i64 - r, width as i64)];
            }
            out[x] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mode_is_half_sample_symmetric() {
        let idx: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn constant_stays_constant_and_kernel_sums_to_one() {
        assert!((kernel(0.9).iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(kernel(0.9).len(), 9);
        let mut d = vec![0.25; 30];
        blur(&mut d, 6, 5, 0.9, &mut Vec::new());
        assert!(d.iter().all(|v| (v - 0.25).abs() < 1e-12));
    }
}
